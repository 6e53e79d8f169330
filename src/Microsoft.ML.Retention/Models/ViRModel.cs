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

    /// <summary>
    /// A bfloat16 copy of these weights on the same device, for scoring and for mixed-precision training. Norm layers
    /// stay float32 (libtorch takes bfloat16 inputs with float32 norm weights), so their statistics keep full precision.
    /// Building it leaves the global random generator as it was.
    /// </summary>
    internal ViRModel BFloat16Copy()
    {
        var device = parameters().First().device;
        ViRModel copy;
        using (var rng = Generator.Default.get_state())
        {
            copy = new ViRModel(Config); // its random initialisation is overwritten below
            Generator.Default.set_state(rng);
        }
        copy.to(device);
        copy.load_state_dict(state_dict());
        copy.to(ScalarType.BFloat16);
        foreach (var (_, module) in copy.named_modules())
            if (module is BatchNorm2d or LayerNorm) module.to(ScalarType.Float32);
        copy.train(training);
        return copy;
    }
}
