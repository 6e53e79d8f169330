using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Image;

namespace ViRImageClassification.Onnx;

/// <summary>
/// An exported ViR (model.onnx) in an ML.NET pipeline: the library's preprocessing rebuilt from ML.NET's own image
/// transforms, then ApplyOnnxModel. The class names and the input size come from the ONNX file itself.
/// </summary>
public sealed class OnnxImageClassifier : IDisposable
{
    public sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
    }

    public sealed class Prediction
    {
        [ColumnName("probabilities")]
        public float[] Probabilities { get; set; } = Array.Empty<float>();
    }

    private readonly ITransformer _model;
    private readonly PredictionEngine<ImageInput, Prediction> _engine;

    public OnnxImageClassifier(MLContext ml, string onnxPath)
    {
        (LabelNames, Channels, Height, Width) = ReadModelInfo(onnxPath);
        // The contract of ViROnnxExport: [batch, C, H, W], RGB (or grayscale for one channel), resized to H×W, in [-1, 1].
        IEstimator<ITransformer> pipeline = ml.Transforms.LoadImages("Image", null, nameof(ImageInput.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image", Width, Height));
        if (Channels == 1) pipeline = pipeline.Append(ml.Transforms.ConvertToGrayscale("Image"));
        var colors = Channels == 1 ? ImagePixelExtractingEstimator.ColorBits.Red : ImagePixelExtractingEstimator.ColorBits.Rgb;
        pipeline = pipeline
            .Append(ml.Transforms.ExtractPixels("images", "Image", colors, offsetImage: 127.5f, scaleImage: 1 / 127.5f))
            .Append(ml.Transforms.ApplyOnnxModel("probabilities", "images", onnxPath));
        _model = pipeline.Fit(ml.Data.LoadFromEnumerable(Array.Empty<ImageInput>()));
        _engine = ml.Model.CreatePredictionEngine<ImageInput, Prediction>(_model);
    }

    public IReadOnlyList<string> LabelNames { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    /// <summary>The classes of one image file, most likely first.</summary>
    public IEnumerable<(string Label, float Probability)> Predict(string imagePath) =>
        _engine.Predict(new ImageInput { ImagePath = imagePath }).Probabilities
            .Select((p, i) => (LabelNames[i], p)).OrderByDescending(x => x.p);

    /// <summary>The class names (metadata "labels", a JSON array) and the input shape, as ONNX Runtime reads them.</summary>
    public static (IReadOnlyList<string> Labels, int Channels, int Height, int Width) ReadModelInfo(string onnxPath)
    {
        using var session = new InferenceSession(onnxPath);
        if (!session.ModelMetadata.CustomMetadataMap.TryGetValue("labels", out var json))
            throw new InvalidDataException($"'{onnxPath}' has no 'labels' metadata: it was not exported by Microsoft.ML.Retention's ExportToOnnx.");
        var labels = JsonSerializer.Deserialize<string[]>(json) ?? throw new InvalidDataException($"'{onnxPath}': the 'labels' metadata is empty.");
        var dims = session.InputMetadata.TryGetValue("images", out var input) ? input.Dimensions
            : throw new InvalidDataException($"'{onnxPath}' has no 'images' input.");
        return (labels, dims[1], dims[2], dims[3]);
    }

    public void Dispose()
    {
        _engine.Dispose();
        (_model as IDisposable)?.Dispose();
    }
}
