using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// Where a forward pass's time goes, for the ONNX cases: each kind of operation of one block timed alone at the block's
/// shapes (times depth), what lies outside the blocks, and the rest of the measured forward pass, which is the per-call
/// cost between the operations (managed calls, libtorch's dispatcher, allocation). Then inference mode against no_grad,
/// the retention kernels against fused attention, and bfloat16 scoring against the bfloat16 matmul roofline.
/// </summary>
public static class ProfileSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("profile", "Where scoring time goes: one float32 forward pass, ms, and the matmuls' GFLOP/s",
            "case", "forward ms", "outside the blocks ms", "block matmuls ms", "matmul GFLOP/s", "÷ matmul peak", "block memory-bound ms", "block per-call overhead ms");
        using var inference = inference_mode();
        int side = settings.Smoke ? 256 : 2048;
        double peak = MatmulPeak(ScalarType.Float32, side);
        foreach (var (name, config, batch, retention) in settings.OnnxCases)
        {
            using var scope = NewDisposeScope();
            var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
            // Three rounds of every measurement, each quantity's median: this machine has slow spells of seconds.
            var rounds = Enumerable.Range(0, settings.Smoke ? 1 : 3).Select(_ =>
            {
                double forward = Forward(config, images, retention, settings);
                // What one more block costs, measured as the difference of a two-block and a one-block model, leaves what
                // lies outside the blocks: the stem, the position embedding, the final norm and the head, with their calls.
                double one = Forward(config with { Depth = 1 }, images, retention, settings), two = Forward(config with { Depth = 2 }, images, retention, settings);
                var block = BlockParts(config, batch, retention, settings);
                return (Forward: forward, Outside: Math.Max(0, 2 * one - two), Matmuls: block.MatmulMs * config.Depth, Memory: block.MemoryMs * config.Depth, block.MatmulFlops);
            }).ToList();
            double forward = Harness.Median(rounds.Select(r => r.Forward)), outside = Harness.Median(rounds.Select(r => r.Outside));
            double matmuls = Harness.Median(rounds.Select(r => r.Matmuls)), memory = Harness.Median(rounds.Select(r => r.Memory));
            double gflops = rounds[0].MatmulFlops * config.Depth / matmuls / 1e6;
            table.Add($"{name} {config.ImageHeight}² b{batch} {(retention.Mode == RetentionMode.Chunkwise ? "chunkwise" : "parallel")}",
                forward, outside, matmuls, gflops, gflops / peak, memory, forward - outside - matmuls - memory);
        }
        table.Notes.Add($"fp32 matmul peak: {peak:F0} GFLOP/s (a {side}² matmul, best of 7, {get_num_threads()} threads). Block matmuls: qkv, retention " +
            "(its products with the mask between them), the output projection and the MLP's two Linears, each timed alone at the block's shapes, × depth. " +
            "Block memory-bound: two LayerNorms, GELU, two residual adds and the copy that merges the heads, likewise. Outside the blocks: 2·f(1 block) − f(2 blocks). " +
            "Per-call overhead: the rest of the forward pass, the cost between operations (managed calls, libtorch's dispatcher, allocation, module calls).");

        table.Notes.Add(InferenceModeGain(settings));

        foreach (var (n, ratio, target) in Kernels(settings))
            table.Notes.Add($"Kernel, B={settings.KernelBatch} H={KernelInputs.Heads} D={KernelInputs.HeadDim}, N={n}: " +
                $"{(n < 500 ? "parallel" : $"chunkwise C={KernelChunk}")} ÷ fused attention = {ratio:F3} (target ≤ {target:F3}" +
                $"{(n < 500 ? "" : $", 1.5× the FLOP ideal (C + D)/N = {target / 1.5:F3}")}).");

        if (settings.Smoke || BenchmarkRunner.CpuHasNativeBFloat16())
        {
            var (name, config, batch, retention) = settings.OnnxCases[settings.Smoke ? 0 : 3];
            manual_seed(0);
            using var float32 = new ViRModel(config with { DropPath = 0 });
            using var model = float32.BFloat16Copy(); // what scoring with ViRPrecision.BFloat16 runs: norms stay float32
            model.eval();
            var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth, dtype: ScalarType.BFloat16);
            double ms = Median(() => model.forward(images, retention), settings);
            double bf16Peak = MatmulPeak(ScalarType.BFloat16, side);
            double achieved = model.ForwardFlopsPerImage() * batch / ms / 1e6;
            table.Notes.Add($"bfloat16 scoring, {name} {config.ImageHeight}² b{batch}: {ms:F1} ms, {achieved:F0} GFLOP/s = {achieved / bf16Peak:F2} of the bfloat16 matmul " +
                $"roofline ({bf16Peak:F0} GFLOP/s, a {side}² bfloat16 matmul; target ≥ 0.6).");
        }
        return table;
    }

    // What inference mode saves over no_grad (the library's scoring used no_grad before issue 25), in alternating rounds.
    private static string InferenceModeGain(BenchmarkSettings settings)
    {
        var (name, config, batch, retention) = settings.OnnxCases[0];
        manual_seed(0);
        using var model = new ViRModel(config with { DropPath = 0 });
        model.eval();
        var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
        double NoGrad()
        {
            using var normal = inference_mode(false);
            using var noGrad = no_grad();
            return Median(() => model.forward(images, retention), settings);
        }
        var ratios = Enumerable.Range(0, settings.Smoke ? 1 : 7).Select(_ => NoGrad() / Median(() => model.forward(images, retention), settings)).ToList();
        return $"{name} {config.ImageHeight}² b{batch}: forward time under no_grad ÷ under inference mode = {Harness.Median(ratios):F3} (median of {ratios.Count} alternating rounds, " +
            $"{ratios.Min():F3}–{ratios.Max():F3}).";
    }

    private const int KernelChunk = 64;

    private static double Forward(ViRConfig config, Tensor images, RetentionSettings retention, BenchmarkSettings settings)
    {
        manual_seed(0);
        using var model = new ViRModel(config with { DropPath = 0 });
        model.eval();
        return Median(() => model.forward(images, retention), settings);
    }

    private sealed record Parts(double MatmulMs, double MatmulFlops, double MemoryMs);

    // One block's operations at the shapes the model gives them, each timed alone.
    private static Parts BlockParts(ViRConfig config, int batch, RetentionSettings retention, BenchmarkSettings settings)
    {
        long b = batch, n = config.PatchCount + 1, dim = config.Dim, heads = config.Heads, d = dim / heads, hidden = config.MlpHidden;
        using var scope = NewDisposeScope();
        var x = randn(b, n, dim);
        var wide = randn(b, n, hidden);
        var (q, k, v) = (randn(b, heads, n, d), randn(b, heads, n, d), randn(b, heads, n, d));
        var merged = randn(b, heads, n, d);
        var gamma = tensor(DecaySchedules.Gammas(config.DecaySchedule, config.Heads));
        using var qkv = nn.Linear(dim, 3 * dim);
        using var proj = nn.Linear(dim, dim);
        using var fc1 = nn.Linear(dim, hidden);
        using var fc2 = nn.Linear(hidden, dim);
        using var norm = nn.LayerNorm(dim, 1e-6);
        using var gelu = nn.GELU();
        double T(Func<Tensor> op) => Median(op, settings);

        double retentionMs = retention.Mode == RetentionMode.Chunkwise
            ? T(() => RetentionOps.Chunkwise(q, k, v, gamma, retention.ChunkSize))
            : T(() => RetentionOps.Parallel(q, k, v, gamma));
        long c = retention.Mode == RetentionMode.Chunkwise ? Math.Min(ChunkSizes.Resolve(retention.ChunkSize, n), n) : n;
        double retentionFlops = retention.Mode == RetentionMode.Chunkwise
            ? 2.0 * b * heads * ((n + c - 1) / c) * c * (2 * c * d + 2 * d * d)   // in-chunk products, chunk states, reads of the states
            : 4.0 * b * heads * n * n * d;
        double matmulMs = T(() => qkv.forward(x)) + T(() => proj.forward(x)) + T(() => fc1.forward(x)) + T(() => fc2.forward(wide)) + retentionMs;
        double flops = 2.0 * b * n * dim * (3 * dim + dim + 2 * hidden) + retentionFlops;
        double memoryMs = 2 * T(() => norm.forward(x)) + T(() => gelu.forward(wide)) + 2 * T(() => x + x) + T(() => merged.transpose(1, 2).reshape(b, n, dim));
        return new Parts(matmulMs, flops, memoryMs);
    }

    // Each length's median ratio over alternating rounds (the machine's drift falls on both alike), and its target.
    private static IEnumerable<(long N, double Ratio, double Target)> Kernels(BenchmarkSettings settings)
    {
        long[] lengths = settings.Smoke ? new long[] { 17, 65 } : new long[] { 197, 1025, 4097, 16385 };
        using var gamma = tensor(DecaySchedules.Gammas(DecaySchedule.RetNet, KernelInputs.Heads));
        foreach (long n in lengths)
        {
            using var scope = NewDisposeScope();
            var shape = new long[] { settings.KernelBatch, KernelInputs.Heads, n, KernelInputs.HeadDim };
            var (q, k, v) = (randn(shape), randn(shape), randn(shape));
            bool parallel = n < 500;
            var ratios = new List<double>();
            for (int round = 0; round < (n > 8192 ? 1 : 3); round++) // fused attention at 16,385 takes 20 s a call
            {
                double fused = Median(() => nn.functional.scaled_dot_product_attention(q, k, v), settings);
                double ours = Median(() => parallel ? RetentionOps.Parallel(q, k, v, gamma) : RetentionOps.Chunkwise(q, k, v, gamma, KernelChunk), settings);
                ratios.Add(ours / fused);
            }
            ratios.Sort();
            yield return (n, ratios[ratios.Count / 2], parallel ? 1.0 : 1.5 * (KernelChunk + KernelInputs.HeadDim) / n);
        }
    }

    private static double MatmulPeak(ScalarType type, int m)
    {
        using var scope = NewDisposeScope();
        var (a, b) = (randn(m, m, dtype: type), randn(m, m, dtype: type));
        double best = double.MaxValue;
        for (int i = 0; i < 7; i++)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            using (NewDisposeScope()) a.matmul(b);
            best = Math.Min(best, watch.Elapsed.TotalMilliseconds);
        }
        return 2.0 * m * m * m / best / 1e6;
    }

    private static double Median(Func<Tensor> op, BenchmarkSettings settings) =>
        Harness.Run(() => { using var s = NewDisposeScope(); op(); }, minRepeats: 3, maxRepeats: 31, budgetSeconds: settings.Smoke ? 0.2 : 1).MedianMs;
}
