using System.CommandLine;
using Microsoft.ML.Retention.Native;
using Retention.Benchmarks;

// Benchmarks measure with the allocator tuning on, as the sample trains (docs/platform.md).
GlibcAllocatorTuning.Apply();

var suite = new Option<string[]>("--suite") { Description = "kernel, chunk, model, training, mlnet, precision or all.", DefaultValueFactory = _ => new[] { "all" }, AllowMultipleArgumentsPerToken = true };
var smoke = new Option<bool>("--smoke") { Description = "Tiny sizes: checks that every suite runs and writes its table (used in CI)." };
var output = new Option<string>("--out") { Description = "Folder for results.md and results.json.", DefaultValueFactory = _ => "benchmark-results" };
var small = new Option<bool>("--small") { Description = "Model suite with ViR-S/ViT-S instead of Ti." };
var root = new RootCommand("Retention benchmarks: kernels, chunk sizes, whole models, training steps, ML.NET overhead and precision.") { suite, smoke, output, small };
root.SetAction(parsed => BenchmarkRunner.Run(parsed.GetValue(suite)!, parsed.GetValue(smoke), parsed.GetValue(small), parsed.GetValue(output)!, Console.Out));
return root.Parse(args).Invoke();
