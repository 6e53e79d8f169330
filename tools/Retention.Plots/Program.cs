using System.Text.Json;
using Retention.Plots;
using ScottPlot;

// Usage: Retention.Plots <figures.json> <output dir>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Retention.Plots <figures.json> <output dir>");
    return 2;
}
var figures = JsonSerializer.Deserialize<Figure[]>(File.ReadAllText(args[0]))
    ?? throw new InvalidDataException($"{args[0]} holds no figures.");
Directory.CreateDirectory(args[1]);
foreach (var figure in figures)
{
    var multiplot = new Multiplot();
    multiplot.AddPlots(figure.Panels.Length);
    for (int i = 0; i < figure.Panels.Length; i++) Draw(multiplot.GetPlot(i), figure.Panels[i]);
    multiplot.SavePng(Path.Combine(args[1], figure.File), figure.Width, figure.Height);
}
Console.WriteLine($"Wrote {string.Join(", ", figures.Select(f => f.File))} to {args[1]}");
return 0;

static void Draw(Plot plot, Panel panel)
{
    plot.Title(panel.Title);
    if (panel.XLabel is not null) plot.XLabel(panel.XLabel);
    if (panel.YLabel is not null) plot.YLabel(panel.YLabel);
    if (panel.Heatmap is { } heatmap) DrawHeatmap(plot, heatmap);
    foreach (var series in panel.Series)
    {
        // ScottPlot has no log scale: plot log10 values and label the ticks with powers of ten.
        var x = panel.LogX ? series.X.Select(Math.Log10).ToArray() : series.X;
        var y = panel.LogY ? series.Y.Select(Math.Log10).ToArray() : series.Y;
        plot.Add.Scatter(x, y).LegendText = series.Name;
    }
    if (panel.LogX) plot.Axes.Bottom.TickGenerator = LogTicks();
    else if (panel.IntegerX) plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
    if (panel.LogY) plot.Axes.Left.TickGenerator = LogTicks();
    if (panel.Series.Length > 1) plot.ShowLegend(Alignment.UpperLeft);
}

static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
{
    MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
    IntegerTicksOnly = true,
    LabelFormatter = value => Math.Pow(10, value).ToString("G4"),
};

static void DrawHeatmap(Plot plot, Heatmap heatmap)
{
    int rows = heatmap.RowLabels.Length, columns = heatmap.ColumnLabels.Length;
    var cells = new double[rows, columns];
    for (int r = 0; r < rows; r++)
    for (int c = 0; c < columns; c++)
        cells[r, c] = heatmap.Values[r][c];
    double max = heatmap.Values.SelectMany(row => row).DefaultIfEmpty(0).Max();
    var map = plot.Add.Heatmap(cells);
    map.Colormap = new ScottPlot.Colormaps.Blues();
    plot.Add.ColorBar(map);
    for (int r = 0; r < rows; r++)
    for (int c = 0; c < columns; c++)
    {
        var label = plot.Add.Text(cells[r, c].ToString("0"), c, rows - 1 - r);
        label.LabelAlignment = Alignment.MiddleCenter;
        label.LabelFontSize = 11;
        // Blues runs from dark (low) to light (high): white text on dark cells, black on light ones.
        label.LabelFontColor = cells[r, c] > max / 2 ? Colors.Black : Colors.White;
    }
    plot.Axes.Bottom.SetTicks(Enumerable.Range(0, columns).Select(i => (double)i).ToArray(), heatmap.ColumnLabels);
    plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
    plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
    plot.Axes.Bottom.MinimumSize = 110;
    plot.Axes.Left.SetTicks(Enumerable.Range(0, rows).Select(i => (double)(rows - 1 - i)).ToArray(), heatmap.RowLabels);
}
