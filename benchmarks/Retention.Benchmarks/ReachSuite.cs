using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// How much of a large image a ViR's [class] token (last) sees: the [class] embedding of a streamed image against the
/// same image with every patch row above the last k set to zero. The decays, fixed per head, decide it; the weights
/// here are random (seeded), so read it for the decays' reach, not for a trained model's attention.
/// </summary>
public static class ReachSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("reach", "What the [class] token sees: the embedding's change when all but the last k patch rows are zeroed",
            "model", "decays (γ per head)", "image", "patch rows kept", "tokens kept", "relative change of the embedding");
        var (baseConfig, size, name) = settings.Smoke
            ? (ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, 64, "tiny ViR")
            : (ViRConfig.Tiny, 2048, "ViR-Ti");
        foreach (var schedule in new[] { DecaySchedule.RetNet, DecaySchedule.LogSpaced })
        {
            var config = baseConfig with { DropPath = 0, DecaySchedule = schedule };
            manual_seed(0);
            using var model = new ViRModel(config);
            model.eval();
            using var noGrad = no_grad();
            long patchRows = size / config.PatchSize;
            Func<long, long, Tensor> Image(long keptFrom) => (first, count) =>
                StreamingSuite.MadeRows(first, count, size, config.Channels) * (arange(first, first + count) >= keptFrom).to(ScalarType.Float32).view(1, 1, -1, 1);
            using var whole = model.EmbedStreaming(Image(0), 1, size, size);
            string gammas = string.Join(", ", DecaySchedules.Gammas(schedule, config.Heads).Select(g => $"1 − 1/{1 / (1 - g):F0}"));
            for (long kept = 1; kept <= patchRows; kept *= 4)
            {
                using var scope = NewDisposeScope();
                var cut = model.EmbedStreaming(Image((patchRows - kept) * config.PatchSize), 1, size, size);
                double change = (cut - whole).norm().ToDouble() / whole.norm().ToDouble();
                table.Add(name, $"{schedule}: {gammas}", $"{size}²", $"{kept} of {patchRows}", kept * patchRows + 1, change);
            }
        }
        table.Notes.Add("A token k places before the [class] token weighs γ^k in one block's retention, so a block reaches about " +
            "ln(1000)/(1 − γ) tokens back before the weight falls under 1e-3, and the blocks together a few times that. " +
            "Streaming is exact whatever the reach: this table is about what a model with these decays can use of a large image.");
        return table;
    }
}
