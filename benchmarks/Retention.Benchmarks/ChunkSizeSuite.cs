using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using Retention.Plots;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Chunkwise retention time for each chunk size, and the best chunk size per sequence length.</summary>
public static class ChunkSizeSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var sizes = settings.ChunkSweep;
        var table = new ResultTable("chunk", $"Chunk size: chunkwise forward, B={settings.KernelBatch}, H=6, D=64 (median ms)",
            new[] { "N" }.Concat(sizes.Select(c => $"C={c}")).Append("best C").ToArray());
        var curves = new SeriesSet();
        KernelInputs.ForEachLength(settings, (n, q, k, v, gamma) =>
        {
            var times = sizes.Select(c => Harness.Run(() => { using var s = NewDisposeScope(); RetentionOps.Chunkwise(q, k, v, gamma, c); },
                budgetSeconds: settings.BudgetSeconds).MedianMs).ToArray();
            for (int i = 0; i < sizes.Length; i++) curves.Add($"N={n}", sizes[i], times[i]);
            int best = sizes[Array.IndexOf(times, times.Min())];
            table.Add(new object[] { n }.Concat(times.Cast<object>()).Append(best).ToArray());
        });
        table.Figures.Add(new Figure("chunk-size.png", 700, 520, new[] { curves.LogLog("Chunkwise forward time by chunk size", "chunk size C", "median ms") }));
        return table;
    }
}
