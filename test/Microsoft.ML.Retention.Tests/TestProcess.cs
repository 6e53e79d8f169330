using System.Diagnostics;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Runs other programs (dotnet, python3, torchrun) from tests, and finds the repository they work in.</summary>
internal static class TestProcess
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    /// <summary>The clone's root folder (where Retention.MLNet.sln is).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public sealed record Result(string Command, int ExitCode, string Stdout, string Stderr)
    {
        public void AssertSucceeded(string what) =>
            Assert.AreEqual(0, ExitCode, $"{what} failed ({Command}):\n{Stdout}\n{Stderr}");
    }

    /// <summary>Runs a command as a user's shell would: none of the test host's MSBuild settings leak into it.</summary>
    public static Result Run(string file, string arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k == "NUGET_PACKAGES").ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"'{file} {arguments}' did not finish within {Timeout}.");
        }
        return new Result($"{file} {arguments}", process.ExitCode, stdout.Result, stderr.Result);
    }

    public static string Quote(string arg) => $"\"{arg}\"";

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Retention.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No Retention.MLNet.sln above {AppContext.BaseDirectory}.");
    }
}
