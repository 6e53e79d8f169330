using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// libtorch's intra-op threads for single-row predictions (PredictionEngine). One image is too little work to split:
/// with all cores per call, the threads of one call wait on each other, and serving threads oversubscribe the cores
/// (measured in docs/benchmarks.md, "Contention"). Batched Transform and training keep libtorch's setting. An app sets
/// another count with the AppContext switch <c>Microsoft.ML.Retention.SingleRowThreads</c> (0 leaves libtorch's setting alone).
/// </summary>
internal static class SingleRowThreads
{
    public const string Switch = "Microsoft.ML.Retention.SingleRowThreads";

    /// <summary>Runs <paramref name="score"/> with the single-row thread count on this thread, then restores the thread's count.</summary>
    public static T Run<T>(Func<T> score)
    {
        int threads = AppContext.GetData(Switch) switch
        {
            int n => n,
            string s when int.TryParse(s, out int n) => n,
            _ => 1,
        };
        int previous = get_num_threads();
        if (threads <= 0 || threads == previous) return score();
        set_num_threads(threads); // per calling thread: OpenMP's thread count is a per-thread setting
        try
        {
            return score();
        }
        finally
        {
            set_num_threads(previous);
        }
    }
}
