using System.Text.Json.Serialization;

namespace Microsoft.ML.Retention.Models;

/// <summary>One stage of an RMT: its blocks' width, count, heads and MLP ratio, its decay range, and its attention.</summary>
/// <param name="Dim">Channels of the stage's tokens.</param>
/// <param name="Depth">Blocks in the stage.</param>
/// <param name="Heads">Attention heads; each has its own decay γ_h = 1 − 2^−(a + r·h/Heads).</param>
/// <param name="MlpRatio">The feed-forward width as a multiple of <paramref name="Dim"/> (rounded down).</param>
/// <param name="HeadsRange">r in the decay schedule: how far the heads' decays spread.</param>
/// <param name="Decomposed">MaSAD (attention along rows, then columns) instead of MaSA over the whole grid.</param>
/// <param name="LayerScale">Per-channel scales on the block's two residual branches.</param>
public sealed record RmtStage(int Dim, int Depth, int Heads, double MlpRatio, double HeadsRange, bool Decomposed, bool LayerScale = false)
{
    /// <summary>The feed-forward width.</summary>
    [JsonIgnore]
    public int FeedForwardDim => checked((int)(MlpRatio * Dim));
}
