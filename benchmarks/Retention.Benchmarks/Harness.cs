using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Retention.Benchmarks;

/// <summary>One measured case: median wall time of the repeats, and peak resident memory added.</summary>
public sealed record Measurement(double MedianMs, double MinMs, int Repeats, double PeakMiB);

/// <summary>
/// Run once to warm up and measure memory, then time repeats and take the median (this machine is shared and noisy). Peak memory is
/// the rise of the process's resident high-water mark (VmHWM) during one run, after returning freed
/// heap to the OS; libtorch's CPU allocator has no peak counter of its own.
/// </summary>
public static class Harness
{
    public static Measurement Run(Action action, int minRepeats = 3, int maxRepeats = 9, double budgetSeconds = 10)
    {
        // The memory-measuring run doubles as the warm-up (caches built, code paths loaded).
        double peakMiB = PeakMemoryMiB(action);
        var samples = new List<double>();
        var total = Stopwatch.StartNew();
        while (samples.Count < minRepeats || (samples.Count < maxRepeats && total.Elapsed.TotalSeconds < budgetSeconds))
        {
            var watch = Stopwatch.StartNew();
            action();
            samples.Add(watch.Elapsed.TotalMilliseconds);
        }
        samples.Sort();
        return new Measurement(samples[samples.Count / 2], samples[0], samples.Count, peakMiB);
    }

    /// <summary>The median of <paramref name="values"/> (the upper one of an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted[sorted.Count / 2];
    }

    private static double PeakMemoryMiB(Action action)
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        malloc_trim(0);
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        long before = StatusKiB("VmRSS");
        action();
        return (StatusKiB("VmHWM") - before) / 1024.0;
    }

    private static long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(field.Length + 1).Trim().TrimEnd("kB").Trim());
        throw new InvalidOperationException($"/proc/self/status has no {field}.");
    }

    [DllImport("libc")]
    private static extern int malloc_trim(nuint pad);
}
