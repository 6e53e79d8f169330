using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// Streaming against the chunkwise form over the whole image: ViR-Ti at batch 1, images/s and the peak memory rise.
/// The streamed image is made band by band as it is read, so nothing holds it whole; the chunkwise form gets it whole.
/// </summary>
public static class StreamingSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("streaming", "Streaming (bands of 4 patch rows) against the chunkwise form over the whole image, batch 1",
            "model", "image", "tokens", "form", "images/s", "÷ chunkwise", "peak rise MiB");
        var (config, sizes, name) = settings.Smoke
            ? (ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, new[] { 64 }, "tiny ViR")
            : (ViRConfig.Tiny, new[] { 1024, 2048 }, "ViR-Ti");
        manual_seed(0);
        using var model = new ViRModel(config with { DropPath = 0 });
        model.eval();
        foreach (int size in sizes)
        {
            using var noGrad = no_grad();
            Tensor Rows(long first, long count) =>
                (arange(first, first + count, ScalarType.Float32).view(-1, 1) * 0.01 + arange(size, ScalarType.Float32).view(1, -1) * 0.02)
                .sin_().view(1, 1, count, size).expand(1, config.Channels, count, size);
            var chunkwise = Harness.Run(() =>
            {
                using var s = NewDisposeScope();
                model.Embed(Rows(0, size).contiguous(), new RetentionSettings(RetentionMode.Chunkwise));
            }, budgetSeconds: settings.BudgetSeconds);
            var streamed = Harness.Run(() =>
            {
                using var s = NewDisposeScope();
                model.EmbedStreaming(Rows, 1, size, size, bandRows: 4);
            }, budgetSeconds: settings.BudgetSeconds);
            long tokens = (long)(size / config.PatchSize) * (size / config.PatchSize) + 1;
            double chunkRate = 1000 / chunkwise.MedianMs, streamRate = 1000 / streamed.MedianMs;
            table.Add(name, $"{size}²", tokens, "chunkwise (auto chunk)", chunkRate, 1.0, chunkwise.PeakMiB);
            table.Add(name, $"{size}²", tokens, "streaming, 4 rows a band", streamRate, streamRate / chunkRate, streamed.PeakMiB);
        }
        table.Notes.Add("The issue's target: streaming at least 0.8× the chunkwise form's images/s where the chunkwise form fits.");
        return table;
    }
}
