using ViRImageClassification.Consume;

// Classifies image files or folders with a saved model.zip through ImageClassifier, from several threads at once,
// as a web app's requests would. Usage: [--model vir-output/model.zip] <image or folder>...
var paths = args.ToList();
int model = paths.IndexOf("--model");
ImageClassifier.ModelPath = model >= 0 && model + 1 < paths.Count ? paths[model + 1] : Path.Combine("vir-output", "model.zip");
if (model >= 0) paths.RemoveRange(model, Math.Min(2, paths.Count - model));
if (paths.Count == 0)
{
    Console.Error.WriteLine("Usage: ViRImageClassification.Consume [--model vir-output/model.zip] <image or folder>...");
    return 2;
}

var files = paths.SelectMany<string, string>(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal) : [p]).ToList();
var lines = new string[files.Count];
Parallel.For(0, files.Count, i =>
{
    var top = ImageClassifier.PredictAllLabels(new ImageClassifier.ModelInput { ImageSource = File.ReadAllBytes(files[i]) }).Take(3);
    lines[i] = $"{files[i]}: {string.Join(", ", top.Select(p => $"{p.Key} {p.Value:P1}"))}";
});
foreach (var line in lines) Console.WriteLine(line);
return 0;
