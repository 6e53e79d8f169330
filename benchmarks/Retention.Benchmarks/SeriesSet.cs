using Retention.Plots;

namespace Retention.Benchmarks;

/// <summary>Measured points grouped into named series (in the order first seen), for one chart panel.</summary>
internal sealed class SeriesSet
{
    private readonly List<(string Name, List<double> X, List<double> Y)> _series = new();

    public void Add(string series, double x, double y)
    {
        if (!double.IsFinite(x) || !double.IsFinite(y)) return;
        var entry = _series.FirstOrDefault(s => s.Name == series);
        if (entry.Name is null)
        {
            entry = (series, new List<double>(), new List<double>());
            _series.Add(entry);
        }
        entry.X.Add(x);
        entry.Y.Add(y);
    }

    /// <summary>A log-log panel of every series.</summary>
    public Panel LogLog(string title, string xLabel, string yLabel) => new(title)
    {
        XLabel = xLabel,
        YLabel = yLabel,
        LogX = true,
        LogY = true,
        Series = _series.Select(s => new Series(s.Name, s.X.ToArray(), s.Y.ToArray())).ToArray(),
    };
}
