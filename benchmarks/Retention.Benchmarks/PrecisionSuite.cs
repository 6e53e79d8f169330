using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Inference in bfloat16 against float32, the same weights in the same run (what WithPrecision does).</summary>
public static class PrecisionSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("precision", "Precision: ViR inference in bfloat16 against float32, images/s",
            "model", "resolution", "batch", "form", "float32 images/s", "bfloat16 images/s", "bfloat16 ÷ float32");
        foreach (var (name, config, batch, retention) in settings.PrecisionCases)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            manual_seed(0);
            using var float32 = new ViRModel(config with { DropPath = 0 });
            float32.eval();
            using var bfloat16 = new ViRModel(config with { DropPath = 0 });
            bfloat16.load_state_dict(float32.state_dict());
            bfloat16.to(ScalarType.BFloat16).eval();
            var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
            var images16 = images.to(ScalarType.BFloat16);

            var m32 = Harness.Run(() => { using var s = NewDisposeScope(); float32.forward(images, retention); }, budgetSeconds: settings.BudgetSeconds);
            var m16 = Harness.Run(() => { using var s = NewDisposeScope(); bfloat16.forward(images16, retention); }, budgetSeconds: settings.BudgetSeconds);
            double rate32 = batch / (m32.MedianMs / 1000), rate16 = batch / (m16.MedianMs / 1000);
            table.Add(name, $"{config.ImageHeight}²", batch, retention.ToString(), rate32, rate16, rate16 / rate32);
        }
        table.Notes.Add("Medians of repeated forward passes; bfloat16 runs every layer in bfloat16 except retention's decays and the states that carry across chunks, which stay float32.");

        // Training through ML.NET's Fit: TrainingPrecision = BFloat16 (mixed precision) against Float32.
        int rows = settings.Smoke ? 256 : 12_800, epochs = 2;
        var ml = new Microsoft.ML.MLContext(seed: 1);
        var keyed = SyntheticPixels.Keyed(ml, SyntheticPixels.Rows(rows));
        double FitRate(ViRPrecision precision)
        {
            double last = 0;
            SyntheticPixels.Fit(ml, keyed, epochs, batch: 128, m => last = m.ImagesPerSecond, precision).Dispose();
            return last;
        }
        double fit32 = FitRate(ViRPrecision.Float32), fit16 = FitRate(ViRPrecision.BFloat16);
        table.Add("ViR-Mini (Fit)", "28²", 128, "training, parallel", fit32, fit16, fit16 / fit32);
        table.Notes.Add($"The Fit row trains ViR-Mini through ML.NET on {rows:N0} random images for {epochs} epochs and gives the last epoch's images/s; " +
            "bfloat16 is TrainingPrecision = BFloat16, mixed precision with float32 master weights.");
        return table;
    }
}
