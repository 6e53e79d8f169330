using System.CommandLine;
using Microsoft.ML.Retention.Native;
using Retention.Benchmarks;

// Benchmarks measure with the allocator tuning on, as the sample trains, and load libtorch as the library does (docs/platform.md).
GlibcAllocatorTuning.Apply();
TorchSharpNative.EnsureLoaded();

var suite = new Option<string[]>("--suite") { Description = "kernel, chunk, model, training, mlnet, precision, contention, onnx, rmt, streaming, reach, spatial, profile or all.", DefaultValueFactory = _ => new[] { "all" }, AllowMultipleArgumentsPerToken = true };
var smoke = new Option<bool>("--smoke") { Description = "Tiny sizes: checks that every suite runs and writes its table (used in CI)." };
var output = new Option<string>("--out") { Description = "Folder for results.md and results.json.", DefaultValueFactory = _ => "benchmark-results" };
var small = new Option<bool>("--small") { Description = "Model suite with ViR-S/ViT-S instead of Ti." };
var resolutions = new Option<int[]>("--resolutions") { Description = "Model suite: only these image sides (default: 224 to 2048).", AllowMultipleArgumentsPerToken = true };
var streamImages = new Option<string[]>("--stream-images") { Description = "Streaming suite: image files to classify, each in a fresh process (make them with the sample's make-image).", AllowMultipleArgumentsPerToken = true };
var root = new RootCommand("Retention benchmarks: kernels, chunk sizes, whole models, training steps, ML.NET overhead, precision, contention, ONNX Runtime, streaming and spatial retention.") { suite, smoke, output, small, resolutions, streamImages };
root.SetAction(parsed => BenchmarkRunner.Run(parsed.GetValue(suite)!, parsed.GetValue(smoke), parsed.GetValue(small), parsed.GetValue(output)!, Console.Out, parsed.GetValue(resolutions),
    parsed.GetValue(streamImages)));

// The contention suite's other process: fits in a loop on the same cores.
var seconds = new Option<int>("--seconds") { Description = "How long to keep fitting.", DefaultValueFactory = _ => 60 };
var rows = new Option<int>("--rows") { Description = "Images to fit on.", DefaultValueFactory = _ => 2048 };
var competingFit = new Command("competing-fit", "Fit ViR-Mini in a loop (the contention suite starts it as a second process).") { seconds, rows };
competingFit.Hidden = true;
competingFit.SetAction(parsed => ContentionSuite.CompetingFit(parsed.GetValue(seconds), parsed.GetValue(rows)));
root.Subcommands.Add(competingFit);
var fitEpochs = new Option<int>("--epochs") { Description = "Epochs to fit.", DefaultValueFactory = _ => 3 };
var fitRate = new Command("fit-rate", "Fit ViR-Mini once and print the last epoch's images/s (the contention suite's child process).") { fitEpochs, rows };
fitRate.Hidden = true;
fitRate.SetAction(parsed => ContentionSuite.FitRate(parsed.GetValue(fitEpochs), parsed.GetValue(rows)));
root.Subcommands.Add(fitRate);
var scoreSecondsOption = new Option<double>("--seconds") { DefaultValueFactory = _ => 6 };
var scoreRate = new Command("score-rate", "Score ViR-Mini batches of 8 and print images/s (the contention suite's child process).") { scoreSecondsOption };
scoreRate.Hidden = true;
scoreRate.SetAction(parsed => ContentionSuite.ScoreRate(parsed.GetValue(scoreSecondsOption)));
root.Subcommands.Add(scoreRate);
// The streaming suite's child process: one file classified by PredictStreaming.
var weightsFile = new Option<string>("--weights") { Required = true };
var imageFile = new Option<string>("--image") { Required = true };
var streamFile = new Command("stream-file", "Classify one image file band by band and print width, height, seconds and peak MiB (the streaming suite's child process).") { weightsFile, imageFile };
streamFile.Hidden = true;
streamFile.SetAction(parsed => StreamingSuite.StreamFile(parsed.GetValue(weightsFile)!, parsed.GetValue(imageFile)!));
root.Subcommands.Add(streamFile);
// The ONNX suite's child process: one case measured with one engine.
var caseIndex = new Option<int>("--index") { Required = true };
var engine = new Option<string>("--engine") { Required = true };
var caseSeconds = new Option<double>("--seconds") { DefaultValueFactory = _ => 2 };
var smokeCase = new Option<bool>("--smoke-case");
var onnxCase = new Command("onnx-case", "Measure one ONNX suite case with the library or ONNX Runtime and print images/s (the ONNX suite's child process).") { caseIndex, engine, caseSeconds, smokeCase };
onnxCase.Hidden = true;
onnxCase.SetAction(parsed => OnnxSuite.MeasureCase(parsed.GetValue(caseIndex), parsed.GetValue(engine)!, parsed.GetValue(caseSeconds), parsed.GetValue(smokeCase)));
root.Subcommands.Add(onnxCase);
return root.Parse(args).Invoke();
