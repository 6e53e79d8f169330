using System.Diagnostics;

namespace Retention.Benchmarks;

/// <summary>This benchmark program started again as a child process, for a hidden command (a competing fit, one measured case).</summary>
internal static class SelfProcess
{
    /// <summary>Starts it with <paramref name="args"/>; stdout is redirected. OpenMP's spin settings are the child's own, set by <paramref name="environment"/>.</summary>
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet") { RedirectStandardOutput = true };
        start.ArgumentList.Add(typeof(SelfProcess).Assembly.Location);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment.Remove("GOMP_SPINCOUNT");
        start.Environment.Remove("OMP_WAIT_POLICY");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return Process.Start(start)!;
    }

    /// <summary>Runs it to the end and returns its stdout; throws when it fails.</summary>
    public static string Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var child = Start(args, environment);
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0) throw new InvalidOperationException($"'{string.Join(' ', args)}' failed ({child.ExitCode}): {output}");
        return output;
    }
}
