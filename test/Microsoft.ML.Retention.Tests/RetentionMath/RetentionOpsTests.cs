using Microsoft.ML.Retention.RetentionMath;
namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class RetentionOpsTests
{
    private const double Tolerance = 1e-4;

    private static (Tensor Q, Tensor K, Tensor V, Tensor Gamma) Inputs(long b, long h, long n, long d, int seed = 1)
    {
        var generator = new Generator((ulong)seed);
        var q = randn(new[] { b, h, n, d }, generator: generator);
        var k = randn(new[] { b, h, n, d }, generator: generator);
        var v = randn(new[] { b, h, n, d }, generator: generator);
        return (q, k, v, tensor(DecaySchedules.Gammas(DecaySchedule.RetNet, (int)h)));
    }

    [TestMethod]
    [DataRow(1, 1)] [DataRow(1, 7)] [DataRow(5, 3)] [DataRow(5, 8)] [DataRow(64, 16)] [DataRow(64, 64)]
    [DataRow(100, 1)] [DataRow(100, 7)] [DataRow(100, 32)] [DataRow(197, 64)] [DataRow(197, 256)] [DataRow(257, 50)]
    [DataRow(197, ChunkSizes.Auto)] [DataRow(1025, ChunkSizes.Auto)] [DataRow(2049, 32)]
    public void AllThreeFormsAgree(int n, int chunk)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, gamma) = Inputs(2, 3, n, 16);
        var parallel = RetentionOps.Parallel(q, k, v, gamma);
        TensorAssert.AreClose(parallel, RetentionOps.Chunkwise(q, k, v, gamma, chunk), Tolerance, $"chunkwise N={n} C={chunk}");
        TensorAssert.AreClose(parallel, RetentionOps.Recurrent(q, k, v, gamma), Tolerance, $"recurrent N={n}");
    }

    /// <summary>
    /// bfloat16 tokens (unit roundoff u = 2^−8). Every form rounds a product of three tokens, through at most six roundings
    /// of u each (the parallel form: q·k, the decay, their product and the output; the chunkwise cross-chunk part: the
    /// decayed keys, each chunk's state, the state entering a chunk, the decayed queries, their product and the sum),
    /// while states add up in float32. So each output is within 6u·B + O(u²) of the exact result, where
    /// B = (|q|·|k|ᵀ·scale ⊙ D)·|v| sums the same products without cancellation: every form is held to 8u·B of the
    /// float32 result on the same rounded tokens, and so to 16u·B of each other. That bound is loose; what rounded
    /// states would add shows over the last tokens, where with the slowest decays a state has crossed 60 chunks: there
    /// the chunkwise and recurrent errors stay within twice the parallel form's on average (with bfloat16 states the
    /// chunkwise error was 4.5 times it).
    /// </summary>
    [TestMethod]
    [DataRow(197, ChunkSizes.Auto, false)] [DataRow(1025, 64, false)] [DataRow(4097, 64, false)] [DataRow(4097, 64, true)]
    public void TheThreeFormsAgreeInBFloat16WithinTheirRoundingBound(int n, int chunk, bool slowestDecays)
    {
        using var scope = NewDisposeScope();
        var (q32, k32, v32, gamma) = Inputs(1, 3, n, 64);
        // The slowest decays carry a state across the most chunks, where rounding it would add up.
        if (slowestDecays) gamma = tensor(new[] { 1 - MathF.Pow(2, -10), 1 - MathF.Pow(2, -11), 1 - MathF.Pow(2, -12) });
        var (q, k, v) = (q32.to(ScalarType.BFloat16), k32.to(ScalarType.BFloat16), v32.to(ScalarType.BFloat16));
        var (qe, ke, ve) = (q.to(float32), k.to(float32), v.to(float32)); // the rounded tokens, exactly, in float32
        var exact = RetentionOps.Parallel(qe, ke, ve, gamma);
        var bound = RetentionOps.Parallel(qe.abs(), ke.abs(), ve.abs(), gamma).mul_(8 * Math.Pow(2, -8));

        double? parallelLate = null;
        foreach (var (form, output) in new[]
        {
            ("parallel", RetentionOps.Parallel(q, k, v, gamma)),
            ("chunkwise", RetentionOps.Chunkwise(q, k, v, gamma, chunk)),
            ("recurrent", RetentionOps.Recurrent(q, k, v, gamma)),
        })
        {
            Assert.AreEqual(ScalarType.BFloat16, output.dtype, form);
            var relative = (output.to(float32) - exact).abs().div_(bound);
            double worst = relative.max().item<float>();
            double late = relative.narrow(2, n * 3 / 4, n - n * 3 / 4).mean().item<float>();
            parallelLate ??= late;
            Console.WriteLine($"bfloat16 {form} N={n} C={chunk}{(slowestDecays ? " slowest decays" : "")}: largest error {worst:F3} of 8u·B, last quarter {late:F4} on average");
            Assert.IsTrue(worst <= 1, $"{form} at N={n}: an output is {worst:F2} times its 8u·B rounding bound away from the float32 result");
            Assert.IsTrue(late <= 2 * parallelLate, $"{form} at N={n}: its late outputs err {late / parallelLate:F1} times as much as the parallel form's");
        }
    }

    [TestMethod]
    public void AllThreeFormsAgreeAtSixteenThousandTokens()
    {
        using var scope = NewDisposeScope();
        // The extremes of the RetNet range, 1−2^−5 and 1−2^−12; parallel at this length needs H·N² floats.
        var (q, k, v, _) = Inputs(1, 2, 16385, 8, seed: 2);
        var gamma = tensor(new[] { 1 - MathF.Pow(2, -5), 1 - MathF.Pow(2, -12) });
        var parallel = RetentionOps.Parallel(q, k, v, gamma);
        TensorAssert.AreClose(parallel, RetentionOps.Chunkwise(q, k, v, gamma, 64), Tolerance, "chunkwise C=64");
        TensorAssert.AreClose(parallel, RetentionOps.Chunkwise(q, k, v, gamma, 1000), Tolerance, "chunkwise C=1000");
        TensorAssert.AreClose(parallel, RetentionOps.Recurrent(q, k, v, gamma), Tolerance, "recurrent");
    }

    [TestMethod]
    public void LongSequencesStayFiniteForEveryRetNetDecay()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, gamma) = Inputs(1, 8, 16385, 16, seed: 3); // γ from 1−2^−5 to 1−2^−12
        var chunkwise = RetentionOps.Chunkwise(q, k, v, gamma, 128);
        Assert.IsTrue(chunkwise.isfinite().all().ToBoolean(), "chunkwise output has non-finite values");
        TensorAssert.AreClose(RetentionOps.Recurrent(q, k, v, gamma), chunkwise, Tolerance, "chunkwise vs recurrent");
    }

    [TestMethod]
    public void GammaOfOneIsPlainCausalLinearAttention()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, _) = Inputs(1, 2, 9, 4);
        var gamma = ones(2);
        var expected = ((q / 2.0).matmul(k.transpose(-1, -2)) * ones(9, 9).tril()).matmul(v);
        TensorAssert.AreClose(expected, RetentionOps.Parallel(q, k, v, gamma), 1e-6, "parallel with γ=1");
        TensorAssert.AreClose(expected, RetentionOps.Chunkwise(q, k, v, gamma, 4), Tolerance, "chunkwise with γ=1");
    }

    [TestMethod]
    public void ParallelMatchesTheDefinitionElementByElement()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, gamma) = Inputs(1, 2, 6, 4);
        var output = RetentionOps.Parallel(q, k, v, gamma);
        var g = gamma.data<float>().ToArray();
        for (int h = 0; h < 2; h++)
        for (int n = 0; n < 6; n++)
        {
            var expected = zeros(4);
            for (int m = 0; m <= n; m++)
                expected += (q[0, h, n] * k[0, h, m]).sum() / 2.0 * Math.Pow(g[h], n - m) * v[0, h, m];
            TensorAssert.AreClose(expected, output[0, h, n], 1e-5, $"head {h} token {n}");
        }
    }

    [TestMethod]
    public void RecurrentStepStreamsTheRecurrentForm()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, gamma) = Inputs(2, 3, 10, 8);
        var full = RetentionOps.Recurrent(q, k, v, gamma);
        var state = zeros(2, 3, 8, 8);
        for (int t = 0; t < 10; t++)
        {
            (var output, state) = RetentionOps.RecurrentStep(state, q.select(2, t), k.select(2, t), v.select(2, t), gamma);
            TensorAssert.AreClose(full.select(2, t), output, 1e-6, $"token {t}");
        }
    }

    [TestMethod]
    public void ParallelAndChunkwiseGradientsAgree()
    {
        using var scope = NewDisposeScope();
        var (q0, k0, v0, gamma) = Inputs(2, 3, 70, 8);
        var weights = randn(2, 3, 70, 8);
        Tensor[] Gradients(Func<Tensor, Tensor, Tensor, Tensor> retention)
        {
            var (q, k, v) = (q0.clone().requires_grad_(), k0.clone().requires_grad_(), v0.clone().requires_grad_());
            (retention(q, k, v) * weights).sum().backward();
            return new[] { q.grad!, k.grad!, v.grad! };
        }
        var parallel = Gradients((q, k, v) => RetentionOps.Parallel(q, k, v, gamma));
        var chunkwise = Gradients((q, k, v) => RetentionOps.Chunkwise(q, k, v, gamma, 16));
        // Two-token chunks: 35 chunks, past MaxChunksForCrossChunkMatmul, so the states come from the scan.
        var scanned = Gradients((q, k, v) => RetentionOps.Chunkwise(q, k, v, gamma, 2));
        var recurrent = Gradients((q, k, v) => RetentionOps.Recurrent(q, k, v, gamma));
        string[] names = { "dq", "dk", "dv" };
        for (int i = 0; i < 3; i++)
        {
            TensorAssert.AreClose(parallel[i], chunkwise[i], Tolerance, $"chunkwise {names[i]}");
            TensorAssert.AreClose(parallel[i], scanned[i], Tolerance, $"chunkwise C=2 {names[i]}");
            TensorAssert.AreClose(parallel[i], recurrent[i], Tolerance, $"recurrent {names[i]}");
        }
    }

    [TestMethod]
    public void AutomaticChunkSizeFollowsTheMeasuredRule()
    {
        // One chunk (the parallel form) up to 256 tokens, 64-token chunks beyond (docs/benchmarks.md).
        Assert.AreEqual(1, ChunkSizes.For(1));
        Assert.AreEqual(197, ChunkSizes.For(197));
        Assert.AreEqual(256, ChunkSizes.For(256));
        Assert.AreEqual(64, ChunkSizes.For(257));
        Assert.AreEqual(64, ChunkSizes.For(16385));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ChunkSizes.For(0));
        Assert.AreEqual("tokens", e.ParamName);
    }

    [TestMethod]
    public void BadArgumentsThrowArgumentExceptionsNamingThem()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, gamma) = Inputs(1, 2, 5, 4);

        ArgumentException e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => RetentionOps.Chunkwise(q, k, v, gamma, -1));
        StringAssert.Contains(e.Message, "chunkSize"); StringAssert.Contains(e.Message, "-1");
        Assert.AreEqual("chunkSize", e.ParamName);

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.Parallel(q, k.narrow(2, 0, 4), v, gamma));
        Assert.AreEqual("k", e.ParamName); StringAssert.Contains(e.Message, "[1, 2, 4, 4]");

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.Recurrent(q, k, v.squeeze(0), gamma));
        Assert.AreEqual("v", e.ParamName);

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.Parallel(q, k, v, tensor(new[] { 0.9f, 1.5f })));
        Assert.AreEqual("gamma", e.ParamName); StringAssert.Contains(e.Message, "1.5");

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.Parallel(q, k, v, tensor(new[] { 0f, 0.5f })));
        Assert.AreEqual("gamma", e.ParamName); StringAssert.Contains(e.Message, "gamma[0] is 0");

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.Chunkwise(q, k, v, tensor(new[] { 0.9f, 0.9f, 0.9f }), 2));
        Assert.AreEqual("gamma", e.ParamName); StringAssert.Contains(e.Message, "3");

        e = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.RecurrentStep(zeros(1, 2, 4, 3), q.select(2, 0), k.select(2, 0), v.select(2, 0), gamma));
        Assert.AreEqual("state", e.ParamName);
    }
}
