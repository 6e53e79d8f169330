using Microsoft.ML.Retention.Native;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// RMT (Fan et al., CVPR 2024), exactly the official classification model: a four-convolution stem, four stages of
/// blocks with Manhattan-decayed attention (MaSAD in the early stages, MaSA later), stride-2 merges between them, and
/// a head of a per-token Linear, BatchNorm and Swish, average pooling and a Linear. Module names are the official
/// state_dict names, so the published checkpoints' weights load as they are. Any image size whose grid survives the
/// stem and the merges works; masks and rotations are built per grid and cached.
/// </summary>
public sealed class RmtModel : Module<Tensor, Tensor>, IVisionBackbone
{
    private readonly RmtPatchEmbed patch_embed;
    private readonly ModuleList<RmtLayer> layers;
    private readonly Linear proj;
    private readonly BatchNorm2d norm;
    private readonly Module<Tensor, Tensor> head;

    /// <summary>Creates a randomly initialised RMT (seed it with <c>torch.manual_seed</c>).</summary>
    public RmtModel(RmtConfig config) : base(NativeLoaded())
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var stages = config.Stages;
        patch_embed = new RmtPatchEmbed(config.Channels, stages[0].Dim);
        int blockCount = stages.Sum(s => s.Depth);
        var rates = Enumerable.Range(0, blockCount).Select(i => blockCount == 1 ? 0 : config.DropPathRate * i / (blockCount - 1)).ToArray();
        layers = ModuleList(stages.Select((stage, i) => new RmtLayer(stage, i + 1 < stages.Count ? stages[i + 1].Dim : null, config.InitialValue,
            rates.Skip(stages.Take(i).Sum(s => s.Depth)).Take(stage.Depth), config.LayerScaleInit)).ToArray());
        proj = Linear(stages[^1].Dim, config.Projection);
        norm = BatchNorm2d(config.Projection);
        head = config.NumClasses > 0 ? Linear(config.Projection, config.NumClasses) : Identity();
        RegisterComponents();
        Parameters.InitializeLinears(this, _ => true); // as the official model; convolutions and BatchNorm as built
    }

    /// <summary>The model's shape.</summary>
    public RmtConfig Config { get; }

    private static string NativeLoaded()
    {
        TorchSharpNative.EnsureLoaded();
        return nameof(RmtModel);
    }

    /// <summary>Class logits [B, NumClasses] for images [B, C, H, W].</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return head.forward(Embed(images)).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled features [B, Projection] the head reads.</summary>
    public Tensor Embed(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != Config.Channels)
            throw new ArgumentException($"images must have shape [B, {Config.Channels}, H, W], but its shape is [{string.Join(", ", images.shape)}].", nameof(images));
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(images);
        foreach (var layer in layers) x = layer.forward(x);
        var projected = norm.forward(proj.forward(x).permute(0, 3, 1, 2)).flatten(2, 3); // [B, P, h·w]
        return nn.functional.silu(projected).mean(new long[] { 2 }).MoveToOuterDisposeScope();
    }

    /// <summary>Class logits [B, NumClasses] from pooled features [B, Projection] (the head alone).</summary>
    public Tensor Classify(Tensor embedding) => head.forward(embedding);

    /// <summary>The parameters AdamW does not decay: those of one dimension (biases, norms), as the official recipe (timm's).</summary>
    public IReadOnlySet<string> NoWeightDecay() =>
        named_parameters().Where(p => p.parameter.dim() <= 1).Select(p => p.name).ToHashSet();

    /// <summary>A bfloat16 copy of these weights (<see cref="Parameters.BFloat16Copy"/>).</summary>
    internal RmtModel BFloat16Copy() => Parameters.BFloat16Copy(this, () => new RmtModel(Config));

    IVisionBackboneConfig IVisionBackbone.Architecture => Config;

    nn.Module IVisionBackbone.Module => this;

    Tensor IVisionBackbone.forward(Tensor images, RetentionSettings retention) => forward(images);

    Tensor IVisionBackbone.Embed(Tensor images, RetentionSettings retention) => Embed(images);

    IVisionBackbone IVisionBackbone.BFloat16Copy() => BFloat16Copy();

    bool IVisionBackbone.LoadInitialWeights(string path, bool movingAverage) => RmtCheckpoint.LoadInto(this, path, movingAverage);

    void IVisionBackbone.SaveWeights(string path, IReadOnlyList<string>? labelNames) => RmtCheckpoint.Save(this, path, labelNames);

    /// <summary>
    /// Multiply-add FLOPs (2 per multiply-add, as <see cref="VisionTransformerBase.ForwardFlopsPerImage"/> counts) of one
    /// forward pass of one <paramref name="height"/>×<paramref name="width"/> image: convolutions, projections, the MLPs
    /// and attention's two matmuls (MaSA quadratic in the grid, MaSAD along rows and columns). The paper's FLOPs (fvcore)
    /// count one per multiply-add: half of this.
    /// </summary>
    public double ForwardFlopsPerImage(int height, int width)
    {
        var c = Config;
        double macs = 0;
        long h = (height + 1) / 2, w = (width + 1) / 2, dim = c.Stages[0].Dim, half = dim / 2;
        macs += h * w * 9.0 * (c.Channels * half + half * half);                 // stem, at 1/2
        h = (h + 1) / 2; w = (w + 1) / 2;
        macs += h * w * 9.0 * (half * dim + dim * dim);                          // stem, at 1/4
        for (int i = 0; i < c.Stages.Count; i++)
        {
            var s = c.Stages[i];
            double n = h * w, d = s.Dim, f = s.FeedForwardDim;
            double attention = s.Decomposed ? 2 * n * (h + w) * d : 2 * n * n * d;
            macs += s.Depth * (n * d * 9 + 4 * n * d * d + n * d * 25 + attention + 2 * n * d * f + n * f * 9);
            if (i + 1 < c.Stages.Count)
            {
                h = (h + 1) / 2; w = (w + 1) / 2;
                macs += h * w * 9.0 * d * c.Stages[i + 1].Dim;                   // merge
            }
        }
        macs += h * w * (double)c.Stages[^1].Dim * c.Projection + (double)c.Projection * c.NumClasses;
        return 2 * macs;
    }
}
