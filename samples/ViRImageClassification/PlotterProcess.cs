using System.Diagnostics;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>
/// Runs the plotting helper (copied into plotter/ beside this sample) in a separate process:
/// ScottPlot 5 needs SkiaSharp 3, and this process has loaded ML.NET's SkiaSharp 2.88.
/// </summary>
internal static class PlotterProcess
{
    public static void Run(IAnsiConsole console, string plotDataJson, string outputDir)
    {
        string plotter = Path.Combine(Path.GetDirectoryName(typeof(PlotterProcess).Assembly.Location)!, "plotter", "ViRImageClassification.Plots.dll");
        if (!File.Exists(plotter))
        {
            console.MarkupLineInterpolated($"[yellow]Plot helper not found at {plotter}; the plot data is in {plotDataJson}.[/]");
            return;
        }
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { plotter, plotDataJson, outputDir }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"The plot helper failed with exit code {process.ExitCode}: {stderr}");
        console.WriteLine(stdout.Trim());
    }
}
