using Microsoft.ML;
using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention.Tests;

/// <summary>A ViR small enough to fit in a second, for tests of plumbing rather than accuracy.</summary>
internal static class TinyFit
{
    public static ViRImageClassificationTrainer.Options Options(string featureColumn = "Image") => new()
    {
        FeatureColumnName = featureColumn,
        Architecture = ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 },
        MaxEpoch = 1,
        BatchSize = 16,
        Augment = false,
        Seed = 3,
        Device = ViRDevice.Cpu,
    };

    /// <summary>Rows of 4 images per class, loaded as MLImage into "Image", with a key label.</summary>
    public static IDataView Images(MLContext ml, int perClass = 4) =>
        FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", perClass)).Transform(FashionMnist.Load(ml, "train", perClass));

    public static ViRImageClassificationTransformer Fit(MLContext ml, IDataView data, Action<ViRImageClassificationTrainer.Options>? tweak = null, string featureColumn = "Image")
    {
        var options = Options(featureColumn);
        tweak?.Invoke(options);
        return ml.MulticlassClassification.Trainers.ViR(options).Fit(data);
    }
}
