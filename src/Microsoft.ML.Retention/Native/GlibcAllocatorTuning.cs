using System.Runtime.InteropServices;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// An opt-in tuning of glibc's allocator for processes that work with large tensors: glibc serves every block over
/// 32 MiB with a fresh mmap, so each large tensor pays its page faults again, which can cost more than the arithmetic
/// (measured in docs/platform.md). <see cref="Apply"/> keeps large blocks and freed memory in the heap for libtorch to
/// reuse, and so the whole process keeps its peak heap: the library never does it by itself.
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
