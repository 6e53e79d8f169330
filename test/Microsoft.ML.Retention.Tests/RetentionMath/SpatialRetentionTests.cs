using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// 2-D retention: the scan and tiled forms (and the causal quadrant's recurrent form) equal the parallel form in float64 for both decay shapes, on square, one-row,
/// one-column and odd grids, with γ close to 1; in float32 within 1e-4; in bfloat16 with float32 states; and it is the
/// function it claims to be (a hand-computed entry of the quadrant form).
/// </summary>
[TestClass]
public sealed class SpatialRetentionTests
{
    // Three heads with γ from fast to close to 1, and random q, k, v [2, 3, tokens, 4], in float64.
    private static (Tensor Gamma, Tensor Q, Tensor K, Tensor V) Float64Tokens(long tokens, long seed)
    {
        manual_seed(seed);
        Tensor Random() => randn(2, 3, tokens, 4, ScalarType.Float64);
        return (tensor(new[] { 0.75, 0.96875, 0.999 }, ScalarType.Float64), Random(), Random(), Random());
    }

    [TestMethod]
    [DataRow(7, 7)]
    [DataRow(1, 9)]
    [DataRow(9, 1)]
    [DataRow(5, 8)]
    public void TheScanFormEqualsTheParallelForm(int rows, int columns)
    {
        using var scope = NewDisposeScope();
        var (gamma, q, k, v) = Float64Tokens(rows * columns, seed: 11);
        foreach (var shape in new[] { SpatialDecayShape.Bidirectional, SpatialDecayShape.CausalQuadrant })
        {
            var parallel = SpatialRetention.Parallel(q, k, v, gamma, rows, columns, shape);
            var scan = SpatialRetention.Scan(q, k, v, gamma, rows, columns, shape);
            double float64 = (scan - parallel).abs().max().ToDouble() / parallel.abs().max().ToDouble();
            var (q32, k32, v32) = (q.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32));
            double float32 = (SpatialRetention.Scan(q32, k32, v32, gamma.to(ScalarType.Float32), rows, columns, shape).to(ScalarType.Float64) - parallel)
                .abs().max().ToDouble() / parallel.abs().max().ToDouble();
            Console.WriteLine($"{rows}×{columns} {shape}: scan ÷ parallel {float64:G3} in float64, {float32:G3} in float32");
            Assert.IsTrue(float64 < 1e-12, $"{rows}×{columns} {shape}: {float64:G3}");
            Assert.IsTrue(float32 < 1e-4, $"{rows}×{columns} {shape}: {float32:G3}");
            if (shape != SpatialDecayShape.CausalQuadrant) continue;
            double recurrent = (SpatialRetention.Recurrent(q, k, v, gamma, rows, columns) - parallel).abs().max().ToDouble() / parallel.abs().max().ToDouble();
            Console.WriteLine($"{rows}×{columns} {shape}: recurrent ÷ parallel {recurrent:G3} in float64");
            Assert.IsTrue(recurrent < 1e-12, $"{rows}×{columns} recurrent: {recurrent:G3}");
        }
    }

    [TestMethod]
    [DataRow(7, 7, 2, 3)]
    [DataRow(5, 8, 4, 4)]
    [DataRow(1, 9, 1, 4)]
    [DataRow(9, 1, 4, 1)]
    [DataRow(6, 6, 3, 3)]
    [DataRow(4, 5, 7, 7)]
    public void TheTiledFormEqualsTheParallelForm(int rows, int columns, int tileRows, int tileColumns)
    {
        using var scope = NewDisposeScope();
        var (gamma, q, k, v) = Float64Tokens(rows * columns, seed: 13);
        foreach (var shape in new[] { SpatialDecayShape.CausalQuadrant, SpatialDecayShape.Bidirectional })
        {
            var parallel = SpatialRetention.Parallel(q, k, v, gamma, rows, columns, shape);
            var tiled = SpatialRetention.Tiled(q, k, v, gamma, rows, columns, shape, tileRows, tileColumns);
            double difference = (tiled - parallel).abs().max().ToDouble() / parallel.abs().max().ToDouble();
            Console.WriteLine($"{rows}×{columns}, tiles {tileRows}×{tileColumns}, {shape}: tiled ÷ parallel {difference:G3} in float64");
            Assert.IsTrue(difference < 1e-12, $"{rows}×{columns}, tiles {tileRows}×{tileColumns}, {shape}: {difference:G3}");
        }
    }

    [TestMethod]
    public void TheDecayIsTheManhattanDistanceOverTheChosenPatches()
    {
        using var scope = NewDisposeScope();
        // One head, D = 1, q = k = 1: the output at a patch is Σ over the keys it sees of γ^(|Δrow|+|Δcolumn|) · v / √1.
        const int rows = 3, columns = 4;
        var unit = ones(1, 1, rows * columns, 1, ScalarType.Float64);
        var v = arange(1, rows * columns + 1, ScalarType.Float64).view(1, 1, rows * columns, 1);
        var gamma = tensor(new[] { 0.5 }, ScalarType.Float64);
        double Expected(int r, int c, bool quadrant)
        {
            double sum = 0;
            for (int r2 = 0; r2 < rows; r2++)
                for (int c2 = 0; c2 < columns; c2++)
                    if (!quadrant || (r2 <= r && c2 <= c))
                        sum += Math.Pow(0.5, Math.Abs(r - r2) + Math.Abs(c - c2)) * (r2 * columns + c2 + 1);
            return sum;
        }
        foreach (var shape in new[] { SpatialDecayShape.Bidirectional, SpatialDecayShape.CausalQuadrant })
            foreach (var form in new Func<Tensor>[]
            {
                () => SpatialRetention.Parallel(unit, unit, v, gamma, rows, columns, shape),
                () => SpatialRetention.Scan(unit, unit, v, gamma, rows, columns, shape),
                () => shape == SpatialDecayShape.CausalQuadrant ? SpatialRetention.Recurrent(unit, unit, v, gamma, rows, columns) : SpatialRetention.Scan(unit, unit, v, gamma, rows, columns, shape),
                () => SpatialRetention.Tiled(unit, unit, v, gamma, rows, columns, shape, 2, 3),
            })
            {
                var output = form().view(rows, columns);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < columns; c++)
                        Assert.AreEqual(Expected(r, c, shape == SpatialDecayShape.CausalQuadrant), output[r, c].ToDouble(), 1e-12, $"{shape} at ({r}, {c})");
            }
    }

    [TestMethod]
    public void BFloat16TokensKeepFloat32StatesAndBadArgumentsAreNamed()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var gamma = tensor(new[] { 0.9f, 0.99f });
        var q = randn(1, 2, 12, 8);
        var reference = SpatialRetention.Parallel(q, q, q, gamma, 3, 4, SpatialDecayShape.Bidirectional);
        var b16 = q.to(ScalarType.BFloat16);
        foreach (var (form, bf16) in new[]
        {
            ("parallel (no state: computed in bfloat16)", SpatialRetention.Parallel(b16, b16, b16, gamma, 3, 4, SpatialDecayShape.Bidirectional)),
            ("scan", SpatialRetention.Scan(b16, b16, b16, gamma, 3, 4, SpatialDecayShape.Bidirectional)),
            ("tiled", SpatialRetention.Tiled(b16, b16, b16, gamma, 3, 4, SpatialDecayShape.Bidirectional, 2, 3)),
        })
        {
            Assert.AreEqual(ScalarType.BFloat16, bf16.dtype);
            double difference = (bf16.to(ScalarType.Float32) - reference).abs().max().ToDouble() / reference.abs().max().ToDouble();
            Console.WriteLine($"{form}, bfloat16 tokens: {difference:G3} of the output's scale");
            Assert.IsTrue(difference < 2e-2, $"{form}: {difference:G3}"); // bfloat16 inputs: 8 bits of mantissa
        }
        var tiles = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SpatialRetention.Tiled(q, q, q, gamma, 3, 4, SpatialDecayShape.Bidirectional, 0, 2));
        StringAssert.Contains(tiles.Message, "Tiles must be at least 1×1 patches, but they are 0×2");

        var grid = Assert.ThrowsExactly<ArgumentException>(() => SpatialRetention.Scan(q, q, q, gamma, 3, 5, SpatialDecayShape.Bidirectional));
        StringAssert.Contains(grid.Message, "A 3×5 grid holds 15 tokens, but q has 12");
        var heads = Assert.ThrowsExactly<ArgumentException>(() => SpatialRetention.Parallel(q, q, q, tensor(new[] { 0.9f }), 3, 4, SpatialDecayShape.CausalQuadrant));
        StringAssert.Contains(heads.Message, "gamma must have shape [2]");
        var range = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SpatialRetention.Scan(q, q, q, tensor(new[] { 0.9f, 1.5f }), 3, 4, SpatialDecayShape.CausalQuadrant));
        StringAssert.Contains(range.Message, "Every decay γ must be in (0, 1]");
    }
}
