using Microsoft.ML.Retention;
using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

// In Microsoft.ML, as ML.NET's own catalog extensions are: `using Microsoft.ML;` is all an app needs to call them.
namespace Microsoft.ML;

/// <summary>Adds <c>LoadViRWeights(...)</c> and <c>LoadRmtWeights(...)</c> to <c>mlContext.Model</c>: a model trained elsewhere, ready to score and to save as model.zip.</summary>
public static class ViRCheckpointCatalog
{
    /// <summary>
    /// A ViR image classifier from a safetensors checkpoint written by <see cref="ViRImageClassificationTransformer.SaveWeights"/>,
    /// <see cref="ViRCheckpoint.Save"/> or the PyTorch twin (<c>python/vir</c>). It reads images from
    /// <paramref name="featureColumnName"/> and adds Score and PredictedLabel, like a fitted trainer's transformer; save it with
    /// <c>mlContext.Model.Save</c>. Dispose it when done.
    /// </summary>
    /// <param name="catalog">The model operations catalog.</param>
    /// <param name="path">The safetensors file; its metadata must hold the config.</param>
    /// <param name="labelNames">The class names in the order of the head's outputs; null takes them from the checkpoint's metadata.</param>
    /// <param name="featureColumnName">The image column; "Features" by default, as for the trainer.</param>
    /// <param name="retention">How retention is computed when scoring; the default is the parallel form.</param>
    /// <exception cref="InvalidDataException">The checkpoint does not fit its config, or has no class names and none were given.</exception>
    /// <exception cref="ArgumentException">The class names do not match the head's class count.</exception>
    public static ViRImageClassificationTransformer LoadViRWeights(this ModelOperationsCatalog catalog, string path,
        IReadOnlyList<string>? labelNames = null, string featureColumnName = ViRImageClassificationTrainer.Options.DefaultFeatureColumnName, RetentionSettings retention = default)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrWhiteSpace(featureColumnName);
        var model = ViRCheckpoint.Load(path, out var stored);
        return Transformer(catalog, model, labelNames ?? stored, path, featureColumnName, retention);
    }

    /// <summary>
    /// An RMT image classifier from a checkpoint: safetensors written by <see cref="ViRImageClassificationTransformer.SaveWeights"/>,
    /// <see cref="RmtCheckpoint.Save"/> or the PyTorch twin (the config in its metadata), or, with <paramref name="architecture"/>,
    /// a PyTorch <c>.pth</c> such as the official ImageNet checkpoints (<see cref="RmtCheckpoint.LoadPyTorch"/>). It reads
    /// images from <paramref name="featureColumnName"/> and adds Score and PredictedLabel; save it with <c>mlContext.Model.Save</c>.
    /// Dispose it when done.
    /// </summary>
    /// <param name="catalog">The model operations catalog.</param>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="labelNames">The class names in the order of the head's outputs; null takes them from the safetensors metadata.</param>
    /// <param name="architecture">The model a <c>.pth</c> holds (e.g. <see cref="RmtConfig.Tiny"/>); null for safetensors with their config.</param>
    /// <param name="movingAverage">For a training checkpoint, load its <c>model_ema</c> weights instead of <c>model</c>.</param>
    /// <param name="featureColumnName">The image column; "Features" by default, as for the trainer.</param>
    /// <exception cref="InvalidDataException">The checkpoint does not fit its config, or has no class names and none were given.</exception>
    /// <exception cref="ArgumentException">The class names do not match the head's class count.</exception>
    public static ViRImageClassificationTransformer LoadRmtWeights(this ModelOperationsCatalog catalog, string path,
        IReadOnlyList<string>? labelNames = null, RmtConfig? architecture = null, bool movingAverage = false,
        string featureColumnName = ViRImageClassificationTrainer.Options.DefaultFeatureColumnName)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrWhiteSpace(featureColumnName);
        IReadOnlyList<string>? stored = null;
        var model = architecture is null ? RmtCheckpoint.Load(path, out stored) : RmtCheckpoint.LoadPyTorch(path, architecture, movingAverage);
        return Transformer(catalog, model, labelNames ?? stored, path, featureColumnName, default);
    }

    private static ViRImageClassificationTransformer Transformer(ModelOperationsCatalog catalog, IVisionBackbone model, IReadOnlyList<string>? labels,
        string path, string featureColumnName, RetentionSettings retention)
    {
        try
        {
            int classes = model.Architecture.NumClasses;
            if (labels is null)
                throw new InvalidDataException($"'{path}' has no class names in its metadata ('{ViRCheckpoint.LabelsKey}'); pass labelNames, one per output of the head ({classes}).");
            if (labels.Count != classes)
                throw new ArgumentException($"labelNames must have one name per output of the head, {classes}, but it has {labels.Count}.", "labelNames");
            if (labels.Count < 2)
                throw new ArgumentException($"A classifier needs at least 2 classes, but the checkpoint's head has {labels.Count}.", "labelNames");
            return ViRImageClassificationTransformer.FromModel(MLNetHost.Environment(catalog), model, labels.ToArray(), featureColumnName, retention);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
