using System.Text.Json;
using ScottPlot;
using ViRImageClassification;

// Usage: ViRImageClassification.Plots <plot-data.json> <output dir>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: ViRImageClassification.Plots <plot-data.json> <output dir>");
    return 2;
}
var data = JsonSerializer.Deserialize<PlotData>(File.ReadAllText(args[0]))
    ?? throw new InvalidDataException($"{args[0]} holds no plot data.");
Directory.CreateDirectory(args[1]);

double[] epochs = data.Epochs.Select(e => (double)e).ToArray();
var curves = new Multiplot();
curves.AddPlots(2);
DrawCurves(curves.GetPlot(0), "Loss", data.TrainLoss, data.ValidationLoss);
DrawCurves(curves.GetPlot(1), "Accuracy", data.TrainAccuracy, data.ValidationAccuracy);
curves.SavePng(Path.Combine(args[1], "training-curves.png"), 1000, 420);

int n = data.ClassNames.Length;
var matrix = new Plot();
var cells = new double[n, n];
for (int actual = 0; actual < n; actual++)
for (int predicted = 0; predicted < n; predicted++)
    cells[actual, predicted] = data.ConfusionCounts[actual][predicted];
double maxCount = data.ConfusionCounts.SelectMany(r => r).DefaultIfEmpty(0).Max();
var heatmap = matrix.Add.Heatmap(cells);
heatmap.Colormap = new ScottPlot.Colormaps.Blues();
matrix.Add.ColorBar(heatmap);
for (int actual = 0; actual < n; actual++)
for (int predicted = 0; predicted < n; predicted++)
{
    double count = data.ConfusionCounts[actual][predicted];
    var label = matrix.Add.Text(count.ToString("0"), predicted, n - 1 - actual);
    label.LabelAlignment = Alignment.MiddleCenter;
    label.LabelFontSize = 11;
    // Blues runs from dark (few) to light (many): white text on dark cells, black on light ones.
    label.LabelFontColor = count > maxCount / 2 ? Colors.Black : Colors.White;
}
var ticks = Enumerable.Range(0, n).ToArray();
matrix.Axes.Bottom.SetTicks(ticks.Select(i => (double)i).ToArray(), data.ClassNames);
matrix.Axes.Bottom.TickLabelStyle.Rotation = 45;
matrix.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
matrix.Axes.Bottom.MinimumSize = 110;
matrix.Axes.Left.SetTicks(ticks.Select(i => (double)(n - 1 - i)).ToArray(), data.ClassNames);
matrix.Title("Confusion matrix (rows: actual, columns: predicted)");
matrix.SavePng(Path.Combine(args[1], "confusion-matrix.png"), 820, 820);
Console.WriteLine($"Wrote training-curves.png and confusion-matrix.png to {args[1]}");
return 0;

void DrawCurves(Plot plot, string metric, double[] train, double[]? validation)
{
    plot.Add.Scatter(epochs, train).LegendText = $"train {metric.ToLowerInvariant()}";
    if (validation is not null) plot.Add.Scatter(epochs, validation).LegendText = $"validation {metric.ToLowerInvariant()}";
    plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
    plot.Title(metric);
    plot.XLabel("epoch");
    plot.ShowLegend();
}
