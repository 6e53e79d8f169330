using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// A Vision Retention Network (Hatamizadeh et al., 2023): a ViT whose attention is multi-scale retention. The [class]
/// token is appended last, because retention is causal and only the last token has seen the whole image. Every
/// retention form gives the same outputs; choose one per call with <see cref="RetentionSettings"/>, so one model can
/// serve several threads in different forms.
/// </summary>
public sealed class ViRModel : VisionTransformerBase, IVisionBackbone
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

    /// <summary>A bfloat16 copy of these weights (<see cref="Parameters.BFloat16Copy"/>).</summary>
    internal ViRModel BFloat16Copy() => Parameters.BFloat16Copy(this, () => new ViRModel(Config));

    IVisionBackboneConfig IVisionBackbone.Architecture => Config;

    nn.Module IVisionBackbone.Module => this;

    IVisionBackbone IVisionBackbone.BFloat16Copy() => BFloat16Copy();

    bool IVisionBackbone.LoadInitialWeights(string path, bool movingAverage) => ViRCheckpoint.LoadInto(this, path);

    void IVisionBackbone.SaveWeights(string path, IReadOnlyList<string>? labelNames) => ViRCheckpoint.Save(this, path, labelNames);
}
