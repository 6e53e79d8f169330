using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Native;
using Microsoft.ML.Retention.RetentionMath;
using ViRImageClassification.Consume;

// Usage: App <folder with train/ and test/, each label/image.png> <work folder>. Prints "name: value" lines.
string imageFolder = args[0], work = args[1];
Directory.CreateDirectory(work);
List<ImageRow> Rows(string split, int perClass) => Directory.GetDirectories(Path.Combine(imageFolder, split)).Order(StringComparer.Ordinal)
    .SelectMany(dir => Directory.GetFiles(dir, "*.png").Order(StringComparer.Ordinal).Take(perClass)
        .Select(f => new ImageRow { ImagePath = Path.GetRelativePath(imageFolder, f), Label = Path.GetFileName(dir) }))
    .ToList();

// The README's pipeline.
var ml = new MLContext(seed: 1);
IDataView images = ml.Data.LoadFromEnumerable(Rows("train", 10));
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.Transforms.LoadImages("Image", imageFolder, "ImagePath"))
    .Append(ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options
    {
        FeatureColumnName = "Image",
        Architecture = ViRConfig.Mini,
        MaxEpoch = 1,
    }))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
ITransformer model = pipeline.Fit(images);
var testRows = Rows("test", 2);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(ml.Data.LoadFromEnumerable(testRows)));
Console.WriteLine($"trained: {images.GetRowCount() ?? Rows("train", 10).Count} images");
Console.WriteLine($"accuracy: {metrics.MicroAccuracy:F4}");
string modelPath = Path.Combine(work, "model.zip");
ml.Model.Save(model, images.Schema, modelPath);
Console.WriteLine($"saved: {new FileInfo(modelPath).Length} bytes");

// Load in a new context, predict in recurrent form, and compare with the loaded model's own (parallel) scores.
var ml2 = new MLContext();
ITransformer loaded = ml2.Model.Load(modelPath, out _);
var parallelScores = ml2.Data.CreateEnumerable<Prediction>(loaded.Transform(ml2.Data.LoadFromEnumerable(testRows)), reuseRowObject: false).ToList();
using (var recurrent = (IDisposable)loaded.WithRetentionMode(RetentionMode.Recurrent))
using (var engine = ml2.Model.CreatePredictionEngine<ImageRow, Prediction>((ITransformer)recurrent))
{
    var predictions = testRows.Select(engine.Predict).Select(p => new Prediction { PredictedLabel = p.PredictedLabel, Score = p.Score.ToArray() }).ToList();
    float diff = predictions.Zip(parallelScores).Max(p => p.First.Score.Zip(p.Second.Score).Max(s => Math.Abs(s.First - s.Second)));
    Console.WriteLine($"recurrent predictions: {predictions.Count}");
    Console.WriteLine($"labels: {string.Join(",", predictions.Select(p => p.PredictedLabel).Distinct().Order(StringComparer.Ordinal))}");
    Console.WriteLine($"score sums: {predictions.Min(p => p.Score.Sum()):F4}..{predictions.Max(p => p.Score.Sum()):F4}");
    Console.WriteLine($"max |recurrent - parallel|: {diff:E2}");
}

// From the package: the model as ONNX (scored by the test without TorchSharp) and as safetensors, loaded back.
string onnxPath = Path.Combine(work, "model.onnx"), weightsPath = Path.Combine(work, "vir.safetensors");
loaded.ExportToOnnx(onnxPath, RetentionMode.Chunkwise);
File.WriteAllLines(Path.Combine(work, "scores.txt"), testRows.Zip(parallelScores).Select(p => $"{p.First.ImagePath} {string.Join(' ', p.Second.Score.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}"));
((IEnumerable<ITransformer>)loaded).OfType<ViRImageClassificationTransformer>().Single().SaveWeights(weightsPath);
using (var fromWeights = ml2.Model.LoadViRWeights(weightsPath, featureColumnName: "Image"))
{
    var testImages = ml2.Transforms.LoadImages("Image", imageFolder, "ImagePath").Fit(ml2.Data.LoadFromEnumerable(testRows)).Transform(ml2.Data.LoadFromEnumerable(testRows));
    var weightScores = fromWeights.Transform(testImages).GetColumn<float[]>("Score").ToList();
    Console.WriteLine($"onnx: {new FileInfo(onnxPath).Length} bytes");
    Console.WriteLine($"max |safetensors - model.zip|: {weightScores.Zip(parallelScores).Max(p => p.First.Zip(p.Second.Score).Max(s => Math.Abs(s.First - s.Second))):E2}");
}

