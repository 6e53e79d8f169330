using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Training;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>
/// Throughput when work competes for the cores: serving threads, each with its own PredictionEngine over one model, with
/// and without the library's single-row thread policy; and a fit while another process fits on the same cores, with
/// libgomp's default spin count and with the library's.
/// </summary>
public static class ContentionSuite
{
    private const string SingleRowThreads = "Microsoft.ML.Retention.SingleRowThreads";

    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("contention", "Contention: ViR-Mini images/s with other work on the same cores", "case", "policy", "images/s", "÷ alone");
        var ml = new MLContext(seed: 1);
        var rows = SyntheticPixels.Rows(settings.Smoke ? 64 : 2048);
        using (var model = SyntheticPixels.Fit(ml, SyntheticPixels.Keyed(ml, rows), epochs: 1, batch: 64))
        {
            int predictions = settings.Smoke ? 40 : 400;
            foreach (var (policy, threads) in new[] { ("libtorch's thread count", 0), ("1 intra-op thread per row (default)", 1) })
            {
                AppContext.SetData(SingleRowThreads, threads);
                double alone = Serve(ml, model, rows, serving: 1, predictions);
                double four = Serve(ml, model, rows, serving: 4, predictions / 4);
                table.Add("PredictionEngine, 1 serving thread", policy, alone, 1.0);
                table.Add("PredictionEngine, 4 serving threads", policy, four, four / alone);
            }
            AppContext.SetData(SingleRowThreads, null);
        }

        // Each fit runs in a process of its own, so that it starts libgomp with its spin count: libgomp's default (which
        // the library leaves alone when the environment sets one), or the library's.
        int epochs = settings.Smoke ? 1 : 3, fitRows = settings.Smoke ? 128 : 2048;
        foreach (var (policy, spinCount) in new[] { ("libgomp's spin count (300,000)", "300000"), ("the library's (GOMP_SPINCOUNT=1000)", (string?)null) })
        {
            double alone = FitRateInChild(epochs, fitRows, spinCount);
            using var other = SelfProcess.Start(new[] { "competing-fit", "--seconds", settings.Smoke ? "20" : "120", "--rows", $"{fitRows}" }, Spin(spinCount));
            Thread.Sleep(TimeSpan.FromSeconds(settings.Smoke ? 2 : 8)); // its start-up, so both really fit at once
            double beside = FitRateInChild(epochs, fitRows, spinCount);
            if (!other.HasExited) other.Kill(entireProcessTree: true);
            table.Add("Fit alone", policy, alone, 1.0);
            table.Add("Fit beside another process's fit", policy, beside, beside / alone);
        }
        // Batched scoring (ViR-Mini, batch 8, one forward pass after another) alone and beside the same work in a second
        // process, at the library's spin count and two longer ones: what the spin count trades.
        double scoreSeconds = settings.Smoke ? 0.5 : 6;
        foreach (var (policy, spinCount) in new[] { ("the library's (GOMP_SPINCOUNT=1000)", "1000"), ("GOMP_SPINCOUNT=30000", "30000"), ("libgomp's spin count (300,000)", "300000") })
        {
            double alone = ScoreRates(1, scoreSeconds, spinCount).Sum();
            var pair = ScoreRates(2, scoreSeconds, spinCount);
            table.Add("Batch-8 scoring alone", policy, alone, 1.0);
            table.Add("Batch-8 scoring beside another process's", policy, pair[0], pair[0] / alone);
        }
        table.Notes.Add($"{Environment.ProcessorCount} cores. Serving: each thread predicts with its own PredictionEngine (OwnsTransformer = false) over one model; " +
            $"rates are totals over all threads. Fit: ViR-Mini on {fitRows:N0} images, images/s of the last epoch, each in a process of its own; the other process runs the same fit in a loop. " +
            "Batch-8 scoring: ViR-Mini forward passes of 8 images in a process of its own, alone or with a second identical process started at the same time.");
        return table;
    }

    /// <summary>Fits once and prints the last epoch's images/s (the contention suite's child process).</summary>
    public static int FitRate(int epochs, int rows)
    {
        var ml = new MLContext(seed: 1);
        var last = default(ViREpochMetrics);
        SyntheticPixels.Fit(ml, SyntheticPixels.Keyed(ml, SyntheticPixels.Rows(rows)), epochs, batch: 64, m => last = m).Dispose();
        Console.WriteLine(last!.ImagesPerSecond.ToString(CultureInfo.InvariantCulture));
        return 0;
    }

    /// <summary>Fits in a loop for <paramref name="seconds"/> seconds: the work the contention case competes with.</summary>
    public static int CompetingFit(int seconds, int rows)
    {
        var ml = new MLContext(seed: 2);
        var keyed = SyntheticPixels.Keyed(ml, SyntheticPixels.Rows(rows, seed: 2));
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds)
            SyntheticPixels.Fit(ml, keyed, epochs: 1, batch: 64).Dispose();
        return 0;
    }

    /// <summary>Scores ViR-Mini batches of 8 for <paramref name="seconds"/> seconds and prints images/s (the contention suite's child process).</summary>
    public static int ScoreRate(double seconds)
    {
        using var inference = inference_mode();
        manual_seed(0);
        using var model = new ViRModel(ViRConfig.Mini with { DropPath = 0 });
        model.eval();
        var images = randn(8, 1, 28, 28);
        for (int i = 0; i < 20; i++) { using var s = NewDisposeScope(); model.forward(images); }
        int passes = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds)
        {
            using var s = NewDisposeScope();
            model.forward(images);
            passes++;
        }
        Console.WriteLine((passes * 8 / watch.Elapsed.TotalSeconds).ToString(CultureInfo.InvariantCulture));
        return 0;
    }

    // Starts `processes` scoring children at once and returns each one's images/s.
    private static double[] ScoreRates(int processes, double seconds, string spinCount) =>
        SelfProcess.RunTogetherForNumbers(Enumerable.Range(0, processes)
            .Select(_ => (IEnumerable<string>)new[] { "score-rate", "--seconds", seconds.ToString(CultureInfo.InvariantCulture) }).ToList(), Spin(spinCount));

    private static double FitRateInChild(int epochs, int rows, string? spinCount) =>
        SelfProcess.RunForNumber(new[] { "fit-rate", "--epochs", $"{epochs}", "--rows", $"{rows}" }, Spin(spinCount));

    private static Dictionary<string, string> Spin(string? spinCount) =>
        spinCount is null ? new() : new() { ["GOMP_SPINCOUNT"] = spinCount };

    private static double Serve(MLContext ml, ITransformer model, List<SyntheticPixels.PixelRow> rows, int serving, int perThread)
    {
        var ready = new Barrier(serving + 1);
        var threads = Enumerable.Range(0, serving).Select(t => new Thread(() =>
        {
            using var engine = ml.Model.CreatePredictionEngine<SyntheticPixels.PixelRow, SyntheticPixels.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
            for (int i = 0; i < 10; i++) engine.Predict(rows[i]); // warm-up
            ready.SignalAndWait();
            for (int i = 0; i < perThread; i++) engine.Predict(rows[(t * perThread + i) % rows.Count]);
        })).ToList();
        threads.ForEach(t => t.Start());
        ready.SignalAndWait();
        var watch = Stopwatch.StartNew();
        threads.ForEach(t => t.Join());
        return serving * perThread / watch.Elapsed.TotalSeconds;
    }
}
