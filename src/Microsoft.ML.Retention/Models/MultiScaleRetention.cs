using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// Multi-head retention with one decay γ per head: a fused qkv projection, retention in the form the
/// <see cref="RetentionSettings"/> name, then an output projection. RetNet's swish gate and per-head GroupNorm are
/// options, off by default as in ViR. Input and output are [B, N, dim]. With a 2-D decay (<see cref="SpatialRetention"/>)
/// the tokens are the patches of <see cref="RetentionSettings"/>' grid in raster order and then the [class] token.
/// </summary>
public sealed class MultiScaleRetention : Module<Tensor, RetentionSettings, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly Linear? gate;
    private readonly GroupNorm? group_norm;

    private readonly int _heads;
    private readonly RetentionDecay _decay;
    private readonly SpatialDecayShape? _spatial;
    private readonly double[] _gammas;

    /// <summary>Creates the layer.</summary>
    /// <param name="dim">Model width; must be divisible by <paramref name="heads"/>.</param>
    /// <param name="heads">Number of heads, each with its own decay.</param>
    /// <param name="schedule">How the per-head decays are chosen.</param>
    /// <param name="useGate">Adds RetNet's swish output gate.</param>
    /// <param name="useGroupNorm">Adds RetNet's GroupNorm on the retention output: each head of each token normalised, without weights.</param>
    /// <param name="spatialDecay">Decays by the 2-D distance between patches instead of along the raster order; null for the 1-D decay.</param>
    public MultiScaleRetention(int dim, int heads, DecaySchedule schedule = DecaySchedule.RetNet, bool useGate = false, bool useGroupNorm = false,
        SpatialDecayShape? spatialDecay = null)
        : base(nameof(MultiScaleRetention))
    {
        if (heads <= 0) throw new ArgumentException($"heads must be at least 1, but it is {heads}.", nameof(heads));
        if (dim <= 0 || dim % heads != 0)
            throw new ArgumentException($"dim must be a positive multiple of heads ({heads}), but it is {dim}.", nameof(dim));
        if (spatialDecay is { } shape && !Enum.IsDefined(shape))
            throw new ArgumentOutOfRangeException(nameof(spatialDecay), shape, $"spatialDecay must be null, Bidirectional or CausalQuadrant, but it is {shape}.");
        _heads = heads;
        _spatial = spatialDecay;
        _decay = RetentionDecay.Shared(DecaySchedules.Gammas(schedule, heads));
        _gammas = _decay.Gammas.Select(g => (double)g).ToArray();
        qkv = Linear(dim, 3 * dim, hasBias: true);
        proj = Linear(dim, dim);
        if (useGate) gate = Linear(dim, dim);
        if (useGroupNorm) group_norm = GroupNorm(heads, dim, affine: false);
        RegisterComponents();
    }

    /// <summary>The decay γ of each head.</summary>
    public IReadOnlyList<float> Gammas => _decay.Gammas;

    /// <summary>The decays and their cached masks, shared by every layer with the same γ.</summary>
    internal RetentionDecay Decay => _decay;

    /// <summary>Retention over [B, N, dim] tokens, computed as <paramref name="retention"/> says.</summary>
    public override Tensor forward(Tensor x, RetentionSettings retention)
    {
        using var scope = NewDisposeScope();
        var dims = x.shape; // one native call: at batch 1 these add up
        var (q, k, v) = Heads(x, dims);
        var retained = _spatial is { } shape ? Spatial(q, k, v, shape, retention) : retention.Mode switch
        {
            RetentionMode.Parallel => RetentionOps.Parallel(q, k, v, _decay),
            RetentionMode.Chunkwise => RetentionOps.Chunkwise(q, k, v, _decay, retention.ChunkSize),
            _ => RetentionOps.Recurrent(q, k, v, _decay),
        };
        return Output(x, dims, retained).MoveToOuterDisposeScope();
    }

    // The patches in the 2-D form the mode names (parallel: with the [class] token in one mask; chunkwise: tiles of about
    // a chunk's tokens; recurrent: the causal quadrant's row-by-row form, or the scan for the bidirectional decay, which
    // has no one-pass form), then the [class] token, which reads the grid from one place past its last patch.
    private Tensor Spatial(Tensor q, Tensor k, Tensor v, SpatialDecayShape shape, RetentionSettings retention)
    {
        var (rows, columns) = retention.Grid;
        long patches = rows * columns;
        if (patches < 1 || patches + 1 != q.shape[2])
            throw new ArgumentException($"A 2-D decay needs the patch grid the tokens came from: {rows}×{columns} patches and the [class] token make " +
                $"{patches + 1} tokens, but there are {q.shape[2]}.", nameof(retention));
        if (retention.Mode == RetentionMode.Parallel) return SpatialRetention.ParallelWithReader(q, k, v, _gammas, rows, columns, shape);
        var gamma = _decay.Gamma(ScalarType.Float64, q.device);
        var (qp, kp, vp) = (q.narrow(2, 0, patches), k.narrow(2, 0, patches), v.narrow(2, 0, patches));
        int side = SpatialRetention.TileSide(retention.ChunkSize, patches);
        var grid = retention.Mode switch
        {
            RetentionMode.Chunkwise => SpatialRetention.Tiled(qp, kp, vp, gamma, rows, columns, shape, side, side),
            _ when shape == SpatialDecayShape.CausalQuadrant => SpatialRetention.Recurrent(qp, kp, vp, gamma, rows, columns),
            _ => SpatialRetention.Scan(qp, kp, vp, gamma, rows, columns, shape),
        };
        return cat(new[] { grid, SpatialRetention.ReadPastLast(q.narrow(2, patches, 1), k, v, gamma, rows, columns) }, 2);
    }

    /// <summary>
    /// Retention over the next [B, N, dim] tokens of a sequence fed in pieces, continuing from <paramref name="state"/>
    /// [B, H, D, D] (zeros before the first piece); returns the outputs and the state after them
    /// (<see cref="RetentionOps.ChunkwiseStep(Tensor, Tensor, Tensor, Tensor, Tensor, int)"/>).
    /// </summary>
    internal (Tensor Output, Tensor State) ForwardStep(Tensor x, Tensor state, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var dims = x.shape;
        var (q, k, v) = Heads(x, dims);
        var (retained, next) = RetentionOps.ChunkwiseStep(state, q, k, v, _decay, chunkSize);
        return (Output(x, dims, retained).MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
    }

    /// <summary>The state a sequence starts from: zeros [B, H, D, D], float32 for bfloat16 or half tokens.</summary>
    internal Tensor InitialState(long batch, ScalarType type, Device device) =>
        zeros(new[] { batch, _heads, qkv.weight.shape[1] / _heads, qkv.weight.shape[1] / _heads },
            type is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : type, device);

    // [B, N, dim] -> q, k, v of [B, H, N, D]
    private (Tensor Q, Tensor K, Tensor V) Heads(Tensor x, long[] shape)
    {
        long b = shape[0], n = shape[1], dim = shape[2];
        var qkvHeads = qkv.forward(x).view(b, n, 3, _heads, dim / _heads).permute(2, 0, 3, 1, 4);
        return (qkvHeads[0], qkvHeads[1], qkvHeads[2]);
    }

    // [B, H, N, D] back to [B, N, dim], then the optional norm and gate, and the output projection.
    private Tensor Output(Tensor x, long[] shape, Tensor retained)
    {
        long b = shape[0], n = shape[1], dim = shape[2];
        var y = retained.transpose(1, 2).reshape(b, n, dim);
        if (group_norm is not null) y = group_norm.forward(y.view(b * n, dim, 1)).view(b, n, dim); // per token, as RetNet: causal forms stay causal
        if (gate is not null) y = nn.functional.silu(gate.forward(x)) * y;
        return proj.forward(y);
    }
}
