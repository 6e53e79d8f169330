using Microsoft.ML.Retention;
using TorchSharp;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Training-step throughput and model FLOP utilisation against a large fp32 matmul timed in the same run.</summary>
public static class TrainingSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("training", "Training step: images/s, achieved GFLOP/s and MFU (÷ a 2048² fp32 matmul)",
            "model", "batch", "form", "images/s", "GFLOP/s", "MFU");

        long m = settings.Smoke ? 256 : 2048;
        double matmulGflops;
        using (var scope = NewDisposeScope())
        {
            var (a, b) = (randn(m, m), randn(m, m));
            var t = Harness.Run(() => { using var s = NewDisposeScope(); a.matmul(b); }, budgetSeconds: settings.BudgetSeconds);
            matmulGflops = 2.0 * m * m * m / (t.MedianMs / 1000) / 1e9;
            table.Notes.Add($"fp32 matmul {m}×{m}: {matmulGflops:F1} GFLOP/s (the MFU reference).");
        }

        foreach (var (name, config, batch) in settings.TrainingModels)
        foreach (var mode in new[] { RetentionMode.Parallel, RetentionMode.Chunkwise })
        {
            manual_seed(0);
            using var model = new ViRModel(config with { DropPath = 0 });
            model.train();
            using var optimizer = optim.AdamW(model.parameters(), 1e-3);
            var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
            var labels = randint(config.NumClasses, batch);
            var t = Harness.Run(() =>
            {
                using var s = NewDisposeScope();
                optimizer.zero_grad();
                nn.functional.cross_entropy(model.forward(images, mode, 32), labels).backward();
                optimizer.step();
            }, budgetSeconds: settings.BudgetSeconds);
            double rate = batch / (t.MedianMs / 1000);
            double gflops = rate * TrainingFlopsPerImage(config) / 1e9;
            table.Add(name, batch, mode == RetentionMode.Chunkwise ? "chunkwise C=32" : "parallel", rate, gflops, $"{gflops / matmulGflops:P0}");
            images.Dispose();
            labels.Dispose();
        }
        table.Notes.Add("FLOPs count the matmuls and convolutions (the convolutional stem included) of forward and backward (3× the forward), parallel-form retention included; elementwise work is not counted.");
        return table;
    }

    /// <summary>Forward matmul FLOPs of one image × 3 (forward + backward).</summary>
    public static double TrainingFlopsPerImage(ViRConfig c)
    {
        double n = c.PatchCount + 1, d = c.Dim, hidden = c.Dim * c.MlpRatio;
        double patchEmbed = c.Stem == PatchStem.Patchify ? 2.0 * c.PatchCount * c.Channels * c.PatchSize * c.PatchSize * d : ConvolutionalStemFlops(c);
        double perBlock = 2 * n * d * (3 * d) + 2 * n * d * d + 2 * n * d * hidden * 2 // qkv, proj, MLP
                        + 2 * 2 * n * n * d;                                              // Q·Kᵀ and scores·V
        return 3 * (patchEmbed + c.Depth * perBlock + 2 * d * c.NumClasses);
    }

    private static double ConvolutionalStemFlops(ViRConfig c)
    {
        double flops = 0, inChannels = c.Channels, pixels = (double)c.ImageHeight * c.ImageWidth;
        foreach (int outChannels in PatchEmbedding.ConvolutionalStemWidths(c.Dim, c.PatchSize))
        {
            pixels /= 4; // each stage halves both sides
            flops += 2 * pixels * inChannels * outChannels * 9;
            inChannels = outChannels;
        }
        return flops + 2 * pixels * inChannels * c.Dim; // the 1×1 projection
    }
}
