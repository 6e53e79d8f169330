using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention.Models;

// RMT's modules. Field names are the official state_dict names (qhfan/RMT, classfication_release/RMT.py), so the
// published checkpoints load without a renaming table. Tokens are laid out [B, h, w, C] throughout, as there.

/// <summary>A depthwise convolution on [B, h, w, C] tokens.</summary>
internal sealed class DepthwiseConv : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public DepthwiseConv(int dim, int kernel) : base(nameof(DepthwiseConv))
    {
        conv = Conv2d(dim, dim, kernel, stride: 1, padding: kernel / 2, groups: dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => conv.forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1);
}

/// <summary>The per-stage decay and rotation (official RetNetRelPos2d): its buffers are in the checkpoints.</summary>
internal sealed class RmtRelPos : Module
{
    private readonly Tensor angle;
    private readonly Tensor decay;

    public RmtRelPos(int dim, int heads, double initialValue, double headsRange) : base(nameof(RmtRelPos))
    {
        Decay = ManhattanDecay.Shared(heads, initialValue, headsRange, dim / heads);
        angle = tensor(Decay.Angle).DetachFromDisposeScope();
        decay = tensor(Decay.LogGamma).DetachFromDisposeScope();
        RegisterComponents();
    }

    public ManhattanDecay Decay { get; }
}

/// <summary>MaSA or MaSAD with RMT's LCE (a 5×5 depthwise convolution on v) and output projection.</summary>
internal sealed class ManhattanSelfAttention : Module<Tensor, ManhattanDecay, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly DepthwiseConv lepe;
    private readonly Linear out_proj;

    private readonly int _heads;
    private readonly bool _decomposed;

    public ManhattanSelfAttention(int dim, int heads, bool decomposed) : base(nameof(ManhattanSelfAttention))
    {
        _heads = heads;
        _decomposed = decomposed;
        q_proj = Linear(dim, dim);
        k_proj = Linear(dim, dim);
        v_proj = Linear(dim, dim);
        lepe = new DepthwiseConv(dim, 5);
        out_proj = Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, ManhattanDecay decay)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3], d = c / _heads;
        var v = v_proj.forward(x);
        var local = lepe.forward(v);
        Tensor Heads(Tensor t) => t.view(b, h, w, _heads, -1).permute(0, 3, 1, 2, 4); // [B, H, h, w, d]
        var (sin, cos) = decay.Rotation(h, w, x.dtype, x.device);
        var q = ManhattanAttention.Rotate(Heads(q_proj.forward(x)), sin, cos);
        var k = ManhattanAttention.Rotate(Heads(k_proj.forward(x).mul(1 / Math.Sqrt(d))), sin, cos);
        var attended = _decomposed
            ? ManhattanAttention.Decomposed(q, k, Heads(v), decay.Mask1d(h, ScalarType.Float32, x.device), decay.Mask1d(w, ScalarType.Float32, x.device))
            : ManhattanAttention.Full(q, k, Heads(v), decay.Mask2d(h, w, ScalarType.Float32, x.device));
        var merged = attended.transpose(1, 2).reshape(b, h, w, c);
        return out_proj.forward(merged + local).MoveToOuterDisposeScope();
    }
}

