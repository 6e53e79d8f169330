using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// A Vision Retention Network (Hatamizadeh et al., 2023): a ViT whose attention is multi-scale retention. The [class]
/// token is appended last, because retention is causal and only the last token has seen the whole image. Every
/// retention form gives the same outputs; choose one per call with <see cref="RetentionSettings"/>, so one model can
/// serve several threads in different forms.
/// </summary>
public sealed class ViRModel : VisionTransformerBase
{
    /// <summary>Creates a randomly initialised ViR (seed it with <c>torch.manual_seed</c>).</summary>
    public ViRModel(ViRConfig config)
        : base(nameof(ViRModel), config, classTokenLast: true, () => new MultiScaleRetention(config.Dim, config.Heads, config.DecaySchedule))
    {
    }

    /// <summary>Class logits [B, NumClasses] for images [B, C, H, W], with retention computed as <paramref name="retention"/> says.</summary>
    public Tensor forward(Tensor images, RetentionSettings retention) => Forward(images, retention);

    /// <summary>The [class] representation [B, Dim], with retention computed as <paramref name="retention"/> says.</summary>
    public Tensor Embed(Tensor images, RetentionSettings retention) => EmbedCore(images, retention);
}
