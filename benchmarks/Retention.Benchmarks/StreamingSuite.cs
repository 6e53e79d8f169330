using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// Streaming against the chunkwise form over the whole image, ViR-Ti at batch 1. In this process: images/s and the
/// peak memory rise, the streamed image made band by band as it is read, the chunkwise form given it whole. Then, for
/// each image file given (made by the sample's make-image), one fresh process classifies it with
/// <c>PredictStreaming</c> from the public API: its time and the whole process's peak resident memory, runtime included.
/// </summary>
public static class StreamingSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("streaming", $"Streaming (bands of {ViRModel.DefaultBandTokens} tokens) against the chunkwise form over the whole image, batch 1",
            "model", "image", "tokens", "form", "images/s", "÷ chunkwise", "µs per token", "peak rise MiB", "process peak MiB");
        var (config, name) = settings.Smoke ? (ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, "tiny ViR") : (ViRConfig.Tiny, "ViR-Ti");
        config = config with { DropPath = 0 };
        manual_seed(0);
        using var model = new ViRModel(config);
        model.eval();
        foreach (int size in settings.StreamingSizes)
        {
            using var noGrad = no_grad();
            Tensor Rows(long first, long count) => MadeRows(first, count, size, config.Channels);
            // The largest size is measured once: a run takes half a minute.
            int repeats = size >= 8192 ? 1 : 3;
            var chunkwise = Harness.Run(() =>
            {
                using var s = NewDisposeScope();
                model.Embed(Rows(0, size).contiguous(), new RetentionSettings(RetentionMode.Chunkwise));
            }, minRepeats: repeats, maxRepeats: Math.Max(repeats, 9), budgetSeconds: settings.BudgetSeconds);
            var streamed = Harness.Run(() =>
            {
                using var s = NewDisposeScope();
                model.EmbedStreaming(Rows, 1, size, size);
            }, minRepeats: repeats, maxRepeats: Math.Max(repeats, 9), budgetSeconds: settings.BudgetSeconds);
            long tokens = Tokens(config, size, size);
            double chunkRate = 1000 / chunkwise.MedianMs, streamRate = 1000 / streamed.MedianMs;
            table.Add(name, $"{size}²", tokens, "chunkwise (auto chunk)", chunkRate, 1.0, chunkwise.MedianMs * 1000 / tokens, chunkwise.PeakMiB, "");
            table.Add(name, $"{size}²", tokens, "streaming", streamRate, streamRate / chunkRate, streamed.MedianMs * 1000 / tokens, streamed.PeakMiB, "");
        }
        if (settings.StreamingImages.Length > 0) AddFiles(table, model, config, name, settings.StreamingImages);
        table.Notes.Add("The issue's targets: streaming at least 0.8× the chunkwise form's images/s where the chunkwise form fits (2048², 4096²); " +
            "a streamed file's process peak flat within ±15 % across 2048², 8192² and 32768², and at most 300 MiB with the runtime.");
        table.Notes.Add("Rows with a process peak: `PredictStreaming` on the file in a fresh process (loading the safetensors weights, then the " +
            "JPEG decoded row by row), timed once; the peak is that process's whole resident high-water mark (VmHWM), the .NET runtime and libtorch included. " +
            "Rows without: in this process, the pixels computed per band, medians of repeats (one run at 8192²), the rise of the high-water mark during one run.");
        return table;
    }

    /// <summary>Pixel rows [first, first + count) of a made image <paramref name="width"/> wide, [1, channels, count, width], computed when asked for.</summary>
    internal static Tensor MadeRows(long first, long count, long width, int channels) =>
        (arange(first, first + count, ScalarType.Float32).view(-1, 1) * 0.01 + arange(width, ScalarType.Float32).view(1, -1) * 0.02)
        .sin_().view(1, 1, count, width).expand(1, channels, count, width);

    private static long Tokens(ViRConfig config, long height, long width) => height / config.PatchSize * (width / config.PatchSize) + 1;

    private static void AddFiles(ResultTable table, ViRModel model, ViRConfig config, string name, string[] images)
    {
        string weights = Path.Combine(Path.GetTempPath(), $"streaming-suite-{Environment.ProcessId}.safetensors");
        ViRCheckpoint.Save(model, weights, Enumerable.Range(0, config.NumClasses).Select(i => $"class {i}").ToList());
        try
        {
            foreach (var image in images)
            {
                // A default app: glibc's allocator untuned, libtorch's threads as they come.
                var fields = SelfProcess.Run(new[] { "stream-file", "--weights", weights, "--image", image },
                    new Dictionary<string, string> { ["MLNET_RETENTION_MALLOC"] = "default" }).Split(' ');
                long width = long.Parse(fields[0], CultureInfo.InvariantCulture), height = long.Parse(fields[1], CultureInfo.InvariantCulture);
                double seconds = double.Parse(fields[2], CultureInfo.InvariantCulture), peakMiB = double.Parse(fields[3], CultureInfo.InvariantCulture);
                long tokens = Tokens(config, height, width);
                table.Add(name, $"{Path.GetFileName(image)} ({width}×{height})", tokens, "streaming a file", 1 / seconds, "", seconds * 1e6 / tokens, "", peakMiB);
            }
        }
        finally
        {
            File.Delete(weights);
        }
    }

    /// <summary>
    /// The child process: classifies <paramref name="image"/> with a ViR loaded from <paramref name="weights"/>, and prints
    /// "width height seconds peakMiB".
    /// </summary>
    public static int StreamFile(string weights, string image)
    {
        var ml = new MLContext(seed: 0);
        using var vir = ml.Model.LoadViRWeights(weights);
        var watch = Stopwatch.StartNew();
        var prediction = vir.PredictStreaming(image);
        double seconds = watch.Elapsed.TotalSeconds;
        long peakKiB = long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{prediction.Width} {prediction.Height} {seconds:F3} {peakKiB / 1024.0:F1}"));
        return 0;
    }
}
