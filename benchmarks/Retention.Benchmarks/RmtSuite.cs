using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>RMT against ViR: forward images/s and achieved GFLOP/s at 224², the second backbone's speed target.</summary>
public static class RmtSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("rmt", "RMT against ViR: inference at 224², images/s and GFLOP/s (2 per multiply-add)",
            "model", "batch", "GFLOPs per image", "images/s", "GFLOP/s", "÷ ViR-Ti GFLOP/s");
        var (rmtConfig, virConfig, size) = settings.Smoke
            ? (RmtConfig.Mini, ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, 28)
            : (RmtConfig.Tiny, ViRConfig.Tiny, 224);
        manual_seed(0);
        using var rmt = new RmtModel(rmtConfig with { DropPathRate = 0 });
        using var vir = new ViRModel(virConfig with { DropPath = 0 });
        rmt.eval();
        vir.eval();
        foreach (int batch in settings.ModelBatches.Append(8).Distinct().Order())
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var rmtImages = randn(batch, rmtConfig.Channels, size, size);
            var virImages = randn(batch, virConfig.Channels, size, size);
            var retention = new RetentionSettings(RetentionMode.Chunkwise);
            var mv = Harness.Run(() => { using var s = NewDisposeScope(); vir.forward(virImages, retention); }, budgetSeconds: settings.BudgetSeconds);
            var mr = Harness.Run(() => { using var s = NewDisposeScope(); rmt.forward(rmtImages); }, budgetSeconds: settings.BudgetSeconds);
            double virFlops = vir.ForwardFlopsPerImage(), rmtFlops = rmt.ForwardFlopsPerImage(size, size);
            double virRate = batch / (mv.MedianMs / 1000), rmtRate = batch / (mr.MedianMs / 1000);
            double virGflops = virRate * virFlops / 1e9, rmtGflops = rmtRate * rmtFlops / 1e9;
            table.Add(settings.Smoke ? "tiny ViR" : "ViR-Ti (chunkwise, auto)", batch, virFlops / 1e9, virRate, virGflops, 1.0);
            table.Add(settings.Smoke ? "RMT-Mini" : "RMT-T", batch, rmtFlops / 1e9, rmtRate, rmtGflops, rmtGflops / virGflops);
        }
        table.Notes.Add("At equal FLOPs a model's images/s scale with its GFLOP/s; the target is RMT-T's GFLOP/s within 1.2× of ViR-Ti's (÷ ≥ 0.83).");
        return table;
    }
}
