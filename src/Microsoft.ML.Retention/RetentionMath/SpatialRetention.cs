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
    // The parallel form's decays, per γ, grid and shape, within a budget (RetentionDecay's for the 1-D masks).
    private static readonly TensorCache ParallelDecays = new(512L << 20);

    /// <summary>
    /// Parallel form: the N×N decay of every head, built in log space (with 1/√D) and cached; quadratic in N. It carries
    /// no state, so it computes in the tokens' type, as <see cref="RetentionOps.Parallel(Tensor, Tensor, Tensor, Tensor)"/> does.
    /// </summary>
    public static Tensor Parallel(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape)
    {
        var gammas = Check(q, k, v, gamma, rows, columns, shape);
        return Masked(q, k, v, $"{Key(gammas)}|{rows}x{columns}|{shape}", () => Decay(tensor(gammas, device: q.device).log(), rows, columns, shape));
    }

    // (q Kᵀ ⊙ mask) V, the mask (1/√D folded in) built once per key, in the tokens' type.
    private static Tensor Masked(Tensor q, Tensor k, Tensor v, string key, Func<Tensor> mask)
    {
        using var scope = NewDisposeScope();
        double scale = RetentionOps.Scale(q);
        var scaled = ParallelDecays.GetOrAdd($"{key}|{scale:R}", q.dtype, q.device, () => mask().mul_(scale));
        return q.matmul(k.transpose(-1, -2)).mul_(scaled).matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>[H, N, N] float64: γ^(|Δrow| + |Δcolumn|) between the patches of a grid in raster order (0 outside a causal quadrant).</summary>
    internal static Tensor Decay(Tensor logGamma, long rows, long columns, SpatialDecayShape shape)
    {
        var row = arange(rows, ScalarType.Int64, logGamma.device).repeat_interleave(columns);   // [N]
        var column = arange(columns, ScalarType.Int64, logGamma.device).repeat(rows);           // [N]
        var down = row.unsqueeze(1) - row.unsqueeze(0);                                          // query row − key row
        var across = column.unsqueeze(1) - column.unsqueeze(0);
        var distance = (down.abs() + across.abs()).to(ScalarType.Float64);
        var decay = (logGamma.to(ScalarType.Float64).view(-1, 1, 1) * distance).exp_();
        return shape == SpatialDecayShape.CausalQuadrant ? decay.mul_(down.ge(0).logical_and(across.ge(0)).to(ScalarType.Float64)) : decay;
    }

    /// <summary>
    /// The output of one more token, placed one past the grid's last patch in raster order (row rows − 1, column
    /// <paramref name="columns"/>), that reads every patch at γ^(|Δrow| + |Δcolumn|) and itself, and that no patch reads:
    /// how a ViR's [class] token, appended last, sees a grid under a 2-D decay. <paramref name="q"/> is that token's
    /// [B, H, 1, D]; <paramref name="k"/> and <paramref name="v"/> are [B, H, N + 1, D], the patches and then the token.
    /// Linear in N, and the same in every form.
    /// </summary>
    internal static Tensor ReadPastLast(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns)
    {
        using var scope = NewDisposeScope();
        var type = RetentionOps.StateType(q);
        var weights = PastLastWeights(gamma.to(ScalarType.Float64, q.device).log(), rows, columns).to(type); // [H, N + 1]
        var scores = q.to(type).mul(RetentionOps.Scale(q)).matmul(k.to(type).transpose(-1, -2)).mul_(weights.unsqueeze(1));
        return scores.matmul(v.to(type)).to(q.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The parallel form over the grid's patches and then the reader of <see cref="ReadPastLast"/>, [B, H, N + 1, D], in
    /// one pass with one cached [H, N + 1, N + 1] mask (<see cref="ReaderMask"/>): a ViR's parallel form, without the
    /// checks that read γ back from its tensor.
    /// </summary>
    internal static Tensor ParallelWithReader(Tensor q, Tensor k, Tensor v, double[] gammas, long rows, long columns, SpatialDecayShape shape) =>
        Masked(q, k, v, $"{Key(gammas)}|{rows}x{columns}|{shape}|reader", () => ReaderMask(tensor(gammas, device: q.device).log(), rows, columns, shape));

    /// <summary>[H, N + 1, N + 1] float64: <see cref="Decay"/> between the patches, the reader's row (<see cref="PastLastWeights"/>), and no patch reading the reader.</summary>
    internal static Tensor ReaderMask(Tensor logGamma, long rows, long columns, SpatialDecayShape shape)
    {
        long n = rows * columns;
        var mask = zeros(new[] { logGamma.shape[0], n + 1, n + 1 }, ScalarType.Float64, logGamma.device);
        mask.narrow(1, 0, n).narrow(2, 0, n).copy_(Decay(logGamma, rows, columns, shape));
        mask.narrow(1, n, 1).copy_(PastLastWeights(logGamma, rows, columns).unsqueeze(1));
        return mask;
    }

    /// <summary>[H, N + 1] float64: the weights of <see cref="ReadPastLast"/>, γ^((rows − 1 − row) + (columns − column)) for each patch, then 1.</summary>
    internal static Tensor PastLastWeights(Tensor logGamma, long rows, long columns)
    {
        var row = arange(rows, ScalarType.Float64, logGamma.device).repeat_interleave(columns);
        var column = arange(columns, ScalarType.Float64, logGamma.device).repeat(rows);
        var distance = cat(new[] { rows - 1 - row + (columns - column), zeros(1, ScalarType.Float64, logGamma.device) });
        return (logGamma.to(ScalarType.Float64).view(-1, 1) * distance.unsqueeze(0)).exp_();
    }

    /// <summary>The side of the square tiles that hold about a chunk's tokens: √(chunk size), at least 1, where the chunk size is resolved for <paramref name="tokens"/>.</summary>
    public static int TileSide(int chunkSize, long tokens) => Math.Max(1, (int)Math.Sqrt(ChunkSizes.Resolve(ChunkSizes.Check(chunkSize, nameof(chunkSize)), tokens)));

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
        var g = gamma.to(type);
        bool both = shape == SpatialDecayShape.Bidirectional;
        var swept = Sweep(Sweep(states, 3, g, both), 2, g, both);
        var read = q.to(type).mul(RetentionOps.Scale(q)).view(b, h, rows, columns, 1, d).matmul(swept); // [B, H, rows, columns, 1, D]
        return read.view(b, h, rows * columns, d).to(q.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Tiled form: parallel inside tiles of <paramref name="tileRows"/> × <paramref name="tileColumns"/> patches, and
    /// states carried between tiles: per patch row across column bands, per patch column across row bands, and per tile
    /// for the tiles up and to the left, each by one matmul with a band-to-band decay built in log space. The bidirectional
    /// shape is the four quadrants (the grid flipped each way) less the row and the column through each query (1-D
    /// bidirectional retention, tiled the same way) and the query itself. Tiles need not divide the grid.
    /// </summary>
    public static Tensor Tiled(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape, int tileRows, int tileColumns)
    {
        var gammas = Check(q, k, v, gamma, rows, columns, shape);
        if (tileRows < 1 || tileColumns < 1)
            throw new ArgumentOutOfRangeException(nameof(tileRows), $"{tileRows}×{tileColumns}", $"Tiles must be at least 1×1 patches, but they are {tileRows}×{tileColumns}.");
        using var scope = NewDisposeScope();
        var type = RetentionOps.StateType(q);
        long b = q.shape[0], h = q.shape[1], d = q.shape[3];
        var (qs, ks, vs) = (q.to(type).mul(RetentionOps.Scale(q)).view(b, h, rows, columns, d), k.to(type).view(b, h, rows, columns, d), v.to(type).view(b, h, rows, columns, d));
        Tensor output;
        if (shape == SpatialDecayShape.CausalQuadrant)
            output = QuadrantTiled(qs, ks, vs, gammas, tileRows, tileColumns);
        else
        {
            output = zeros_like(qs);
            foreach (var flip in new[] { Array.Empty<long>(), new long[] { 2 }, new long[] { 3 }, new long[] { 2, 3 } })
                output.add_(flip.Length == 0 ? QuadrantTiled(qs, ks, vs, gammas, tileRows, tileColumns)
                    : QuadrantTiled(qs.flip(flip), ks.flip(flip), vs.flip(flip), gammas, tileRows, tileColumns).flip(flip));
            // Less the row and the column through each query (each holds the query once) and the query once more.
            output.sub_(Line(qs, ks, vs, gammas, tileColumns)).sub_(Line(qs.transpose(2, 3), ks.transpose(2, 3), vs.transpose(2, 3), gammas, tileRows).transpose(2, 3))
                .sub_((qs * ks).sum(-1, keepdim: true) * vs);
        }
        return output.reshape(b, h, rows * columns, d).to(q.dtype).MoveToOuterDisposeScope();
    }

    // 1-D bidirectional retention along each row of [B, H, rows, columns, D] (q already scaled): each row a 1×columns
    // grid, whose quadrant is its causal retention; plus the anti-causal one, less the diagonal.
    private static Tensor Line(Tensor q, Tensor k, Tensor v, double[] g, int chunk)
    {
        long b = q.shape[0], h = q.shape[1], rows = q.shape[2], columns = q.shape[3], d = q.shape[4];
        Tensor Rows(Tensor t) => t.permute(0, 2, 1, 3, 4).reshape(b * rows, h, 1, columns, d);
        var (qq, kk, vv) = (Rows(q), Rows(k), Rows(v));
        var line = QuadrantTiled(qq, kk, vv, g, 1, chunk) + QuadrantTiled(qq.flip(3), kk.flip(3), vv.flip(3), g, 1, chunk).flip(3)
            - (qq * kk).sum(-1, keepdim: true) * vv;
        return line.view(b, rows, h, columns, d).permute(0, 2, 1, 3, 4);
    }

    // The causal quadrant over [B, H, rows, columns, D] (q already scaled), tiled; the grid is padded with zero keys
    // and values (which add nothing) to whole tiles. The ONNX export writes the same steps (ViROnnxExport).
    private static Tensor QuadrantTiled(Tensor q, Tensor k, Tensor v, double[] gammas, long tr, long tc)
    {
        using var scope = NewDisposeScope(); // each quadrant's states go before the next quadrant's are made
        long b = q.shape[0], h = q.shape[1], rows = q.shape[2], columns = q.shape[3], d = q.shape[4];
        var t = TileDecays.For(gammas, rows, columns, tr, tc, q.dtype, q.device);
        (tr, tc) = (t.TileRows, t.TileColumns);
        long ni = t.RowBands, nk = t.ColumnBands;
        Tensor Tiles(Tensor x) => nn.functional.pad(x, new[] { 0L, 0, 0, nk * tc - columns, 0, ni * tr - rows })
            .view(b, h, ni, tr, nk, tc, d).permute(0, 1, 2, 4, 3, 5, 6);                      // [B, H, ni, nk, tr, tc, D]
        var (qt, kt, vt) = (Tiles(q), Tiles(k), Tiles(v));
        Tensor PerHead(Tensor x, params long[] shape) => x.view(new[] { 1L, h }.Concat(shape).ToArray()); // [H, …] broadcast over B

        // (a) inside each tile: the quadrant decay over the tile's tr·tc patches.
        var flat = new long[] { b, h, ni, nk, tr * tc, d };
        var output = qt.reshape(flat).matmul(kt.reshape(flat).transpose(-1, -2)).mul_(PerHead(t.Inside, 1, 1, tr * tc, tr * tc)).matmul(vt.reshape(flat)).view(b, h, ni, nk, tr, tc, d);

        // (b) to (d) are zero where there is no band before (a 1-D line has one row band): skipped, not computed.
        // (b) the same row band, column bands to the left: per patch row, the states of each band decayed to its last
        // column, carried to the later bands, then down the tile's rows.
        var rowStates = nk > 1 ? (kt * PerHead(t.ToColumnEnd, 1, 1, 1, tc, 1)).transpose(-1, -2).matmul(vt) : null;   // [B, H, ni, nk, tr, D, D]
        if (rowStates is not null)
        {
            var carriedRows = PerHead(t.AcrossBands, 1, nk, nk).matmul(rowStates.reshape(b, h, ni, nk, tr * d * d));
            var mixedRows = PerHead(t.Down, 1, 1, tr, tr).matmul(carriedRows.view(b, h, ni, nk, tr, d * d)).view(b, h, ni, nk, tr, d, d);
            output.add_(qt.matmul(mixedRows).mul_(PerHead(t.FromColumnStart, 1, 1, 1, tc, 1)));
        }

        // (c) the same column band, row bands above: the transpose of (b).
        if (ni > 1)
        {
            var columnStates = (kt * PerHead(t.ToRowEnd, 1, 1, tr, 1, 1)).permute(0, 1, 2, 3, 5, 6, 4).matmul(vt.permute(0, 1, 2, 3, 5, 4, 6)); // [B, H, ni, nk, tc, D, D]
            var carriedColumns = PerHead(t.DownBands, ni, ni).matmul(columnStates.reshape(b, h, ni, nk * tc * d * d));
            var mixedColumns = PerHead(t.Across, 1, 1, tc, tc).matmul(carriedColumns.view(b, h, ni, nk, tc, d * d)).view(b, h, ni, nk, tc, d, d);
            output.add_(qt.permute(0, 1, 2, 3, 5, 4, 6).matmul(mixedColumns).permute(0, 1, 2, 3, 5, 4, 6).mul_(PerHead(t.FromRowStart, 1, 1, tr, 1, 1)));
        }

        // (d) tiles up and to the left: each tile's state decayed to its last row and column, carried across the column
        // bands and then down the row bands.
        if (rowStates is not null && ni > 1)
        {
            var tileStates = (rowStates * PerHead(t.ToRowEnd, 1, 1, tr, 1, 1)).sum(4);                                  // [B, H, ni, nk, D, D]
            var acrossTiles = PerHead(t.AcrossBands, 1, nk, nk).matmul(tileStates.reshape(b, h, ni, nk, d * d));
            var corner = PerHead(t.DownBands, ni, ni).matmul(acrossTiles.view(b, h, ni, nk * d * d)).view(b, h, ni, nk, d, d);
            output.add_(qt.reshape(flat).matmul(corner).view(b, h, ni, nk, tr, tc, d).mul_(PerHead(t.FromCorner, 1, 1, tr, tc, 1)));
        }

        return output.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, h, ni * tr, nk * tc, d).narrow(2, 0, rows).narrow(3, 0, columns).MoveToOuterDisposeScope();
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
        var g = gamma.to(type);
        var gColumns = g.view(1, h, 1, 1, 1); // for the per-column states [B, H, columns, D, D]
        Tensor? above = null; // [B, H, columns, D, D]: Σ over rows above of γ^(Δrow + Δcolumn)·kᵀv, per column
        var outputs = new Tensor[rows];
        for (long r = 0; r < rows; r++)
        {
            using var step = NewDisposeScope();
            var tokens = new[] { q, k, v }.Select(t => t.narrow(2, r * columns, columns).to(type)).ToArray();
            var row = Sweep(tokens[1].view(b, h, columns, d, 1) * tokens[2].view(b, h, columns, 1, d), 2, g, bidirectional: false);
            var state = above is null ? row : row + gColumns * above;
            outputs[r] = tokens[0].mul(RetentionOps.Scale(q)).view(b, h, columns, 1, d).matmul(state).view(b, h, columns, d).MoveToOuterDisposeScope();
            above?.Dispose();
            above = state.MoveToOuterDisposeScope();
        }
        return cat(outputs, 2).to(q.dtype).MoveToOuterDisposeScope();
    }

    // f_i = x_i + γ·f_(i−1) along `dim`, with γ [H] per head (dim 1); for a bidirectional sweep also the backward one,
    // less x_i counted twice.
    private static Tensor Sweep(Tensor x, int dim, Tensor gamma, bool bidirectional)
    {
        using var scope = NewDisposeScope();
        var shape = Enumerable.Repeat(1L, (int)x.dim() - 1).ToArray(); // one position along `dim`
        shape[1] = gamma.shape[0];
        var g = gamma.view(shape);
        long n = x.shape[dim];
        var forward = new Tensor[n];
        for (long i = 0; i < n; i++)
            forward[i] = i == 0 ? x.select(dim, 0) : x.select(dim, i) + g * forward[i - 1];
        if (!bidirectional) return stack(forward, dim).MoveToOuterDisposeScope();
        var backward = new Tensor[n];
        for (long i = n - 1; i >= 0; i--)
            backward[i] = i == n - 1 ? x.select(dim, i) : x.select(dim, i) + g * backward[i + 1];
        var swept = stack(forward, dim);
        Array.ForEach(forward, f => f.Dispose());
        return swept.add_(stack(backward, dim)).sub_(x).MoveToOuterDisposeScope();
    }

    private static string Key(double[] gammas) => string.Join(",", gammas.Select(BitConverter.DoubleToInt64Bits));

    // Returns the decays' values.
    private static double[] Check(Tensor q, Tensor k, Tensor v, Tensor gamma, long rows, long columns, SpatialDecayShape shape)
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
        return values;
    }
}
