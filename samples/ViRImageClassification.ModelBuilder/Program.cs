using Microsoft.ML;
using Microsoft.ML.Data;
using ViRImageClassification.ModelBuilder;

// Model Builder's console app, with a ViR: trains on a folder of label folders, evaluates on a fifth held out, saves
// MLModel1.mlnet in the current folder, and predicts through MLModel1.Predict from several threads.
// Usage: ViRImageClassification.ModelBuilder <folder with one subfolder of images per label> [images to predict...]
if (args.Length == 0)
{
    Console.Error.WriteLine("Usage: ViRImageClassification.ModelBuilder <folder with one subfolder of images per label> [images to predict...]");
    return 2;
}

var mlContext = new MLContext(seed: 1);
var data = MLModel1.LoadImageFromFolder(mlContext, args[0]);
var split = mlContext.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
var watch = System.Diagnostics.Stopwatch.StartNew();
var model = MLModel1.RetrainModel(mlContext, split.TrainSet);
Console.WriteLine($"Trained on {split.TrainSet.GetColumn<string>("Label").Count()} images in {watch.Elapsed.TotalSeconds:F0} s.");

var metrics = MLModel1.Evaluate(mlContext, model, split.TestSet);
var keyNames = default(VBuffer<ReadOnlyMemory<char>>);
model.GetOutputSchema(data.Schema)["Label"].GetKeyValues(ref keyNames);
var labelNames = keyNames.DenseValues().Select(n => n.ToString()).ToList();
Console.WriteLine($"Accuracy: {metrics.MicroAccuracy:P2} (macro {metrics.MacroAccuracy:P2}), log-loss {metrics.LogLoss:F3}");
foreach (var line in MLModel1.PerClassTable(metrics, labelNames)) Console.WriteLine(line);
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

string modelPath = Path.GetFullPath("MLModel1.mlnet");
MLModel1.SaveModel(mlContext, model, data, modelPath);
Console.WriteLine($"Saved {modelPath}.");

var files = args.Skip(1).ToList();
if (files.Count == 0) files = Directory.GetDirectories(args[0]).Order(StringComparer.Ordinal).Select(d => Directory.GetFiles(d).Order(StringComparer.Ordinal).First()).ToList();
var lines = new string[files.Count];
Parallel.For(0, files.Count, i =>
{
    var input = new MLModel1.ModelInput { ImageSource = File.ReadAllBytes(files[i]) };
    var output = MLModel1.Predict(input);
    var top = MLModel1.GetSortedScoresWithLabels(output).Take(3);
    lines[i] = $"{files[i]}: {output.PredictedLabel} ({string.Join(", ", top.Select(p => $"{p.Key} {p.Value:P1}"))})";
});
foreach (var line in lines) Console.WriteLine(line);

// The same images through Model Builder's single engine, one at a time: the pooled, parallel scores must be these.
float difference = files.Max(f => MLModel1.PredictEngine.Value.Predict(new MLModel1.ModelInput { ImageSource = File.ReadAllBytes(f) }).Score
    .Zip(MLModel1.Predict(new MLModel1.ModelInput { ImageSource = File.ReadAllBytes(f) }).Score).Max(p => Math.Abs(p.First - p.Second)));
Console.WriteLine($"Max |pooled Predict - single engine|: {difference}");
return 0;
