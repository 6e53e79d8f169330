using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention.Models;

internal static class Parameters
{
    /// <summary>
    /// A parameter that belongs to its module, not to the dispose scope the module is built in:
    /// TorchSharp's Parameter takes over the tensor's handle, and a scoped tensor would be freed with the scope.
    /// </summary>
    public static Parameter Owned(Tensor initialValue) => new(initialValue.DetachFromDisposeScope());

    /// <summary>
    /// timm's init for every Linear of <paramref name="model"/> whose module name <paramref name="include"/> accepts:
    /// weight normal(0, 0.02), bias 0. timm's trunc_normal_(std=.02) truncates at ±2 absolute, i.e. never at this std;
    /// TorchSharp 0.107's trunc_normal_ fills every entry with the same value (measured), so normal_.
    /// </summary>
    public static void InitializeLinears(Module model, Func<string, bool> include)
    {
        using var noGrad = no_grad();
        foreach (var (name, module) in model.named_modules())
        {
            if (module is not Linear linear || !include(name)) continue;
            nn.init.normal_(linear.weight, 0, 0.02);
            if (linear.bias is not null) nn.init.zeros_(linear.bias);
        }
    }

    /// <summary>
    /// A bfloat16 copy of <paramref name="model"/> (made by <paramref name="create"/>) on its device, for scoring and
    /// mixed-precision training. Norm layers stay float32 (libtorch takes bfloat16 inputs with float32 norm weights), so
    /// their weights and statistics keep full precision. Building it leaves the global random generator as it was.
    /// </summary>
    public static T BFloat16Copy<T>(T model, Func<T> create) where T : Module
    {
        var device = model.parameters().First().device;
        T copy;
        using (var rng = Generator.Default.get_state())
        {
            copy = create(); // its random initialisation is overwritten below
            Generator.Default.set_state(rng);
        }
        copy.to(device);
        copy.to(ScalarType.BFloat16);
        foreach (var (_, module) in copy.named_modules())
            if (module is TorchSharp.Modules.BatchNorm2d or TorchSharp.Modules.LayerNorm) module.to(ScalarType.Float32);
        copy.load_state_dict(model.state_dict()); // after the casts, so float32 norms get their values unrounded
        copy.train(model.training);
        return copy;
    }
}

/// <summary>
/// Turns an image into patch tokens: [B, C, H, W] to [B, H/p·W/p, dim]. <see cref="PatchStem.Patchify"/> projects
/// non-overlapping p×p patches; <see cref="PatchStem.Convolutional"/> uses stride-2 3×3 convolutions, as in
/// Xiao et al., "Early Convolutions Help Transformers See Better" (2021).
/// </summary>
internal sealed class PatchEmbedding : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> proj;
    private readonly Linear? pointwise;

    public PatchEmbedding(int channels, int dim, int patchSize, PatchStem stem) : base(nameof(PatchEmbedding))
    {
        if (stem == PatchStem.Convolutional)
        {
            int[] widths = ConvolutionalStemWidths(dim, patchSize);
            proj = ConvolutionalStages(channels, widths);
            // The stem's closing 1×1 convolution, applied as a Linear on the tokens: the same map, but it keeps
            // single-image scoring off libtorch's NNPACK path, which logs a warning per call where it is unsupported.
            pointwise = Linear(widths[^1], dim);
        }
        else
        {
            proj = Conv2d(channels, dim, kernel_size: patchSize, stride: patchSize);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        var tokens = proj.forward(images).flatten(2).transpose(1, 2);
        return pointwise is null ? tokens : pointwise.forward(tokens);
    }

    /// <summary>Multiply-add FLOPs of the stem for one image (see <see cref="VisionTransformerBase.ForwardFlopsPerImage"/>).</summary>
    public static double Flops(ViRConfig c)
    {
        if (c.Stem == PatchStem.Patchify) return 2.0 * c.PatchCount * c.Channels * c.PatchSize * c.PatchSize * c.Dim;
        double flops = 0, inChannels = c.Channels, pixels = (double)c.ImageHeight * c.ImageWidth;
        foreach (int outChannels in ConvolutionalStemWidths(c.Dim, c.PatchSize))
        {
            pixels /= 4; // each stage halves both sides
            flops += 2 * pixels * inChannels * outChannels * 9;
            inChannels = outChannels;
        }
        return flops + 2 * pixels * inChannels * c.Dim; // the 1×1 projection
    }

    /// <summary>Learnable parameters of the stem (see <see cref="ViRConfig.ParameterCount"/>), in double so nothing overflows.</summary>
    public static double ParameterCount(ViRConfig c)
    {
        if (c.Stem == PatchStem.Patchify) return (double)c.Channels * c.PatchSize * c.PatchSize * c.Dim + c.Dim;
        double count = 0, inChannels = c.Channels;
        foreach (int outChannels in ConvolutionalStemWidths(c.Dim, c.PatchSize))
        {
            count += inChannels * outChannels * 9 + 2 * outChannels; // bias-free conv, BatchNorm's weight and bias
            inChannels = outChannels;
        }
        return count + inChannels * c.Dim + c.Dim; // the 1×1 projection
    }

    /// <summary>Output channels of each stride-2 stage of the convolutional stem: doubling up to dim.</summary>
    private static int[] ConvolutionalStemWidths(int dim, int patchSize)
    {
        int stages = System.Numerics.BitOperations.Log2((uint)patchSize);
        return Enumerable.Range(0, stages).Select(i => Math.Max(8, dim >> (stages - 1 - i))).ToArray();
    }

    // log2(p) blocks of conv3×3/2, BatchNorm and ReLU, widening to dim.
    private static Sequential ConvolutionalStages(int channels, int[] widths)
    {
        var layers = new List<Module<Tensor, Tensor>>();
        int inChannels = channels;
        foreach (int outChannels in widths)
        {
            layers.Add(new StridedConvolution3x3(inChannels, outChannels));
            layers.Add(BatchNorm2d(outChannels));
            layers.Add(ReLU());
            inChannels = outChannels;
        }
        return Sequential(layers);
    }
}

