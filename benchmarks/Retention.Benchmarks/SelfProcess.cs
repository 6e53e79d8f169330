using System.Diagnostics;
using System.Globalization;

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

    /// <summary>Runs it to the end and returns the last line it printed; throws when it fails.</summary>
    public static string Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var child = Start(args, environment);
        return LastLine(child, args);
    }

    /// <summary>Runs it to the end and returns the number it printed last (children report one figure on their last line).</summary>
    public static double RunForNumber(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null) =>
        double.Parse(Run(args, environment), CultureInfo.InvariantCulture);

    /// <summary>Starts one child per argument list at once, waits for all and returns each one's last number.</summary>
    public static double[] RunTogetherForNumbers(IReadOnlyList<IEnumerable<string>> argLists, IReadOnlyDictionary<string, string>? environment = null)
    {
        var children = argLists.Select(args => Start(args, environment)).ToList();
        try
        {
            return children.Select((child, i) => double.Parse(LastLine(child, argLists[i]), CultureInfo.InvariantCulture)).ToArray();
        }
        finally
        {
            children.ForEach(child => child.Dispose());
        }
    }

    private static string LastLine(Process child, IEnumerable<string> args)
    {
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0) throw new InvalidOperationException($"'{string.Join(' ', args)}' failed ({child.ExitCode}): {output}");
        return output.Trim().Split('\n')[^1];
    }
}
