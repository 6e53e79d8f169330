using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;

namespace Library;

/// <summary>Loads a model.zip trained on image paths and predicts labels in chunkwise form.</summary>
public static class ModelScorer
{
    public sealed class Input
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    public sealed class Output
    {
        public string PredictedLabel { get; set; } = "";
    }

    public static IReadOnlyList<string> Predict(string modelPath, IEnumerable<string> imagePaths)
    {
        var ml = new MLContext();
        using var model = (IDisposable)ml.Model.Load(modelPath, out _).WithRetentionMode(RetentionMode.Chunkwise);
        using var engine = ml.Model.CreatePredictionEngine<Input, Output>((ITransformer)model);
        return imagePaths.Select(path => engine.Predict(new Input { ImagePath = path }).PredictedLabel).ToList();
    }
}