// Model Builder's shape: encoded bytes in, the consumption class out, from four threads at once.
var files = ml.Data.LoadFromEnumerable(Rows("train", 10));
var loadBytes = ml.Transforms.LoadRawImageBytes("ImageSource", imageFolder, "ImagePath").Fit(files);
var labelToKey = ml.Transforms.Conversion.MapValueToKey("Label").Fit(files);
var vir = ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options { FeatureColumnName = "ImageSource", Architecture = ViRConfig.Mini, MaxEpoch = 1 })
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
    .Fit(labelToKey.Transform(loadBytes.Transform(files)));
string bytesModelPath = Path.Combine(work, "model-bytes.zip");
ml.Model.Save(labelToKey.Append(vir), loadBytes.Transform(files).Schema, bytesModelPath);

ImageClassifier.ModelPath = bytesModelPath;
var inputs = testRows.Select(r => new ImageClassifier.ModelInput { ImageSource = File.ReadAllBytes(Path.Combine(imageFolder, r.ImagePath)) }).ToList();
var single = inputs.Select(ImageClassifier.Predict).ToList();
var concurrent = new ConcurrentDictionary<int, float[]>();
Parallel.For(0, inputs.Count * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => concurrent[i] = ImageClassifier.Predict(inputs[i % inputs.Count]).Score);
float threadDiff = concurrent.Max(kv => kv.Value.Zip(single[kv.Key % inputs.Count].Score).Max(s => Math.Abs(s.First - s.Second)));
var ranked = ImageClassifier.PredictAllLabels(inputs[0]).ToList();
Console.WriteLine($"consumption predictions: {concurrent.Count}");
Console.WriteLine($"max |4 threads - 1 thread|: {threadDiff:E2}");
Console.WriteLine($"allocator tuned: {GlibcAllocatorTuning.Applied}"); // the library never tunes it by itself
Console.WriteLine($"all labels: {ranked.Count}, sorted: {ranked.Zip(ranked.Skip(1)).All(p => p.First.Value >= p.Second.Value)}, top matches Predict: {ranked[0].Key == single[0].PredictedLabel}");

// RMT, the second backbone, through the same pipeline, model.zip and ONNX export.
var rmtPipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.Transforms.LoadImages("Image", imageFolder, "ImagePath"))
    .Append(ml.MulticlassClassification.Trainers.Rmt(new ViRImageClassificationTrainer.RmtOptions { FeatureColumnName = "Image", Architecture = RmtConfig.Mini, MaxEpoch = 1 }))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
ITransformer rmt = rmtPipeline.Fit(images);
string rmtPath = Path.Combine(work, "rmt.zip");
ml.Model.Save(rmt, images.Schema, rmtPath);
ITransformer rmtLoaded = ml2.Model.Load(rmtPath, out _);
var rmtScores = ml2.Data.CreateEnumerable<Prediction>(rmtLoaded.Transform(ml2.Data.LoadFromEnumerable(testRows)), reuseRowObject: false).ToList();
var rmtBefore = ml.Data.CreateEnumerable<Prediction>(rmt.Transform(ml.Data.LoadFromEnumerable(testRows)), reuseRowObject: false).ToList();
rmtLoaded.ExportToOnnx(Path.Combine(work, "rmt.onnx"));
Console.WriteLine($"rmt backbone: {((IEnumerable<ITransformer>)rmtLoaded).OfType<ViRImageClassificationTransformer>().Single().Architecture.Backbone}");
Console.WriteLine($"max |rmt loaded - rmt trained|: {rmtScores.Zip(rmtBefore).Max(p => p.First.Score.Zip(p.Second.Score).Max(s => Math.Abs(s.First - s.Second))):E2}");
Console.WriteLine($"rmt onnx: {new FileInfo(Path.Combine(work, "rmt.onnx")).Length} bytes");

// The README's streaming pipeline: an image column of file paths, streamed file by file in the recurrent form.
List<ImageRow> Absolute(List<ImageRow> rows) => rows.Select(r => new ImageRow { ImagePath = Path.Combine(imageFolder, r.ImagePath), Label = r.Label }).ToList();
var pathPipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options { FeatureColumnName = "ImagePath", Architecture = ViRConfig.Mini, MaxEpoch = 1 }))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
ITransformer pathModel = pathPipeline.Fit(ml.Data.LoadFromEnumerable(Absolute(Rows("train", 10))));
var pathTest = Absolute(testRows);
var pathParallel = ml.Data.CreateEnumerable<Prediction>(pathModel.Transform(ml.Data.LoadFromEnumerable(pathTest)), reuseRowObject: false).ToList();
using (var streamingModel = (IDisposable)pathModel.WithRetentionMode(RetentionMode.Recurrent))
using (var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>((ITransformer)streamingModel))
{
    var streamed = pathTest.Select(engine.Predict).Select(p => p.Score.ToArray()).ToList();
    Console.WriteLine($"max |streamed path column - parallel|: {streamed.Zip(pathParallel).Max(p => p.First.Zip(p.Second.Score).Max(s => Math.Abs(s.First - s.Second))):E2}");
}
return 0;

public sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}
