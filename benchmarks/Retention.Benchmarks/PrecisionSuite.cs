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
        return table;
    }
}
