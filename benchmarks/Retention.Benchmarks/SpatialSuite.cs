using Microsoft.ML.Retention.RetentionMath;
using Retention.Plots;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// Retention with a 2-D decay (<see cref="SpatialRetention"/>) on square token grids, one layer forward (B=1, H=6, D=64),
/// in each form against libtorch's fused softmax attention over the same tokens, with each form's FLOP-ideal ratio.
/// </summary>
public static class SpatialSuite
{
    private const int Batch = 1;

    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("spatial", $"Spatial retention: one layer forward on a side² token grid, B={Batch}, H={KernelInputs.Heads}, D={KernelInputs.HeadDim} (median ms, time ÷ fused attention, its FLOP ideal)",
            "grid", "shape", "form", "median ms", "peak MiB", "÷ fused attention", "FLOP ideal", "measured ÷ ideal");
        SeriesSet time = new();
        using var gamma = tensor(DecaySchedules.Gammas(DecaySchedule.RetNet, KernelInputs.Heads));
        const long d = KernelInputs.HeadDim, h = KernelInputs.Heads;
        foreach (int side in settings.SpatialGrids)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            long n = (long)side * side;
            var shape = new long[] { Batch, h, n, d };
            var (q, k, v) = (randn(shape), randn(shape), randn(shape));
            Console.Error.WriteLine($"spatial: {side}² fused attention");
            var fused = Harness.Run(() => { using var s = NewDisposeScope(); nn.functional.scaled_dot_product_attention(q, k, v); }, budgetSeconds: settings.BudgetSeconds);
            double attentionFlops = 4.0 * n * n * d;
            string grid = $"{side}²";
            table.Add(grid, "–", "fused attention (sdpa)", fused.MedianMs, fused.PeakMiB, 1.0, 1.0, "–");
            time.Add("fused attention", n, fused.MedianMs);

            foreach (var decay in Enum.GetValues<SpatialDecayShape>())
            {
                void Case(string form, Func<Tensor> run, double flops, long bytesNeeded)
                {
                    if (bytesNeeded > settings.MaxKernelBytes)
                    {
                        table.Add(grid, decay, form, "skipped", $"needs {bytesNeeded / (1024.0 * 1024 * 1024):F0} GiB", "–", "–", "–");
                        return;
                    }
                    Console.Error.WriteLine($"spatial: {grid} {decay} {form}"); // which case, if one is killed
                    var m = Harness.Run(() => { using var s = NewDisposeScope(); run(); }, budgetSeconds: settings.BudgetSeconds);
                    double ratio = m.MedianMs / fused.MedianMs, ideal = flops / attentionFlops;
                    table.Add(grid, decay, form, m.MedianMs, m.PeakMiB, ratio, ideal, ratio / ideal);
                    time.Add($"{decay} {form}", n, m.MedianMs);
                }

                // Parallel: the [H, N, N] decay in float64 and the index grids it is built from, the float32 copy and the scores.
                Case("parallel", () => SpatialRetention.Parallel(q, k, v, gamma, side, side, decay), attentionFlops, n * n * (h * (8 + 4 + 4L * Batch) + 4 * 8));
                // Scan: a D×D state per token, swept forward and back along rows and columns (elementwise multiply-adds);
                // its lists of swept slices hold many copies of the states: at 112² it was killed at this machine's 24 GB.
                Case("scan", () => SpatialRetention.Scan(q, k, v, gamma, side, side, decay), ScanFlops(n, d, decay), 20 * Batch * h * n * d * d * 4);
                // Tiled: a D×D state per patch row of every band, and as many again per column; a bytes estimate of ten (quadrant)
                // or 24 (bidirectional) such sets, since the bidirectional 8×8 run at 224² was killed at this machine's 24 GB.
                foreach (int tile in settings.SpatialTiles.Where(t => t < side))
                    Case($"tiled {tile}×{tile}", () => SpatialRetention.Tiled(q, k, v, gamma, side, side, decay, tile, tile), TiledFlops(side, tile, d, decay),
                        (decay == SpatialDecayShape.Bidirectional ? 24 : 10) * Batch * h * n / tile * d * d * 4);
                if (decay == SpatialDecayShape.CausalQuadrant && side <= settings.MaxSpatialRecurrentSide)
                    Case("recurrent", () => SpatialRetention.Recurrent(q, k, v, gamma, side, side), ScanFlops(n, d, decay) / 2, 0);
            }
        }
        table.Notes.Add("Fused attention is libtorch's scaled_dot_product_attention without a mask over the same N tokens (4·N²·D FLOPs a head). " +
            "FLOP ideal = the form's own count ÷ attention's: parallel 1 (its matmuls are attention's); scan 12·N·D² (elementwise: 2 for the states, " +
            "4 per sweep direction, 2 to read) and half that causal; tiled the matmuls of SpatialRetention.Tiled as written (inside tiles 4·N·T·D; " +
            "each band carry one matmul with a band-to-band decay), four quadrants and two 1-D lines for the bidirectional shape. " +
            "Measured ÷ ideal is how far the form runs from its arithmetic at attention's speed: 1 would be as efficient as the fused kernel.");
        table.Figures.Add(new Figure("spatial.png", 900, 520, new[] { time.LogLog("Spatial retention: one layer forward", "tokens N", "median ms") }));
        return table;
    }

    private static double ScanFlops(long n, long d, SpatialDecayShape shape) => (shape == SpatialDecayShape.Bidirectional ? 12.0 : 6.0) * n * d * d;

    // The matmul FLOPs of SpatialRetention.Tiled on a side² grid with t×t tiles (one head).
    private static double TiledFlops(long side, long t, long d, SpatialDecayShape shape)
    {
        double quadrant = QuadrantFlops(side, side, t, t, d);
        if (shape == SpatialDecayShape.CausalQuadrant) return quadrant;
        double lines = 2 * side * 2 * QuadrantFlops(1, side, 1, t, d); // rows and columns, each both ways
        return 4 * quadrant + lines;
    }

    private static double QuadrantFlops(long rows, long columns, long tr, long tc, long d)
    {
        tr = Math.Min(tr, rows);
        tc = Math.Min(tc, columns);
        double ni = Math.Ceiling((double)rows / tr), nk = Math.Ceiling((double)columns / tc), padded = ni * tr * nk * tc, dd = (double)d * d;
        double inside = 4 * padded * tr * tc * d;
        double rowCarry = 2 * padded * dd + 2 * ni * tr * nk * nk * dd + 2 * ni * nk * tr * tr * dd + 2 * padded * dd;
        double columnCarry = 2 * padded * dd + 2 * nk * tc * ni * ni * dd + 2 * ni * nk * tc * tc * dd + 2 * padded * dd;
        double corner = 2 * ni * nk * nk * dd + 2 * ni * ni * nk * dd + 2 * padded * dd;
        return inside + (nk > 1 ? rowCarry : 0) + (ni > 1 ? columnCarry : 0) + (nk > 1 && ni > 1 ? corner : 0); // as Tiled skips them
    }
}
