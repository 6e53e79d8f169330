using ModelBuilderSwap;

// The app's own code around Model Builder's generated MLModel1: train from label folders, then predict.
// Usage: ModelBuilderSwap <folder with one subfolder per label> <image>...
MLModel1.Train(Path.GetFullPath("MLModel1.mlnet"), args[0]);
foreach (var image in args.Skip(1))
{
    var input = new MLModel1.ModelInput { ImageSource = File.ReadAllBytes(image) };
    var output = MLModel1.Predict(input);
    var top = MLModel1.PredictAllLabels(input).First();
    Console.WriteLine($"{Path.GetFileName(image)}: {output.PredictedLabel} (top of PredictAllLabels: {top.Key} {top.Value:P1})");
}
