using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// Keeps freed tensor memory inside the process on Linux/glibc. By default glibc serves every block over
/// 32 MiB with a fresh mmap and unmaps it on free, so each large tensor pays page faults on first touch; in a
/// VM that cost can exceed the arithmetic (a [8, 6, 65, 64, 64] clone took 115 ms instead of 1.2 ms here).
/// Serving all blocks from the heap and keeping freed memory in the process lets libtorch reuse it, the
/// trade PyTorch users make by preloading jemalloc or tcmalloc: the process keeps its peak heap until
/// <c>malloc_trim(0)</c> returns it.
/// Opt out by setting <c>MLNET_RETENTION_MALLOC=default</c>; any <c>MALLOC_*</c> setting of your own also wins.
/// </summary>
internal static class GlibcAllocatorTuning
{
    private const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4;
    private const int NeverTrim = -1; // a bounded threshold (at most 2 GiB) re-faulted every long-sequence step

    internal static bool Applied { get; private set; }

#pragma warning disable CA2255 // A module initializer: the setting must precede the first tensor the library allocates.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() || UserConfiguredMalloc) return;
        try
        {
            Applied = mallopt(M_MMAP_MAX, 0) == 1 & mallopt(M_TRIM_THRESHOLD, NeverTrim) == 1;
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
