// The chart description shared by the plot helper and the apps that call it (linked into each).
namespace Retention.Plots;

/// <summary>One PNG file: panels side by side.</summary>
internal sealed record Figure(string File, int Width, int Height, Panel[] Panels);

/// <summary>One chart: line series, or a labelled heatmap.</summary>
internal sealed record Panel(string Title)
{
    public string? XLabel { get; init; }
    public string? YLabel { get; init; }
    public bool LogX { get; init; }
    public bool LogY { get; init; }
    public bool IntegerX { get; init; }
    public Series[] Series { get; init; } = Array.Empty<Series>();
    public Heatmap? Heatmap { get; init; }
}

/// <summary>A line with markers; points need not share x values with other series.</summary>
internal sealed record Series(string Name, double[] X, double[] Y);

/// <summary>A matrix drawn cell by cell with its values written in; row 0 is drawn at the top.</summary>
internal sealed record Heatmap(string[] RowLabels, string[] ColumnLabels, double[][] Values);
