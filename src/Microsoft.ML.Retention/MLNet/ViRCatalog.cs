using Microsoft.ML.Retention;
using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Models;

// In Microsoft.ML, as ML.NET's own catalog extensions are: `using Microsoft.ML;` is all an app needs to call them.
namespace Microsoft.ML;

/// <summary>Adds <c>ViR(...)</c> and <c>Rmt(...)</c> to <c>mlContext.MulticlassClassification.Trainers</c>.</summary>
public static class ViRCatalog
{
    /// <summary>
    /// A Vision Retention Network image classifier. The label must be a key (MapValueToKey); the
    /// features are images (LoadImages), encoded image bytes (LoadRawImageBytes) or pixel vectors (ExtractPixels).
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="featureColumnName">The image column.</param>
    /// <param name="scoreColumnName">Output column of class probabilities.</param>
    /// <param name="predictedLabelColumnName">Output column of the predicted class key.</param>
    /// <param name="architecture">The model's shape: a preset such as <see cref="ViRConfig.Tiny"/> (the default), changed with <c>with</c>.</param>
    /// <param name="maxEpoch">Passes over the training data.</param>
    /// <param name="batchSize">Images per step.</param>
    /// <param name="validationSet">Data scored after every epoch, or null.</param>
    public static ViRImageClassificationTrainer ViR(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string featureColumnName = ViRImageClassificationTrainer.Options.DefaultFeatureColumnName,
        string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel",
        ViRConfig? architecture = null,
        int maxEpoch = 10,
        int batchSize = 32,
        IDataView? validationSet = null) =>
        catalog.ViR(Filled(new ViRImageClassificationTrainer.Options { Architecture = architecture ?? ViRConfig.Tiny },
            labelColumnName, featureColumnName, scoreColumnName, predictedLabelColumnName, maxEpoch, batchSize, validationSet));

    /// <summary>A Vision Retention Network image classifier with every option.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">The trainer's options.</param>
    public static ViRImageClassificationTrainer ViR(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        ViRImageClassificationTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ViRImageClassificationTrainer(MLNetHost.Environment(catalog), options);
    }

    /// <summary>
    /// An RMT image classifier (Fan et al., CVPR 2024: attention decayed by the 2-D Manhattan distance between patches),
    /// served by the same transformer as a ViR. Start from the official ImageNet weights with
    /// <see cref="ViRImageClassificationTrainer.OptionsBase.InitialWeights"/>.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="featureColumnName">The image column.</param>
    /// <param name="scoreColumnName">Output column of class probabilities.</param>
    /// <param name="predictedLabelColumnName">Output column of the predicted class key.</param>
    /// <param name="architecture">The model's shape: a preset such as <see cref="RmtConfig.Tiny"/> (the default), changed with <c>with</c>.</param>
    /// <param name="maxEpoch">Passes over the training data.</param>
    /// <param name="batchSize">Images per step.</param>
    /// <param name="validationSet">Data scored after every epoch, or null.</param>
    public static ViRImageClassificationTrainer Rmt(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string featureColumnName = ViRImageClassificationTrainer.Options.DefaultFeatureColumnName,
        string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel",
        RmtConfig? architecture = null,
        int maxEpoch = 10,
        int batchSize = 32,
        IDataView? validationSet = null) =>
        catalog.Rmt(Filled(new ViRImageClassificationTrainer.RmtOptions { Architecture = architecture ?? RmtConfig.Tiny },
            labelColumnName, featureColumnName, scoreColumnName, predictedLabelColumnName, maxEpoch, batchSize, validationSet));

    /// <summary>An RMT image classifier with every option.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">The trainer's options.</param>
    public static ViRImageClassificationTrainer Rmt(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        ViRImageClassificationTrainer.RmtOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ViRImageClassificationTrainer(MLNetHost.Environment(catalog), options);
    }

    // The simple overloads' arguments, set on either backbone's options.
    private static T Filled<T>(T options, string label, string features, string score, string predictedLabel, int maxEpoch, int batchSize,
        IDataView? validationSet) where T : ViRImageClassificationTrainer.OptionsBase
    {
        options.LabelColumnName = label;
        options.FeatureColumnName = features;
        options.ScoreColumnName = score;
        options.PredictedLabelColumnName = predictedLabel;
        options.MaxEpoch = maxEpoch;
        options.BatchSize = batchSize;
        options.ValidationSet = validationSet;
        return options;
    }
}
