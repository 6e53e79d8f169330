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
        : base(nameof(ViRModel), config, classTokenLast: true, () => new MultiScaleRetention(config.Dim, config.Heads, config.DecaySchedule,
            useGroupNorm: config.RetentionGroupNorm, spatialDecay: config.SpatialDecay))
    {
    }

    /// <summary>Class logits [B, NumClasses] for images [B, C, H, W], with retention computed as <paramref name="retention"/> says.</summary>
    public Tensor forward(Tensor images, RetentionSettings retention) => Forward(images, retention);

    /// <summary>The [class] representation [B, Dim], with retention computed as <paramref name="retention"/> says.</summary>
    public Tensor Embed(Tensor images, RetentionSettings retention) => EmbedCore(images, retention);

    /// <summary>
    /// The [class] representation [B, Dim] of images fed a band of at most <paramref name="bandTokens"/> tokens at a time
    /// (whole patch rows, or a piece of a row when one row holds more): every band passes through all blocks before the
    /// next is read, each block carrying its retention state, so the activations held are one band's whatever the image's
    /// size (chunkwise inside a band, <paramref name="chunkSize"/> tokens a chunk). Equal to
    /// <see cref="Embed(Tensor, RetentionSettings)"/> in chunkwise form. Inference only: call eval() first.
    /// </summary>
    /// <param name="pixelRows">Reads pixel rows [first, first + count) as [B, C, count, width], preprocessed; called once per band of rows, going down the image.</param>
    /// <param name="batch">Images in the batch.</param>
    /// <param name="height">The images' height in pixels, a multiple of the patch size.</param>
    /// <param name="width">The images' width in pixels, a multiple of the patch size.</param>
    /// <param name="bandTokens">The most tokens a band holds; memory follows it, not the image's size.</param>
    /// <param name="chunkSize">Tokens per chunk inside a band, or <see cref="ChunkSizes.Auto"/>.</param>
    public Tensor EmbedStreaming(Func<long, long, Tensor> pixelRows, long batch, long height, long width, int bandTokens = DefaultBandTokens, int chunkSize = ChunkSizes.Auto)
    {
        ArgumentNullException.ThrowIfNull(pixelRows);
        var weights = parameters().First();
        return EmbedStreaming((first, count, column, columns) => pixelRows(first, count).narrow(3, column, columns), batch, height, width,
            weights.dtype, weights.device, bandTokens, chunkSize);
    }

    /// <summary>Tokens a streamed band holds unless told otherwise: 4 patch rows of a 2048-pixel-wide image at patch 16.</summary>
    public const int DefaultBandTokens = 512;

    /// <summary>A bfloat16 copy of these weights (<see cref="Parameters.BFloat16Copy"/>).</summary>
    internal ViRModel BFloat16Copy() => Parameters.BFloat16Copy(this, () => new ViRModel(Config));

    IVisionBackboneConfig IVisionBackbone.Architecture => Config;

    nn.Module IVisionBackbone.Module => this;

    IVisionBackbone IVisionBackbone.BFloat16Copy() => BFloat16Copy();

    bool IVisionBackbone.LoadInitialWeights(string path, bool movingAverage) => ViRCheckpoint.LoadInto(this, path);

    void IVisionBackbone.SaveWeights(string path, IReadOnlyList<string>? labelNames) => ViRCheckpoint.Save(this, path, labelNames);
}
