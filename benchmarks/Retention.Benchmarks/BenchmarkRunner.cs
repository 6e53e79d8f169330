using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Retention.Plots;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>Runs the chosen suites, prints their markdown tables and saves them.</summary>
public static class BenchmarkRunner
{
    private static readonly (string Name, Func<BenchmarkSettings, ResultTable> Run)[] Suites =
    {
        ("kernel", KernelSuite.Run),
        ("chunk", ChunkSizeSuite.Run),
        ("model", ModelSuite.Run),
        ("training", TrainingSuite.Run),
        ("mlnet", MLNetSuite.Run),
        ("precision", PrecisionSuite.Run),
        ("contention", ContentionSuite.Run),
        ("onnx", OnnxSuite.Run),
        ("rmt", RmtSuite.Run),
        ("streaming", StreamingSuite.Run),
        ("reach", ReachSuite.Run),
        ("spatial", SpatialSuite.Run),
        ("profile", ProfileSuite.Run),
    };

    public static int Run(IReadOnlyCollection<string> suites, bool smoke, bool small, string output, TextWriter log, int[]? resolutions = null,
        string[]? streamingImages = null)
    {
        var unknown = suites.Where(s => s != "all" && Suites.All(x => x.Name != s)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"Unknown suite(s) {string.Join(", ", unknown)}; expected {string.Join(", ", Suites.Select(s => s.Name))} or all.", nameof(suites));
        var settings = smoke ? BenchmarkSettings.SmokeTest
            : small ? new BenchmarkSettings { ModelName = "ViR-S vs ViT-S", ModelConfig = ViRConfig.Small } : new BenchmarkSettings();
        if (resolutions is { Length: > 0 }) settings = settings with { Resolutions = resolutions };
        if (streamingImages is { Length: > 0 }) settings = settings with { StreamingImages = streamingImages };

        string header = $"Run on {Cpu()}, {Environment.ProcessorCount} cores, {get_num_threads()} libtorch threads, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC{(smoke ? " (smoke sizes)" : "")}.\n\n";
        log.Write(header);
        var tables = new List<ResultTable>();
        foreach (var (name, run) in Suites.Where(s => suites.Contains("all") || suites.Contains(s.Name)))
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var table = run(settings);
            table.Notes.Add($"Suite time: {watch.Elapsed.TotalSeconds:F0} s.");
            tables.Add(table);
            log.Write(table.ToMarkdown());
            ResultTable.Save(output, tables, header);
        }
        log.WriteLine($"Saved {Path.Combine(output, "results.md")} and results.json.");
        var figures = tables.SelectMany(t => t.Figures).ToList();
        if (figures.Count > 0) log.WriteLine(PlotterProcess.Draw(figures, output));
        return 0;
    }

    /// <summary>The CPU's name and whether it computes bfloat16 natively: bfloat16 speeds hold only where it does.</summary>
    private static string Cpu()
    {
        var bfloat16 = NativeBFloat16Flags();
        return $"{CpuInfo("model name")?.Trim() ?? "an unknown CPU"} ({(bfloat16.Count > 0 ? $"native bfloat16: {string.Join(", ", bfloat16)}" : "no native bfloat16")})";
    }

    /// <summary>True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX).</summary>
    public static bool CpuHasNativeBFloat16() => NativeBFloat16Flags().Count > 0;

    private static List<string> NativeBFloat16Flags()
    {
        var flags = CpuInfo("flags")?.Split(' ') ?? Array.Empty<string>();
        return new[] { "avx512_bf16", "amx_bf16" }.Where(flags.Contains).ToList();
    }

    private static string? CpuInfo(string field) => (File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").Take(60) : Enumerable.Empty<string>())
        .FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal))?.Split(':', 2)[1];
}
