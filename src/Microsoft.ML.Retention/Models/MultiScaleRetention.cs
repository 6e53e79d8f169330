using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention;

/// <summary>
/// Multi-head retention with one decay γ per head: a fused qkv projection, retention in the
/// chosen <see cref="RetentionMode"/>, then an output projection. RetNet's swish gate and
/// per-head GroupNorm are options, off by default as in ViR. Input and output are [B, N, dim].
/// </summary>
public sealed class MultiScaleRetention : Module<Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly Linear? gate;
    private readonly GroupNorm? group_norm;

    private readonly int _heads;
    private int _chunkSize = ChunkSizes.Auto;

    /// <summary>Creates the layer.</summary>
    /// <param name="dim">Model width; must be divisible by <paramref name="heads"/>.</param>
    /// <param name="heads">Number of heads, each with its own decay.</param>
    /// <param name="schedule">How the per-head decays are chosen.</param>
    /// <param name="useGate">Adds RetNet's swish output gate.</param>
    /// <param name="useGroupNorm">Adds RetNet's per-head GroupNorm on the retention output.</param>
    public MultiScaleRetention(int dim, int heads, DecaySchedule schedule = DecaySchedule.RetNet, bool useGate = false, bool useGroupNorm = false)
        : base(nameof(MultiScaleRetention))
    {
        if (heads <= 0) throw new ArgumentException($"heads must be at least 1, but it is {heads}.", nameof(heads));
        if (dim <= 0 || dim % heads != 0)
            throw new ArgumentException($"dim must be a positive multiple of heads ({heads}), but it is {dim}.", nameof(dim));
        _heads = heads;
        Decay = new RetentionDecay(DecaySchedules.Gammas(schedule, heads));
        qkv = Linear(dim, 3 * dim, hasBias: true);
        proj = Linear(dim, dim);
        if (useGate) gate = Linear(dim, dim);
        if (useGroupNorm) group_norm = GroupNorm(heads, dim, affine: false);
        RegisterComponents();
    }

    /// <summary>The per-head decays.</summary>
    public RetentionDecay Decay { get; }

    /// <summary>The form <see cref="forward(Tensor)"/> computes retention in.</summary>
    public RetentionMode Mode { get; set; } = RetentionMode.Parallel;

    /// <summary>Chunk length for <see cref="RetentionMode.Chunkwise"/>; <see cref="ChunkSizes.Auto"/> (the default) picks it per sequence length.</summary>
    public int ChunkSize
    {
        get => _chunkSize;
        set => _chunkSize = ChunkSizes.Check(value, nameof(ChunkSize));
    }

    /// <summary>Retention over [B, N, dim] tokens in the current <see cref="Mode"/>.</summary>
    public override Tensor forward(Tensor x) => forward(x, Mode, ChunkSize);

    /// <summary>Retention over [B, N, dim] tokens in the given mode.</summary>
    public Tensor forward(Tensor x, RetentionMode mode, int chunkSize)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], dim = x.shape[2];
        // [B, N, 3·dim] -> three [B, H, N, D]
        var qkvHeads = qkv.forward(x).view(b, n, 3, _heads, dim / _heads).permute(2, 0, 3, 1, 4);
        var (q, k, v) = (qkvHeads[0], qkvHeads[1], qkvHeads[2]);

        var retained = mode switch
        {
            RetentionMode.Parallel => RetentionOps.Parallel(q, k, v, Decay),
            RetentionMode.Chunkwise => RetentionOps.Chunkwise(q, k, v, Decay, chunkSize),
            RetentionMode.Recurrent => RetentionOps.Recurrent(q, k, v, Decay),
            _ => throw new ArgumentException($"Unknown retention mode {mode}.", nameof(mode)),
        };

        var y = retained.transpose(1, 2).reshape(b, n, dim);
        if (group_norm is not null) y = group_norm.forward(y.transpose(1, 2)).transpose(1, 2);
        if (gate is not null) y = nn.functional.silu(gate.forward(x)) * y;
        return proj.forward(y).MoveToOuterDisposeScope();
    }
}
