using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// Keeps freed tensor memory inside the process on Linux/glibc. By default glibc serves every block over
/// 32 MiB with a fresh mmap and unmaps it on free, so each large tensor pays page faults on first touch; in a
/// VM that cost can exceed the arithmetic (a [8, 6, 65, 64, 64] clone took 115 ms instead of 1.2 ms here).
/// Serving all blocks from the heap and keeping up to 2 GiB of free memory lets libtorch
/// reuse it, as PyTorch users do by preloading jemalloc or tcmalloc. Memory still returns to the OS beyond
/// that, and on <c>malloc_trim</c>.
/// Opt out by setting <c>MLNET_RETENTION_MALLOC=default</c>; any <c>MALLOC_*</c> setting of your own also wins.
/// </summary>
internal static class GlibcAllocatorTuning
{
    internal const int RetainedBytes = int.MaxValue; // 2 GiB, the most mallopt takes
    private const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4;

    internal static bool Applied { get; private set; }

#pragma warning disable CA2255 // A module initializer: the setting must precede the first tensor the library allocates.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() || UserConfiguredMalloc) return;
        try
        {
            Applied = mallopt(M_MMAP_MAX, 0) == 1 & mallopt(M_TRIM_THRESHOLD, RetainedBytes) == 1;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl has no mallopt): leave the allocator alone.
        }
    }

    /// <summary>True when the user opted out or set glibc's own <c>MALLOC_*</c> variables.</summary>
    internal static bool UserConfiguredMalloc =>
        Environment.GetEnvironmentVariable("MLNET_RETENTION_MALLOC") == "default"
        || Environment.GetEnvironmentVariables().Keys.Cast<string>().Any(k => k.StartsWith("MALLOC_", StringComparison.Ordinal));

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
