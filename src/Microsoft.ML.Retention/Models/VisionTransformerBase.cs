using Microsoft.ML.Retention.Native;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The image-transformer skeleton <see cref="ViRModel"/> and <see cref="ViTModel"/> share: a patch embedding, a learned
/// position embedding on the patches (interpolated for other resolutions), a learnable [class] token, pre-LN blocks,
/// a final LayerNorm and a linear head that reads the [class] token. It cannot be subclassed outside this library.
/// </summary>
public abstract class VisionTransformerBase : Module<Tensor, Tensor>
{
    private protected readonly PatchEmbedding patch_embed;
    private protected readonly Parameter pos_embed;
    private protected readonly Parameter cls_token;
    private protected readonly Dropout pos_drop;
    private protected readonly ModuleList<TransformerBlock> blocks;
    private protected readonly LayerNorm norm;
    private protected readonly Module<Tensor, Tensor> head;

    private readonly bool _classTokenLast;

    private protected VisionTransformerBase(string name, ViRConfig config, bool classTokenLast, Func<Module<Tensor, RetentionSettings, Tensor>> tokenMixer)
        : base(NativeLoaded(name))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        _classTokenLast = classTokenLast;

        patch_embed = new PatchEmbedding(config.Channels, config.Dim, config.PatchSize, config.Stem);
        pos_embed = Parameters.Owned(randn(1, config.PatchCount, config.Dim).mul_(0.02));
        cls_token = Parameters.Owned(randn(1, 1, config.Dim).mul_(1e-6));
        pos_drop = Dropout(config.Dropout);
        blocks = ModuleList(Enumerable.Range(0, config.Depth)
            .Select(i => new TransformerBlock(config, tokenMixer(), config.DropPath * i / Math.Max(1, config.Depth - 1)))
            .ToArray());
        norm = LayerNorm(config.Dim, eps: 1e-6);
        head = config.NumClasses > 0 ? Linear(config.Dim, config.NumClasses) : Identity();
        RegisterComponents();
        // The stem keeps convolution-style init, also for its pointwise Linear (the 1×1 convolution it stands for).
        Parameters.InitializeLinears(this, name => !name.StartsWith("patch_embed", StringComparison.Ordinal));
    }

    /// <summary>The model's shape.</summary>
    public ViRConfig Config { get; }

    // Before TorchSharp's first native call, so a host that can't load libtorch is told why.
    private static string NativeLoaded(string name)
    {
        TorchSharpNative.EnsureLoaded();
        return name;
    }

    /// <summary>Class logits [B, NumClasses] for images [B, C, H, W] (a ViR computes retention in parallel form).</summary>
    public override Tensor forward(Tensor images) => Forward(images, default);

    /// <summary>The final [class] representation [B, Dim] (after the last LayerNorm) for images [B, C, H, W].</summary>
    public Tensor Embed(Tensor images) => EmbedCore(images, default);

    /// <summary>Class logits [B, NumClasses] from embeddings [B, Dim] (the head alone).</summary>
    public Tensor Classify(Tensor embedding) => head.forward(embedding);

    /// <summary>
    /// The names of the parameters that get no weight decay: biases, norms and LayerScale (every parameter of one
    /// dimension), and the position and class embeddings, as in timm and DeiT.
    /// </summary>
    public IReadOnlySet<string> NoWeightDecay() =>
        named_parameters().Where(p => p.parameter.dim() <= 1 || p.name is "pos_embed" or "cls_token").Select(p => p.name).ToHashSet();

    /// <summary>
    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass of one image at the configured resolution: the
    /// matmuls and convolutions, with token mixing counted in its quadratic form (the parallel form of retention; the
    /// chunkwise form does less at long sequences). Elementwise work is not counted. Training costs about 3× this.
    /// </summary>
    public double ForwardFlopsPerImage()
    {
        var c = Config;
        double n = c.PatchCount + 1, d = c.Dim, hidden = c.MlpHidden;
        double perBlock = 2 * n * d * (3 * d) + 2 * n * d * d + 2 * n * d * hidden * 2 // qkv, proj, MLP
                        + 2 * 2 * n * n * d;                                              // Q·Kᵀ and scores·V
        return PatchEmbedding.Flops(c) + c.Depth * perBlock + 2 * d * c.NumClasses;
    }

    private protected Tensor Forward(Tensor images, RetentionSettings retention)
    {
        using var scope = NewDisposeScope();
        return Classify(EmbedCore(images, retention)).MoveToOuterDisposeScope();
    }

    private protected Tensor EmbedCore(Tensor images, RetentionSettings retention)
    {
        CheckImages(images);
        using var scope = NewDisposeScope();
        long batch = images.shape[0];
        long gridH = images.shape[2] / Config.PatchSize, gridW = images.shape[3] / Config.PatchSize;

        var patches = patch_embed.forward(images) + PositionEmbedding(gridH, gridW);
        var cls = cls_token.expand(batch, -1, -1);
        var x = Dropouts.Apply(pos_drop, _classTokenLast ? cat(new[] { patches, cls }, 1) : cat(new[] { cls, patches }, 1));
        retention = retention with { Grid = (gridH, gridW) };
        foreach (var block in blocks) x = block.forward(x, retention);
        x = norm.forward(x);
        return x.select(1, _classTokenLast ? -1 : 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The [class] representation [B, Dim] computed band by band: a band of at most <paramref name="bandTokens"/> tokens
    /// (whole patch rows, or a piece of one row when a row holds more) passes through every block before the next enters,
    /// each block carrying its retention state across bands (chunkwise inside a band), and the [class] token goes last.
    /// Every block is causal in token order, so this equals the chunkwise form over the whole image, while the
    /// activations held are one band's and one state per block, whatever the image's height and width.
    /// Inference only (eval mode): BatchNorm in the stem must use its running statistics.
    /// </summary>
    internal Tensor EmbedStreaming(Tensor images, int bandTokens, int chunkSize)
    {
        CheckImages(images);
        return EmbedStreaming((first, count, column, columns) => images.narrow(2, first, count).narrow(3, column, columns), images.shape[0],
            images.shape[2], images.shape[3], images.dtype, images.device, bandTokens, chunkSize);
    }

    /// <summary>Patch rows a band of at most <paramref name="bandTokens"/> tokens holds in a grid <paramref name="gridW"/> patches wide: at least one.</summary>
    internal static long StreamingBandRows(long gridW, int bandTokens) => Math.Max(1, bandTokens / gridW);

    /// <inheritdoc cref="EmbedStreaming(Tensor, int, int)"/>
    /// <param name="pixels">Reads the pixels of rows [first, first + count) and columns [column, column + columns) as
    /// [B, C, count, columns]; called once per band, going down the image.</param>
    /// <param name="batch">Images in the batch.</param>
    /// <param name="height">The images' height in pixels, a multiple of the patch size.</param>
    /// <param name="width">The images' width in pixels, a multiple of the patch size.</param>
    /// <param name="type">The pixels' type.</param>
    /// <param name="device">The pixels' device.</param>
    /// <param name="bandTokens">The most tokens a band holds.</param>
    /// <param name="chunkSize">Tokens per chunk inside a band.</param>
    /// <param name="progress">Told the fraction of the image done after each band.</param>
    /// <param name="cancellation">Checked before each band.</param>
    internal Tensor EmbedStreaming(Func<long, long, long, long, Tensor> pixels, long batch, long height, long width, ScalarType type, Device device,
        int bandTokens, int chunkSize, Action<double>? progress = null, CancellationToken cancellation = default)
    {
        if (!_classTokenLast) throw new NotSupportedException("Only a causal model with its [class] token last (a ViR) can take an image band by band.");
        if (Config.SpatialDecay is { } spatial)
            throw new NotSupportedException($"A ViR with a 2-D decay (SpatialDecay {spatial}) is not streamed band by band; score it whole, in any retention form.");
        if (training) throw new InvalidOperationException("Streaming is for inference: call eval() first (the stem's BatchNorm must use its running statistics).");
        if (bandTokens < 1) throw new ArgumentOutOfRangeException(nameof(bandTokens), bandTokens, $"bandTokens must be at least 1, but it is {bandTokens}.");
        ChunkSizes.Check(chunkSize, nameof(chunkSize));
        CheckSize(height, width, nameof(height));
        long p = Config.PatchSize;
        using var scope = NewDisposeScope();
        long gridH = height / p, gridW = width / p;
        long bandRows = StreamingBandRows(gridW, bandTokens);
        long pieces = (gridW * bandRows + bandTokens - 1) / bandTokens, pieceWidth = (gridW + pieces - 1) / pieces; // one piece unless a row is too long
        var states = blocks.Select(block => block.Retention.InitialState(batch, type, device)).ToArray();

        // The next tokens through every block, each continuing from its state and leaving the next.
        Tensor Step(Tensor x)
        {
            for (int i = 0; i < blocks.Count; i++)
            {
                var (output, next) = blocks[i].ForwardStep(x, states[i], chunkSize);
                states[i].Dispose();
                (x, states[i]) = (output, next);
            }
            return x;
        }

        for (long first = 0; first < gridH; first += bandRows)
        {
            long rows = Math.Min(bandRows, gridH - first);
            for (long column = 0; column < gridW; column += pieceWidth)
            {
                cancellation.ThrowIfCancellationRequested();
                using var band = NewDisposeScope();
                long columns = Math.Min(pieceWidth, gridW - column);
                var tokens = BandTokens(pixels, batch, first, rows, gridH, column, columns, gridW) + PositionEmbeddingBand(gridH, gridW, first, rows, column, columns);
                Step(Dropouts.Apply(pos_drop, tokens));
                foreach (var state in states) state.MoveToOuterDisposeScope();
                progress?.Invoke((double)(first * gridW + rows * (column + columns)) / (gridH * gridW));
            }
        }
        var cls = Step(cls_token.expand(batch, -1, -1));
        return norm.forward(cls).select(1, 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The tokens of patch rows [first, first + rows) and columns [column, column + columns). The convolutional stem's
    /// 3×3 convolutions see past a band's edge, so it reads one patch more on each side that has one, and those tokens
    /// are cut off: the padding then only touches the cut tokens, and the kept ones are the whole image's.
    /// </summary>
    private Tensor BandTokens(Func<long, long, long, long, Tensor> pixels, long batch, long first, long rows, long gridH, long column, long columns, long gridW)
    {
        long p = Config.PatchSize;
        bool margins = Config.Stem == PatchStem.Convolutional;
        long above = margins && first > 0 ? 1 : 0, below = margins && first + rows < gridH ? 1 : 0;
        long left = margins && column > 0 ? 1 : 0, right = margins && column + columns < gridW ? 1 : 0;
        long tall = above + rows + below, wide = left + columns + right;
        var window = pixels((first - above) * p, tall * p, (column - left) * p, wide * p);
        long[] expected = { batch, Config.Channels, tall * p, wide * p };
        if (!window.shape.SequenceEqual(expected))
            throw new ArgumentException($"The pixels of rows {(first - above) * p} to {(first + rows + below) * p - 1} and columns {(column - left) * p} to " +
                $"{(column + columns + right) * p - 1} must have shape [{string.Join(", ", expected)}], but they have {RetentionOps.ShapeOf(window)}.", nameof(pixels));
        var tokens = patch_embed.forward(window); // [B, tall·wide, Dim]
        return tokens.view(batch, tall, wide, Config.Dim).narrow(1, above, rows).narrow(2, left, columns).reshape(batch, rows * columns, Config.Dim);
    }

    /// <summary>
    /// Patch rows [first, first + rows) and columns [column, column + columns) of <see cref="PositionEmbedding"/>(gridH,
    /// gridW), [1, rows·columns, Dim], without the rest of the grid: the learned grid resampled with the cubic weights
    /// (A = −0.75, clamped edges) libtorch's bicubic resize uses, along the height and then the width, for those
    /// positions only.
    /// </summary>
    internal Tensor PositionEmbeddingBand(long gridH, long gridW, long first, long rows, long column, long columns)
    {
        long configH = Config.ImageHeight / Config.PatchSize, configW = Config.ImageWidth / Config.PatchSize;
        using var scope = NewDisposeScope();
        var grid = pos_embed.view(configH, configW, Config.Dim);
        Tensor band;
        if (gridH == configH && gridW == configW)
            band = grid.narrow(0, first, rows).narrow(1, column, columns);
        else
        {
            var down = tensor(CubicWeights(configH, gridH, first, rows), new[] { rows, configH }, pos_embed.dtype, pos_embed.device);
            var across = tensor(CubicWeights(configW, gridW, column, columns), new[] { columns, configW }, pos_embed.dtype, pos_embed.device);
            var tall = down.matmul(grid.view(configH, configW * Config.Dim)).view(rows, configW, Config.Dim); // [rows, configW, Dim]
            band = across.matmul(tall);                                                                         // [rows, columns, Dim]
        }
        return band.reshape(1, rows * columns, Config.Dim).MoveToOuterDisposeScope();
    }

    // The [rows, input] weights of a bicubic resize from input to output positions, for output rows [first, first + rows).
    private static float[] CubicWeights(long input, long output, long first, long rows)
    {
        const double A = -0.75;
        static double Near(double x) => ((A + 2) * x - (A + 3)) * x * x + 1;        // |x| ≤ 1
        static double Far(double x) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;    // 1 < |x| < 2
        var weights = new float[rows * input];
        double scale = (double)input / output;
        for (long i = 0; i < rows; i++)
        {
            double source = (first + i + 0.5) * scale - 0.5;
            long index = (long)Math.Floor(source);
            double t = source - index;
            double[] w = { Far(t + 1), Near(t), Near(1 - t), Far(2 - t) };
            for (int j = 0; j < 4; j++) weights[i * input + Math.Clamp(index - 1 + j, 0, input - 1)] += (float)w[j];
        }
        return weights;
    }

    /// <summary>The position embedding [1, gridH·gridW, Dim] for a patch grid of the given size.</summary>
    internal Tensor PositionEmbedding(long gridH, long gridW)
    {
        long configH = Config.ImageHeight / Config.PatchSize, configW = Config.ImageWidth / Config.PatchSize;
        if (gridH == configH && gridW == configW) return pos_embed;
        // Another resolution: resample the learned grid bicubically, as timm does.
        var grid = pos_embed.view(1, configH, configW, Config.Dim).permute(0, 3, 1, 2);
        var resized = nn.functional.interpolate(grid, new[] { gridH, gridW }, mode: InterpolationMode.Bicubic, align_corners: false);
        return resized.permute(0, 2, 3, 1).reshape(1, gridH * gridW, Config.Dim);
    }

    private void CheckImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"images must have shape [B, C, H, W], but its shape is {RetentionOps.ShapeOf(images)}.", nameof(images));
        if (images.shape[1] != Config.Channels)
            throw new ArgumentException($"images must have {Config.Channels} channels, but they have {images.shape[1]} (shape {RetentionOps.ShapeOf(images)}).", nameof(images));
        CheckSize(images.shape[2], images.shape[3], nameof(images));
    }

    private void CheckSize(long height, long width, string argument)
    {
        long p = Config.PatchSize;
        if (height < p || width < p || height % p != 0 || width % p != 0)
            throw new ArgumentException($"The image size must be a positive multiple of the patch size {p}, but it is {height}×{width}.", argument);
    }
}
