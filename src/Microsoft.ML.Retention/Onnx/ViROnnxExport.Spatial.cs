using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Onnx;

public static partial class ViROnnxExport
{
    // Retention with a 2-D decay (ViRConfig.SpatialDecay), as SpatialRetention computes it: the parallel form with one
    // [H, N + 1, N + 1] mask, or the tiled form (chunkwise) with the constants of TileDecays, every loop of the library's
    // form a matmul with a constant here. The [class] token reads the grid as SpatialRetention.ReadPastLast does.
    private sealed partial class Writer
    {
        private string Spatial(string q, string k, string v, SpatialDecayShape shape)
        {
            long patches = gridH * gridW;
            int side = SpatialRetention.TileSide(retention.ChunkSize, patches);
            if (retention.Mode == RetentionMode.Parallel || (side >= gridH && side >= gridW))
                return Parallel(q, k, v, SpatialMask(shape));

            var scaled = G.Op("Mul", new[] { q, Scalar(1 / Math.Sqrt(_headDim)) });
            string Grid(string t) => G.Op("Reshape", new[] { Narrow(t, 2, 0, patches), Shape(0, _heads, gridH, gridW, _headDim) });
            var (qs, ks, vs) = (Grid(scaled), Grid(k), Grid(v));
            string grid;
            if (shape == SpatialDecayShape.CausalQuadrant)
                grid = QuadrantTiled(qs, ks, vs, gridH, gridW, side, side);
            else
            {
                grid = QuadrantTiled(qs, ks, vs, gridH, gridW, side, side);
                foreach (var axes in new[] { new long[] { 2 }, new long[] { 3 }, new long[] { 2, 3 } })
                    grid = G.Op("Add", new[] { grid, Flip(QuadrantTiled(Flip(qs, axes), Flip(ks, axes), Flip(vs, axes), gridH, gridW, side, side), axes) });
                // Less the row and the column through each query, and the query once more (SpatialRetention.Tiled).
                var swap = new long[] { 0, 1, 3, 2, 4 };
                var columns = G.Op("Transpose", new[] { Line(T(qs, swap), T(ks, swap), T(vs, swap), gridW, gridH, side) }, ("perm", swap));
                var self = G.Op("Mul", new[] { G.Op("ReduceSum", new[] { G.Op("Mul", new[] { qs, ks }), Longs(-1) }, ("keepdims", 1L)), vs });
                grid = G.Op("Sub", new[] { G.Op("Sub", new[] { G.Op("Sub", new[] { grid, Line(qs, ks, vs, gridH, gridW, side) }), columns }), self });
            }
            var patchOutput = G.Op("Reshape", new[] { grid, Shape(0, _heads, patches, _headDim) });
            var cls = Narrow(scaled, 2, patches, 1);
            var readWeights = Once($"spatial.class_read.{gridH}x{gridW}", n => Floats(n, SpatialRetention.PastLastWeights(tensor(_gammas).log(), gridH, gridW).unsqueeze(1)));
            var clsOutput = G.Op("MatMul", new[] { G.Op("Mul", new[] { G.Op("MatMul", new[] { cls, G.Op("Transpose", new[] { k }, ("perm", new long[] { 0, 1, 3, 2 })) }), readWeights }), v });
            return G.Op("Concat", new[] { patchOutput, clsOutput }, ("axis", 2));
        }

        // [H, N + 1, N + 1] / √Dh: the 2-D decay between the patches, the [class] token's row, and nothing reading it.
        private string SpatialMask(SpatialDecayShape shape) => Once($"spatial.mask.{shape}.{gridH}x{gridW}", name =>
        {
            using var scope = NewDisposeScope();
            return Floats(name, SpatialRetention.ReaderMask(tensor(_gammas).log(), gridH, gridW, shape).mul_(1 / Math.Sqrt(_headDim)));
        });