/// <summary>
/// A bias-free 3×3 convolution with stride 2 and padding 1, computed as unfold and matmul. libtorch's Conv2d
/// tries NNPACK for such convolutions and, where NNPACK is unsupported, logs a warning on every call.
/// </summary>
internal sealed class StridedConvolution3x3 : Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public StridedConvolution3x3(int inChannels, int outChannels) : base(nameof(StridedConvolution3x3))
    {
        // Conv2d's default initialisation: Kaiming-uniform with a = √5 over fan-in = inChannels·9.
        weight = Parameters.Owned(empty(outChannels, inChannels, 3, 3));
        using (no_grad()) nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        long batch = images.shape[0], height = (images.shape[2] + 1) / 2, width = (images.shape[3] + 1) / 2;
        var columns = nn.functional.unfold(images, kernel_size: 3, padding: 1, stride: 2); // [B, C·9, H'·W']
        return weight.view(weight.shape[0], -1).matmul(columns).view(batch, -1, height, width);
    }
}

/// <summary>The transformer MLP: Linear, GELU, Linear, with dropout.</summary>
internal sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly GELU act;
    private readonly Linear fc2;
    private readonly Dropout drop;

    public Mlp(int dim, int hidden, double dropout) : base(nameof(Mlp))
    {
        fc1 = Linear(dim, hidden);
        act = GELU();
        fc2 = Linear(hidden, dim);
        drop = Dropout(dropout);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Dropouts.Apply(drop, fc2.forward(Dropouts.Apply(drop, act.forward(fc1.forward(x)))));
}

internal static class Dropouts
{
    /// <summary>
    /// <paramref name="drop"/> over <paramref name="x"/> where it acts (training, rate above 0); otherwise x itself,
    /// without the native call an identity dropout still makes (it matters at batch 1).
    /// </summary>
    public static Tensor Apply(Dropout drop, Tensor x) => drop.training && drop.p > 0 ? drop.forward(x) : x;
}

/// <summary>Per-channel learnable scale on a residual branch (CaiT's LayerScale).</summary>
internal sealed class LayerScale : Module<Tensor, Tensor>
{
    private readonly Parameter gamma;

