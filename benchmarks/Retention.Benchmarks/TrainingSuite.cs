using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
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
                nn.functional.cross_entropy(model.forward(images, new RetentionSettings(mode, 32)), labels).backward();
                optimizer.step();
            }, budgetSeconds: settings.BudgetSeconds);
            double rate = batch / (t.MedianMs / 1000);
            double gflops = rate * 3 * model.ForwardFlopsPerImage() / 1e9; // backward costs about twice the forward
            table.Add(name, batch, mode == RetentionMode.Chunkwise ? "chunkwise C=32" : "parallel", rate, gflops, $"{gflops / matmulGflops:P0}");
            images.Dispose();
            labels.Dispose();
        }
        table.Notes.Add("FLOPs count the matmuls and convolutions (the convolutional stem included) of forward and backward (3× the forward), parallel-form retention included; elementwise work is not counted.");
        return table;
    }
}