        // The causal quadrant over [B', H, rows, columns, Dh] (q scaled), tiled: SpatialRetention.QuadrantTiled's steps.
        private string QuadrantTiled(string q, string k, string v, long rows, long columns, long tileRows, long tileColumns)
        {
            using var scope = NewDisposeScope();
            var t = TileDecays.For(_gammas, rows, columns, tileRows, tileColumns, ScalarType.Float64, CPU);
            long tr = t.TileRows, tc = t.TileColumns, ni = t.RowBands, nk = t.ColumnBands, d = _headDim, h = _heads;
            string key = $"{rows}x{columns}.{tr}x{tc}";
            string Const(string what, Tensor value, params long[] shape) => Once($"spatial.{what}.{key}", n => Floats(n, value.reshape(new[] { 1L, h }.Concat(shape).ToArray())));
            var padded = new long[] { 0, 0, 0, 0, 0, 0, 0, ni * tr - rows, nk * tc - columns, 0 };
            string Tiles(string x) => T(G.Op("Reshape", new[] { padded.Any(p => p > 0) ? G.Op("Pad", new[] { x, Once($"spatial.pads.{key}", n => G.Ints(n, padded)) }) : x,
                Shape(0, h, ni, tr, nk, tc, d) }), 0, 1, 2, 4, 3, 5, 6);                                        // [B', H, ni, nk, tr, tc, Dh]
            var (qt, kt, vt) = (Tiles(q), Tiles(k), Tiles(v));
            var flat = Shape(0, h, ni, nk, tr * tc, d);
            string Flat(string x) => G.Op("Reshape", new[] { x, flat });
            string MatMul(string a, string b) => G.Op("MatMul", new[] { a, b });
            string Mul(string a, string b) => G.Op("Mul", new[] { a, b });
            string Reshape(string x, params long[] shape) => G.Op("Reshape", new[] { x, Shape(shape) });

            // (a) inside each tile.
            var output = Reshape(MatMul(Mul(MatMul(Flat(qt), T(Flat(kt), 0, 1, 2, 3, 5, 4)), Const("inside", t.Inside, 1, 1, tr * tc, tr * tc)), Flat(vt)), 0, h, ni, nk, tr, tc, d);
            // (b) to (d) are zero where there is no band before (a 1-D line has one row band): not written.
            // (b) column bands to the left, per patch row.
            var toRowEnd = Const("to_row_end", t.ToRowEnd, 1, 1, tr, 1, 1);
            string? rowStates = null;
            if (nk > 1)
            {
                rowStates = MatMul(T(Mul(kt, Const("to_column_end", t.ToColumnEnd, 1, 1, 1, tc, 1)), 0, 1, 2, 3, 4, 6, 5), vt);                 // [B', H, ni, nk, tr, Dh, Dh]
                var carriedRows = MatMul(Const("across_bands", t.AcrossBands, 1, nk, nk), Reshape(rowStates, 0, h, ni, nk, tr * d * d));
                var mixedRows = Reshape(MatMul(Const("down", t.Down, 1, 1, tr, tr), Reshape(carriedRows, 0, h, ni, nk, tr, d * d)), 0, h, ni, nk, tr, d, d);
                output = G.Op("Add", new[] { output, Mul(MatMul(qt, mixedRows), Const("from_column_start", t.FromColumnStart, 1, 1, 1, tc, 1)) });
            }
            // (c) row bands above, per patch column.
            if (ni > 1)
            {
                var columnStates = MatMul(T(Mul(kt, toRowEnd), 0, 1, 2, 3, 5, 6, 4), T(vt, 0, 1, 2, 3, 5, 4, 6));                             // [B', H, ni, nk, tc, Dh, Dh]
                var carriedColumns = MatMul(Const("down_bands", t.DownBands, ni, ni), Reshape(columnStates, 0, h, ni, nk * tc * d * d));
                var mixedColumns = Reshape(MatMul(Const("across", t.Across, 1, 1, tc, tc), Reshape(carriedColumns, 0, h, ni, nk, tc, d * d)), 0, h, ni, nk, tc, d, d);
                output = G.Op("Add", new[] { output, Mul(T(MatMul(T(qt, 0, 1, 2, 3, 5, 4, 6), mixedColumns), 0, 1, 2, 3, 5, 4, 6), Const("from_row_start", t.FromRowStart, 1, 1, tr, 1, 1)) });
            }
            // (d) the tiles up and to the left.
            if (rowStates is not null && ni > 1)
            {
                var tileStates = G.Op("ReduceSum", new[] { Mul(rowStates, toRowEnd), Longs(4) }, ("keepdims", 0L));                               // [B', H, ni, nk, Dh, Dh]
                var acrossTiles = MatMul(Const("across_bands", t.AcrossBands, 1, nk, nk), Reshape(tileStates, 0, h, ni, nk, d * d));
                var corner = Reshape(MatMul(Const("down_bands", t.DownBands, ni, ni), Reshape(acrossTiles, 0, h, ni, nk * d * d)), 0, h, ni, nk, d, d);
                output = G.Op("Add", new[] { output, Mul(Reshape(MatMul(Flat(qt), corner), 0, h, ni, nk, tr, tc, d), Const("from_corner", t.FromCorner, 1, 1, tr, tc, 1)) });
            }

            var whole = Reshape(T(output, 0, 1, 2, 4, 3, 5, 6), 0, h, ni * tr, nk * tc, d);
            return ni * tr == rows && nk * tc == columns ? whole : Narrow(Narrow(whole, 2, 0, rows), 3, 0, columns);
        }