/// <summary>RMT's feed-forward network: fc1, GELU, a 3×3 depthwise convolution added back, fc2.</summary>
internal sealed class RmtFeedForward : Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly DepthwiseConv dwconv;

    public RmtFeedForward(int dim, int hidden) : base(nameof(RmtFeedForward))
    {
        fc1 = Linear(dim, hidden);
        fc2 = Linear(hidden, dim);
        dwconv = new DepthwiseConv(hidden, 3);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.gelu(fc1.forward(x));
        return fc2.forward(hidden + dwconv.forward(hidden)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// An RMT block: x + CPE(x), then x + DropPath(λ₁·attention(LN(x))), then x + DropPath(λ₂·FFN(LN(x))), the λ only
/// where the stage has layer scale.
/// </summary>
internal sealed class RmtBlock : Module<Tensor, ManhattanDecay, Tensor>
{
    private readonly LayerNorm retention_layer_norm;
    private readonly ManhattanSelfAttention retention;
    private readonly DropPath drop_path;
    private readonly LayerNorm final_layer_norm;
    private readonly RmtFeedForward ffn;
    private readonly DepthwiseConv pos;
    private readonly Parameter? gamma_1;
    private readonly Parameter? gamma_2;

    public RmtBlock(RmtStage stage, double dropPath, double layerScaleInit) : base(nameof(RmtBlock))
    {
        retention_layer_norm = LayerNorm(stage.Dim, eps: 1e-6);
        retention = new ManhattanSelfAttention(stage.Dim, stage.Heads, stage.Decomposed);
        drop_path = new DropPath(dropPath);
        final_layer_norm = LayerNorm(stage.Dim, eps: 1e-6);
        ffn = new RmtFeedForward(stage.Dim, stage.FeedForwardDim);
        pos = new DepthwiseConv(stage.Dim, 3);
        if (stage.LayerScale)
        {
            gamma_1 = Parameters.Owned(full(1, 1, 1, stage.Dim, layerScaleInit));
            gamma_2 = Parameters.Owned(full(1, 1, 1, stage.Dim, layerScaleInit));
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, ManhattanDecay decay)
    {
        using var scope = NewDisposeScope();
        x = x + pos.forward(x);
        var mixed = retention.forward(retention_layer_norm.forward(x), decay);
        x = x + drop_path.forward(gamma_1 is null ? mixed : gamma_1 * mixed);
        var fed = ffn.forward(final_layer_norm.forward(x));
        return (x + drop_path.forward(gamma_2 is null ? fed : gamma_2 * fed)).MoveToOuterDisposeScope();
    }
}

/// <summary>Stride-2 3×3 convolution and BatchNorm between stages (official PatchMerging), on [B, h, w, C].</summary>
internal sealed class RmtPatchMerging : Module<Tensor, Tensor>
{
    private readonly Conv2d reduction;
    private readonly BatchNorm2d norm;

    public RmtPatchMerging(int dim, int outDim) : base(nameof(RmtPatchMerging))
    {
        reduction = Conv2d(dim, outDim, 3, stride: 2, padding: 1);
        norm = BatchNorm2d(outDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => norm.forward(reduction.forward(x.permute(0, 3, 1, 2).contiguous())).permute(0, 2, 3, 1);
}

/// <summary>One stage (official BasicLayer): its decay, its blocks, and the merge to the next stage.</summary>
internal sealed class RmtLayer : Module<Tensor, Tensor>
{
    private readonly RmtRelPos Relpos;
    private readonly ModuleList<RmtBlock> blocks;
    private readonly RmtPatchMerging? downsample;

    public RmtLayer(RmtStage stage, int? nextDim, double initialValue, IEnumerable<double> dropPaths, double layerScaleInit) : base(nameof(RmtLayer))
    {
        Relpos = new RmtRelPos(stage.Dim, stage.Heads, initialValue, stage.HeadsRange);
        blocks = ModuleList(dropPaths.Select(rate => new RmtBlock(stage, rate, layerScaleInit)).ToArray());
        if (nextDim is int next) downsample = new RmtPatchMerging(stage.Dim, next);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in blocks) x = block.forward(x, Relpos.Decay);
        return (downsample is null ? x : downsample.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>RMT's stem (official PatchEmbed): four 3×3 convolutions with BatchNorm, two of stride 2, GELU between.</summary>
internal sealed class RmtPatchEmbed : Module<Tensor, Tensor>
{
    private readonly Sequential proj;

    public RmtPatchEmbed(int channels, int dim) : base(nameof(RmtPatchEmbed))
    {
        int half = dim / 2;
        proj = Sequential(
            Conv2d(channels, half, 3, stride: 2, padding: 1), BatchNorm2d(half), GELU(),
            Conv2d(half, half, 3, stride: 1, padding: 1), BatchNorm2d(half), GELU(),
            Conv2d(half, dim, 3, stride: 2, padding: 1), BatchNorm2d(dim), GELU(),
            Conv2d(dim, dim, 3, stride: 1, padding: 1), BatchNorm2d(dim));
        RegisterComponents();
    }

    /// <summary>[B, C, H, W] images to [B, H/4, W/4, dim] tokens.</summary>
    public override Tensor forward(Tensor images) => proj.forward(images).permute(0, 2, 3, 1);
}
