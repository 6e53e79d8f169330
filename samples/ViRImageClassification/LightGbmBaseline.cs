using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Transforms.Image;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>ML.NET's LightGbm multiclass trainer on the raw grayscale pixels at the model's resolution (--compare).</summary>
internal static class LightGbmBaseline
{
    public static BaselineReport Run(IAnsiConsole console, MLContext ml, ImageFolderDataset dataset, IVisionBackboneConfig config)
    {
        console.MarkupLineInterpolated($"Training LightGbm on raw {config.ImageHeight}×{config.ImageWidth} grayscale pixels ({config.ImageHeight * config.ImageWidth} features)…");
        var pixels = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", config.ImageWidth, config.ImageHeight))
            .Append(ml.Transforms.ConvertToGrayscale("Image"))
            .Append(ml.Transforms.ExtractPixels("Features", "Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1 / 255f))
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"));
        var trainPaths = ml.Data.LoadFromEnumerable(dataset.Train);
        var prepare = pixels.Fit(trainPaths);
        // Cache the decoded pixels so LightGbm's passes do not decode images again.
        var train = ml.Data.Cache(prepare.Transform(trainPaths));
        var test = prepare.Transform(ml.Data.LoadFromEnumerable(dataset.Evaluation));

        var watch = Stopwatch.StartNew();
        var model = ml.MulticlassClassification.Trainers.LightGbm().Fit(train);
        var time = watch.Elapsed;
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        return new BaselineReport(metrics.MicroAccuracy, metrics.MacroAccuracy, time);
    }
}
