namespace Microsoft.ML.Retention.Tests;

/// <summary>The process's peak resident memory over one action (Linux: VmHWM, reset through /proc/self/clear_refs).</summary>
internal static class PeakMemory
{
    /// <summary>How far the resident set rose above where it stood when <paramref name="action"/> started, in MiB.</summary>
    public static double RiseMiB(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        bool peakReset;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5"); // resets the peak to the current resident set
            peakReset = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            peakReset = false; // a sandbox without it: the rise of the resident set after the action is all there is
        }
        long before = Read("VmRSS");
        try
        {
            action();
        }
        catch
        {
            // The caller asserts the exception; the peak is what is measured here.
        }
        return (Read(peakReset ? "VmHWM" : "VmRSS") - before) / 1024.0;
    }

    /// <summary>Managed memory allocated during <paramref name="action"/>, in MiB (an array counts whether or not its pages were touched).</summary>
    public static double AllocatedMiB(Action action)
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        action();
        return (GC.GetTotalAllocatedBytes(precise: true) - before) / (1024.0 * 1024);
    }

    private static long Read(string field) =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}