        // 1-D bidirectional retention along each row of [B, H, rows, columns, Dh] (q scaled): both causal directions of
        // every row as a 1 × columns grid, less the diagonal.
        private string Line(string q, string k, string v, long rows, long columns, long chunk)
        {
            var perRow = new long[] { 0, 2, 1, 3, 4 };
            string Rows(string x) => G.Op("Reshape", new[] { T(x, perRow), Shape(-1, _heads, 1, columns, _headDim) });
            var (qr, kr, vr) = (Rows(q), Rows(k), Rows(v));
            var backward = Flip(QuadrantTiled(Flip(qr, 3), Flip(kr, 3), Flip(vr, 3), 1, columns, 1, chunk), 3);
            var self = G.Op("Mul", new[] { G.Op("ReduceSum", new[] { G.Op("Mul", new[] { qr, kr }), Longs(-1) }, ("keepdims", 1L)), vr });
            var line = G.Op("Sub", new[] { G.Op("Add", new[] { QuadrantTiled(qr, kr, vr, 1, columns, 1, chunk), backward }), self });
            return T(G.Op("Reshape", new[] { line, Shape(-1, rows, _heads, columns, _headDim) }), perRow);
        }

        private string T(string x, params long[] perm) => G.Op("Transpose", new[] { x }, ("perm", perm));

        private string Longs(params long[] values) => Once($"longs_{string.Join('_', values).Replace('-', 'm')}", n => G.Ints(n, values));

        private string Narrow(string x, long axis, long start, long length) =>
            G.Op("Slice", new[] { x, Longs(start), Longs(start + length), Longs(axis) });

        // Reversed along the axes (Slice with step −1).
        private string Flip(string x, params long[] axes) =>
            G.Op("Slice", new[] { x, Longs(axes.Select(_ => -1L).ToArray()), Once($"flip_ends_{axes.Length}", n => G.Ints(n, axes.Select(_ => long.MinValue).ToArray())),
                Longs(axes), Longs(axes.Select(_ => -1L).ToArray()) });

        private string Floats(string name, Tensor value) =>
            G.Floats(name, value.to(ScalarType.Float32).contiguous().data<float>().ToArray(), value.shape);
    }
}
