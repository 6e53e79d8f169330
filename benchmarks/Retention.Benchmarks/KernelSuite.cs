using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using Retention.Plots;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>One retention layer's operator (B=8, H=6, D=64) against libtorch's fused softmax attention.</summary>
public static class KernelSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("kernel", $"Kernel: one layer forward, B={settings.KernelBatch}, H=6, D=64 (median ms, peak MiB, time ÷ fused attention)",
            "N", "form", "median ms", "peak MiB", "working MiB", "÷ fused attention");
        SeriesSet time = new(), memory = new();
        void Record(long n, string form, Measurement m, double ratio)
        {
            // Every form allocates its [B, H, N, D] output; the rest is what the form itself needs.
            double working = m.PeakMiB - settings.KernelBatch * KernelInputs.Heads * n * KernelInputs.HeadDim * 4 / (1024.0 * 1024);
            table.Add(n, form, m.MedianMs, m.PeakMiB, working, ratio);
            time.Add(form, n, m.MedianMs);
            memory.Add(form, n, m.PeakMiB);
        }
        KernelInputs.ForEachLength(settings, (n, q, k, v, gamma) =>
        {
            var fused = Harness.Run(() => { using var s = NewDisposeScope(); nn.functional.scaled_dot_product_attention(q, k, v); }, budgetSeconds: settings.BudgetSeconds);
            Record(n, "fused attention (sdpa)", fused, 1.0);

            void Case(string form, Func<Tensor> run, long bytesNeeded = 0)
            {
                if (bytesNeeded > settings.MaxKernelBytes)
                {
                    table.Add(n, form, "skipped", $"needs {bytesNeeded >> 30} GiB", "–", "–");
                    return;
                }
                var m = Harness.Run(() => { using var s = NewDisposeScope(); run(); }, budgetSeconds: settings.BudgetSeconds);
                Record(n, form, m, m.MedianMs / fused.MedianMs);
            }

            // Parallel holds the [B, H, N, N] scores plus the [H, N, N] mask.
            Case("parallel", () => RetentionOps.Parallel(q, k, v, gamma), (settings.KernelBatch + 1) * 6 * n * n * 4);
            foreach (int c in settings.ChunkSizes) Case($"chunkwise C={c}", () => RetentionOps.Chunkwise(q, k, v, gamma, c));
            if (n <= settings.MaxRecurrentLength) Case("recurrent", () => RetentionOps.Recurrent(q, k, v, gamma));
        });
        table.Notes.Add("Fused attention is libtorch's scaled_dot_product_attention without a mask (what ViT uses). Ideal chunkwise ÷ attention ratio from FLOP counts: about (C+D)/N. " +
            "Working MiB is the peak less the [B, H, N, D] output every form returns.");
        table.Figures.Add(new Figure("kernel.png", 1300, 520, new[]
        {
            time.LogLog("One layer forward: time", "tokens N", "median ms"),
            memory.LogLog("One layer forward: peak memory", "tokens N", "peak MiB"),
        }));
        return table;
    }
}
