using Microsoft.ML;
using ViRImageClassification.Onnx;

// Classifies image files or folders with an exported ViR ONNX model, through ML.NET and ONNX Runtime only.
// Usage: [--model vir-output/model.onnx] <image or folder>...
var paths = args.ToList();
int option = paths.IndexOf("--model");
string modelPath = option >= 0 && option + 1 < paths.Count ? paths[option + 1] : Path.Combine("vir-output", "model.onnx");
if (option >= 0) paths.RemoveRange(option, Math.Min(2, paths.Count - option));
if (paths.Count == 0)
{
    Console.Error.WriteLine("Usage: ViRImageClassification.Onnx [--model vir-output/model.onnx] <image or folder>...");
    return 2;
}

using var classifier = new OnnxImageClassifier(new MLContext(), modelPath);
Console.WriteLine($"{modelPath}: {classifier.LabelNames.Count} classes; preprocessing in the graph: {classifier.Preprocessing}.");
var files = paths.SelectMany<string, string>(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal) : [p]);
foreach (var file in files)
    Console.WriteLine($"{file}: {string.Join(", ", classifier.Predict(file).Take(3).Select(p => $"{p.Label} {p.Probability:P1}"))}");
return 0;
