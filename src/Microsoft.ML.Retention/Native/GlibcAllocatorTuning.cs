using System.Runtime.InteropServices;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// An opt-in tuning of glibc's allocator for processes that work with large tensors. By default glibc serves every block
/// over 32 MiB with a fresh mmap and unmaps it on free, so each large tensor pays page faults on first touch; in a VM
/// that cost can exceed the arithmetic (a [8, 6, 65, 64, 64] clone took 115 ms instead of 1.2 ms, and chunkwise
/// retention at 4,097 tokens 1,086 ms instead of 89 ms; docs/platform.md). <see cref="Apply"/> serves all blocks from
/// the heap and keeps freed memory in the process, so libtorch reuses it: the trade PyTorch users make by preloading
/// jemalloc or tcmalloc. The cost: the whole process keeps its peak heap until <c>malloc_trim(0)</c> returns it, which is
/// why the library never does this by itself; an app (a trainer, a batch scorer) calls it once at start.
/// </summary>
public static class GlibcAllocatorTuning
{
    private const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4;
    private const int NeverTrim = -1; // a bounded threshold (at most 2 GiB) re-faulted every long-sequence step

    /// <summary>True once <see cref="Apply"/> has tuned the allocator in this process.</summary>
    public static bool Applied { get; private set; }

    /// <summary>
    /// Tunes glibc's allocator for the whole process; returns whether it did. It changes nothing off Linux or glibc,
    /// when any <c>MALLOC_*</c> environment variable is set (yours wins), or when <c>MLNET_RETENTION_MALLOC=default</c>.
    /// Call it at the start of the app, before large tensors are allocated.
    /// </summary>
    public static bool Apply()
    {
        if (Applied || !OperatingSystem.IsLinux() || UserConfiguredMalloc) return Applied;
        try
        {
            Applied = mallopt(M_MMAP_MAX, 0) == 1 & mallopt(M_TRIM_THRESHOLD, NeverTrim) == 1;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl has no mallopt): leave the allocator alone.
        }
        return Applied;
    }

    /// <summary>True when the user opted out or set glibc's own <c>MALLOC_*</c> variables.</summary>
    internal static bool UserConfiguredMalloc =>
        Environment.GetEnvironmentVariable("MLNET_RETENTION_MALLOC") == "default"
        || Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("MALLOC_", StringComparison.Ordinal));

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
