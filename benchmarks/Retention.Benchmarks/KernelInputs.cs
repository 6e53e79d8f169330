using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Random q, k, v of shape [B, 6, N, 64] and RetNet decays, for every kernel length of a run.</summary>
public static class KernelInputs
{
    public const int Heads = 6, HeadDim = 64;

    public static void ForEachLength(BenchmarkSettings settings, Action<long, Tensor, Tensor, Tensor, Tensor> measure)
    {
        using var gamma = tensor(DecaySchedules.Gammas(DecaySchedule.RetNet, Heads));
        foreach (long n in settings.KernelLengths)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var shape = new long[] { settings.KernelBatch, Heads, n, HeadDim };
            measure(n, randn(shape), randn(shape), randn(shape), gamma);
        }
    }
}
