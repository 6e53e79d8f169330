using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// Retention with a 2-D decay over a grid of patches: O = ((q/√D) Kᵀ ⊙ D) V with D[n, m] = γ^(|Δrow| + |Δcolumn|)
/// (see <see cref="SpatialDecayShape"/>), in exact forms of the same function: parallel, scan, and for the causal quadrant
/// a recurrent one that streams in raster order. q, k and v are [B, H, N, D] with the
/// N = rows × columns tokens in raster order; γ is [H] in (0, 1]. Without a softmax the decay factors into a row decay
/// times a column decay, so the per-token states kᵀv can be scanned along the columns and then the rows
/// (docs/architecture.md, "Spatial retention").
/// </summary>
public static class SpatialRetention
{
    /// <summary>Parallel form: the N×N decay of every head, built in log space; quadratic in N.</summary>
    public static Tensor Parallel(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape)
    {
        Check(q, k, v, gamma, rows, columns, shape);
        using var scope = NewDisposeScope();
        var type = RetentionOps.StateType(q);
        var row = arange(rows, ScalarType.Int64, q.device).repeat_interleave(columns);   // [N]
        var column = arange(columns, ScalarType.Int64, q.device).repeat(rows);           // [N]
        var down = row.unsqueeze(1) - row.unsqueeze(0);                                    // query row − key row
        var across = column.unsqueeze(1) - column.unsqueeze(0);
        var distance = (down.abs() + across.abs()).to(ScalarType.Float64);
        var decay = (gamma.to(ScalarType.Float64).log().view(-1, 1, 1) * distance).exp_(); // [H, N, N]
        if (shape == SpatialDecayShape.CausalQuadrant)
            decay.mul_(down.ge(0).logical_and(across.ge(0)).to(ScalarType.Float64));
        var scores = q.to(type).mul(RetentionOps.Scale(q)).matmul(k.to(type).transpose(-1, -2)).mul_(decay.to(type));
        return scores.matmul(v.to(type)).to(q.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scan form: the states kᵀv of every token, swept along each row and then down the columns (forward and backward
    /// for <see cref="SpatialDecayShape.Bidirectional"/>, forward only for the causal quadrant), then read by each
    /// query. O(N·D·Dv) work and memory; every step multiplies by γ once, so no exponent grows.
    /// </summary>
    public static Tensor Scan(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape)
    {
        Check(q, k, v, gamma, rows, columns, shape);
        using var scope = NewDisposeScope();
        var type = RetentionOps.StateType(q);
        long b = q.shape[0], h = q.shape[1], d = q.shape[3];
        var grid = new[] { b, h, rows, columns };
        var states = k.to(type).view(b, h, rows, columns, d, 1) * v.to(type).view(b, h, rows, columns, 1, d); // [B, H, rows, columns, D, D]
        var g = gamma.to(type).view(1, h, 1, 1, 1);
        bool both = shape == SpatialDecayShape.Bidirectional;
        var swept = Sweep(Sweep(states, 3, g, both), 2, g, both);
        var read = q.to(type).mul(RetentionOps.Scale(q)).view(b, h, rows, columns, 1, d).matmul(swept); // [B, H, rows, columns, 1, D]
        return read.view(b, h, rows * columns, d).to(q.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Recurrent form of the causal quadrant: row by row in raster order, holding one state per column (the sum over the
    /// quadrant above the current row) and the current row's, so memory is O(columns·D²) whatever the number of rows.
    /// The bidirectional shape has no single-pass form (every output sees every token): use <see cref="Scan"/>.
    /// </summary>
    public static Tensor Recurrent(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns)
    {
        Check(q, k, v, gamma, rows, columns, SpatialDecayShape.CausalQuadrant);
        using var scope = NewDisposeScope();
        var type = RetentionOps.StateType(q);
        long b = q.shape[0], h = q.shape[1], d = q.shape[3];
        var g = gamma.to(type).view(1, h, 1, 1, 1);  // for the per-column states [B, H, columns, D, D]
        var gToken = g.view(1, h, 1, 1);              // for one column's state in the row's sweep
        Tensor? above = null; // [B, H, columns, D, D]: Σ over rows above of γ^(Δrow + Δcolumn)·kᵀv, per column
        var outputs = new Tensor[rows];
        for (long r = 0; r < rows; r++)
        {
            using var step = NewDisposeScope();
            var tokens = new[] { q, k, v }.Select(t => t.narrow(2, r * columns, columns).to(type)).ToArray();
            var row = Sweep(tokens[1].view(b, h, columns, d, 1) * tokens[2].view(b, h, columns, 1, d), 2, gToken, bidirectional: false);
            var state = above is null ? row : row + g * above;
            outputs[r] = tokens[0].mul(RetentionOps.Scale(q)).view(b, h, columns, 1, d).matmul(state).view(b, h, columns, d).MoveToOuterDisposeScope();
            above?.Dispose();
            above = state.MoveToOuterDisposeScope();
        }
        return cat(outputs, 2).to(q.dtype).MoveToOuterDisposeScope();
    }

    // x_i + γ·f_(i−1) along `dim`, and for a bidirectional sweep also the backward one, less x_i counted twice.
    private static Tensor Sweep(Tensor x, int dim, Tensor g, bool bidirectional)
    {
        long n = x.shape[dim];
        var forward = new Tensor[n];
        for (long i = 0; i < n; i++)
            forward[i] = i == 0 ? x.select(dim, 0) : x.select(dim, i) + g * forward[i - 1];
        if (!bidirectional) return stack(forward, dim);
        var backward = new Tensor[n];
        for (long i = n - 1; i >= 0; i--)
            backward[i] = i == n - 1 ? x.select(dim, i) : x.select(dim, i) + g * backward[i + 1];
        return stack(forward, dim) + stack(backward, dim) - x;
    }

    private static void Check(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape)
    {
        RetentionOps.CheckTokens(q, k, v, rank: 4);
        if (!Enum.IsDefined(shape)) throw new ArgumentOutOfRangeException(nameof(shape), shape, $"shape must be Bidirectional or CausalQuadrant, but it is {shape}.");
        if (rows < 1 || columns < 1 || rows * columns != q.shape[2])
            throw new ArgumentException($"A {rows}×{columns} grid holds {rows * columns} tokens, but q has {q.shape[2]} (shape {RetentionOps.ShapeOf(q)}).", nameof(rows));
        ArgumentNullException.ThrowIfNull(gamma);
        if (gamma.dim() != 1 || gamma.shape[0] != q.shape[1])
            throw new ArgumentException($"gamma must have shape [{q.shape[1]}] (one decay per head), but its shape is {RetentionOps.ShapeOf(gamma)}.", nameof(gamma));
        var values = gamma.to(ScalarType.Float64).cpu().data<double>().ToArray();
        if (values.Any(value => !(value > 0 && value <= 1)))
            throw new ArgumentOutOfRangeException(nameof(gamma), $"[{string.Join(", ", values)}]", "Every decay γ must be in (0, 1].");
    }
}
