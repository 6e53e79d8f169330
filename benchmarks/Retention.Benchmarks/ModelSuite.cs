using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Retention.Plots;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Whole-model inference: ViR in each retention form against a ViT of the same size.</summary>
public static class ModelSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var config = settings.ModelConfig with { DropPath = 0 };
        var table = new ResultTable("model", $"Model: {settings.ModelName} inference (dim {config.Dim}, depth {config.Depth}, heads {config.Heads}, patch {config.PatchSize}), images/s and peak MiB",
            "resolution", "tokens", "batch", "model", "images/s", "peak MiB", "÷ ViT images/s");
        manual_seed(0);
        using var vir = new ViRModel(config);
        using var vit = new ViTModel(config);
        var rates = settings.ModelBatches.ToDictionary(b => b, _ => new SeriesSet());
        var memory = settings.ModelBatches.ToDictionary(b => b, _ => new SeriesSet());
        void Record(int size, long tokens, int batch, string model, Measurement m, double rate, double ratio, string? detail = null)
        {
            table.Add($"{size}²", tokens, batch, model + detail, rate, m.PeakMiB, ratio);
            rates[batch].Add(model, size, rate);
            memory[batch].Add(model, size, m.PeakMiB);
        }
        vir.eval();
        vit.eval();

        foreach (int size in settings.Resolutions)
        foreach (int batch in settings.ModelBatches)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var images = randn(batch, config.Channels, size, size);
            long tokens = (long)(size / config.PatchSize) * (size / config.PatchSize) + 1;
            bool quadraticFits = size <= settings.MaxQuadraticResolution;

            double vitRate = double.NaN;
            if (quadraticFits || (batch == 1 && size <= settings.MaxViTResolutionAtBatch1))
            {
                var m = Harness.Run(() => { using var s = NewDisposeScope(); vit.forward(images); }, budgetSeconds: settings.BudgetSeconds);
                vitRate = batch / (m.MedianMs / 1000);
                Record(size, tokens, batch, "ViT (fused attention)", m, vitRate, 1.0);
            }
            foreach (var (mode, chunk) in new[] { (RetentionMode.Parallel, 0), (RetentionMode.Chunkwise, settings.ModelChunkSize), (RetentionMode.Recurrent, 0) })
            {
                if (mode == RetentionMode.Parallel && !quadraticFits) continue;
                if (mode == RetentionMode.Recurrent && tokens > settings.MaxRecurrentLength) continue;
                var m = Harness.Run(() => { using var s = NewDisposeScope(); vir.forward(images, new RetentionSettings(mode, chunk)); }, budgetSeconds: settings.BudgetSeconds);
                double rate = batch / (m.MedianMs / 1000);
                Record(size, tokens, batch, $"ViR {mode.ToString().ToLowerInvariant()}", m, rate, rate / vitRate,
                    mode == RetentionMode.Chunkwise ? $" C={ChunkSizes.Resolve(chunk, tokens)}" : null);
            }
        }
        table.Notes.Add($"Parallel retention and ViT run up to {settings.MaxQuadraticResolution}² (ViT up to {settings.MaxViTResolutionAtBatch1}² at batch 1); chunkwise and recurrent go further.");
        foreach (int batch in settings.ModelBatches)
            table.Figures.Add(new Figure($"model-batch{batch}.png", 1300, 520, new[]
            {
                rates[batch].LogLog($"{settings.ModelName}, batch {batch}: throughput", "image side (pixels)", "images/s"),
                memory[batch].LogLog($"{settings.ModelName}, batch {batch}: peak memory", "image side (pixels)", "peak MiB"),
            }));
        return table;
    }
}