    public LayerScale(int dim, double init) : base(nameof(LayerScale))
    {
        gamma = Parameters.Owned(full(dim, init));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * gamma;
}

/// <summary>Stochastic depth: in training, drops a whole residual branch per sample.</summary>
internal sealed class DropPath : Module<Tensor, Tensor>
{
    private readonly double _rate;

    public DropPath(double rate) : base(nameof(DropPath)) => _rate = rate;

    public override Tensor forward(Tensor x)
    {
        if (!training || _rate <= 0) return x;
        double keep = 1 - _rate;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        return x * bernoulli(full(shape, keep, x.dtype, x.device)).div_(keep);
    }
}

/// <summary>
/// A pre-LayerNorm transformer block around any token mixer:
/// <c>x + drop_path(ls1(mixer(norm1(x))))</c>, then <c>x + drop_path(ls2(mlp(norm2(x))))</c>.
/// ViR uses multi-scale retention as the mixer, ViT softmax attention; the retention settings go to the mixer.
/// </summary>
internal sealed class TransformerBlock : Module<Tensor, RetentionSettings, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly Module<Tensor, RetentionSettings, Tensor> mixer;
    private readonly LayerScale? ls1;
    private readonly LayerNorm norm2;
    private readonly Mlp mlp;
    private readonly LayerScale? ls2;
    private readonly DropPath drop_path;

    public TransformerBlock(ViRConfig config, Module<Tensor, RetentionSettings, Tensor> tokenMixer, double dropPath) : base(nameof(TransformerBlock))
    {
        norm1 = LayerNorm(config.Dim, eps: 1e-6);
        mixer = tokenMixer;
        if (config.LayerScaleInit > 0) ls1 = new LayerScale(config.Dim, config.LayerScaleInit);
        norm2 = LayerNorm(config.Dim, eps: 1e-6);
        mlp = new Mlp(config.Dim, config.MlpHidden, config.Dropout);
        if (config.LayerScaleInit > 0) ls2 = new LayerScale(config.Dim, config.LayerScaleInit);
        drop_path = new DropPath(dropPath);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, RetentionSettings retention)
    {
        using var scope = NewDisposeScope();
        x = Branch(ls1, mixer.forward(norm1.forward(x), retention)).add_(x);
        x = Branch(ls2, mlp.forward(norm2.forward(x))).add_(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The retention mixer, for streaming (a ViT's softmax attention has no state to carry).</summary>
    public MultiScaleRetention Retention => mixer as MultiScaleRetention
        ?? throw new NotSupportedException("Only a block with retention can take a sequence in pieces; softmax attention needs every token at once.");

    /// <summary>The block over the next piece of a sequence, its retention continuing from <paramref name="state"/>.</summary>
    public (Tensor Output, Tensor State) ForwardStep(Tensor x, Tensor state, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (mixed, next) = Retention.ForwardStep(norm1.forward(x), state, chunkSize);
        x = Branch(ls1, mixed).add_(x);
        x = Branch(ls2, mlp.forward(norm2.forward(x))).add_(x);
        return (x.MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
    }

    // A residual branch's output, which the block then adds x to in place: it is a fresh tensor that no backward pass
    // needs (Linear, scale and drop-path keep their inputs), so one allocation per branch is saved.
    private Tensor Branch(LayerScale? scale, Tensor output) => drop_path.forward(scale is null ? output : scale.forward(output));
}

/// <summary>
/// Softmax multi-head attention through libtorch's fused scaled_dot_product_attention (the ViT baseline). It takes
/// retention settings only to fit the block's mixer slot, and has no use for them.
/// </summary>
internal sealed class SoftmaxAttention : Module<Tensor, RetentionSettings, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly int _heads;

    public SoftmaxAttention(int dim, int heads) : base(nameof(SoftmaxAttention))
    {
        _heads = heads;
        qkv = Linear(dim, 3 * dim);
        proj = Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, RetentionSettings _)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], dim = x.shape[2];
        var qkvHeads = qkv.forward(x).view(b, n, 3, _heads, dim / _heads).permute(2, 0, 3, 1, 4);
        var attended = nn.functional.scaled_dot_product_attention(qkvHeads[0], qkvHeads[1], qkvHeads[2]);
        return proj.forward(attended.transpose(1, 2).reshape(b, n, dim)).MoveToOuterDisposeScope();
    }
}
