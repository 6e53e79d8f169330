using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Onnx;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace Retention.Benchmarks;

/// <summary>
/// The library against ONNX Runtime (CPU) on the same exported model, form and batch. Each measurement runs in a process
/// of its own, the two engines alternating, so that neither engine's idle threads take cores from the other (libgomp's
/// and ONNX Runtime's spin after work) and the machine's drift falls on both alike.
/// </summary>
public static class OnnxSuite
{
    private const int Rounds = 5;

    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("onnx", "The library against ONNX Runtime: ViR forward, images/s (same weights, form and batch)",
            "model", "resolution", "batch", "form", "library images/s", "ONNX Runtime images/s", "library ÷ ONNX Runtime", "rounds' range");
        double seconds = settings.Smoke ? 0.2 : 1.5;
        for (int i = 0; i < settings.OnnxCases.Length; i++)
        {
            var (name, config, batch, retention) = settings.OnnxCases[i];
            var library = new List<double>();
            var onnx = new List<double>();
            var ratios = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                library.Add(RateInChild(i, "library", seconds, settings.Smoke));
                onnx.Add(RateInChild(i, "onnxruntime", seconds, settings.Smoke));
                ratios.Add(library[^1] / onnx[^1]);
            }
            table.Add(name, $"{config.ImageHeight}²", batch,
                retention.Mode == RetentionMode.Chunkwise ? $"chunkwise C={ChunkSizes.Resolve(retention.ChunkSize, config.PatchCount + 1)}" : "parallel",
                Harness.Median(library), Harness.Median(onnx), Harness.Median(ratios), $"{ratios.Min():F2}–{ratios.Max():F2}");
        }
        table.Notes.Add($"Medians over {Rounds} alternating rounds (the ratio: the median of each round's library ÷ ONNX Runtime, which this machine's slow spells affect least), each a fresh process that measures the median forward pass (probabilities out) for {seconds} s after a second's warm-up, " +
            $"{Environment.ProcessorCount} threads each: the library's model.forward under inference mode, and ONNX Runtime's CPU provider with default graph optimisations " +
            "on ViROnnxExport's file. Random weights; speed does not depend on them.");
        return table;
    }

    /// <summary>Measures one case with one engine and prints its images/s (the suite's child process).</summary>
    public static int MeasureCase(int index, string engine, double seconds, bool smoke)
    {
        var settings = smoke ? BenchmarkSettings.SmokeTest : new BenchmarkSettings();
        var (_, config, batch, retention) = settings.OnnxCases[index];
        manual_seed(0);
        using var model = new ViRModel(config with { DropPath = 0 });
        model.eval();
        var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
        Action forward;
        InferenceSession? session = null;
        string path = Path.Combine(Path.GetTempPath(), $"vir-bench-{Guid.NewGuid():N}.onnx");
        try
        {
            if (engine == "library")
            {
                forward = () =>
                {
                    using var inference = inference_mode();
                    using var scope = NewDisposeScope();
                    nn.functional.softmax(model.forward(images, retention), 1);
                };
            }
            else
            {
                using (no_grad()) ViROnnxExport.Export(model, path, retention: retention, input: OnnxImageInput.Images); // the model alone, batched
                using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount };
                session = new InferenceSession(path, options);
                var input = new[] { NamedOnnxValue.CreateFromTensor("images", new DenseTensor(images.data<float>().ToArray(), images.shape.Select(d => (int)d).ToArray())) };
                forward = () => { using var results = session.Run(input); };
            }
            // A second of warm-up: .NET's tiered JIT recompiles the library's hot methods in the background for a while.
            var warmUp = Stopwatch.StartNew();
            for (int i = 0; i < 3 || warmUp.Elapsed.TotalSeconds < (smoke ? 0.1 : 1); i++) forward();
            var times = new List<double>();
            var total = Stopwatch.StartNew();
            while (times.Count < 3 || total.Elapsed.TotalSeconds < seconds)
            {
                var watch = Stopwatch.StartNew();
                forward();
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
            Console.WriteLine((batch / (Harness.Median(times) / 1000)).ToString(CultureInfo.InvariantCulture));
            return 0;
        }
        finally
        {
            session?.Dispose();
            File.Delete(path);
        }
    }

    private static double RateInChild(int index, string engine, double seconds, bool smoke)
    {
        var args = new List<string> { "onnx-case", "--index", $"{index}", "--engine", engine, "--seconds", seconds.ToString(CultureInfo.InvariantCulture) };
        if (smoke) args.Add("--smoke-case");
        return SelfProcess.RunForNumber(args);
    }
}
