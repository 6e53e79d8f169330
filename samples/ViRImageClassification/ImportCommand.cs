using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using Spectre.Console;
using ViRImageClassification.Consume;

namespace ViRImageClassification;

/// <summary>Turns a safetensors checkpoint (from the PyTorch twin, python/vir) into a model.zip the predict command and ImageClassifier use.</summary>
public static class ImportCommand
{
    public static int Run(string weights, string output, RetentionMode mode, IAnsiConsole console)
    {
        var ml = new MLContext(seed: 1);
        // The same columns as a model.zip from the train command: encoded images in ImageSource, class names out.
        using var vir = ml.Model.LoadViRWeights(weights, featureColumnName: "ImageSource", retention: new RetentionSettings(mode));
        var empty = ml.Data.LoadFromEnumerable(Array.Empty<ImageClassifier.ModelInput>());
        var model = vir.Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(vir.Transform(empty)));
        Directory.CreateDirectory(output);
        string path = Path.Combine(output, "model.zip");
        ml.Model.Save(model, empty.Schema, path);
        console.MarkupLineInterpolated($"Imported [blue]{weights}[/]: ViR dim {vir.Config.Dim}, depth {vir.Config.Depth}, {vir.Config.ImageHeight}×{vir.Config.ImageWidth}×{vir.Config.Channels}, classes {string.Join(", ", vir.LabelNames)}.");
        console.MarkupLineInterpolated($"Saved [blue]{path}[/] ({new FileInfo(path).Length / 1024} KiB), predicting with {mode} retention.");
        return 0;
    }
}
