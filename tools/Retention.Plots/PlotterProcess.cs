using System.Diagnostics;
using System.Text.Json;

namespace Retention.Plots;

/// <summary>
/// Draws figures with the plot helper (copied into plotter/ beside the calling app) in a separate process:
/// ScottPlot 5 needs SkiaSharp 3, and an app that uses ML.NET's image loading holds SkiaSharp 2.88.
/// </summary>
internal static class PlotterProcess
{
    /// <summary>Writes <c>figures.json</c> into <paramref name="outputDir"/> and draws each figure there; returns the helper's report.</summary>
    public static string Draw(IReadOnlyList<Figure> figures, string outputDir)
    {
        Directory.CreateDirectory(outputDir);
        string json = Path.Combine(outputDir, "figures.json");
        File.WriteAllText(json, JsonSerializer.Serialize(figures, new JsonSerializerOptions { WriteIndented = true }));
        string plotter = Path.Combine(AppContext.BaseDirectory, "plotter", "Retention.Plots.dll");
        if (!File.Exists(plotter))
            throw new FileNotFoundException($"The plot helper is missing from {plotter}; the figure data is in {json}.", plotter);

        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { plotter, json, outputDir }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"The plot helper failed with exit code {process.ExitCode}: {stderr.Result}");
        return stdout.Trim();
    }
}
