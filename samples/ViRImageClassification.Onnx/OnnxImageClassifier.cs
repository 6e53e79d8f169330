using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;

namespace ViRImageClassification.Onnx;

/// <summary>
/// An exported ViR (model.onnx) in an ML.NET pipeline: ApplyOnnxModel on one image's pixels at its own size. The graph
/// preprocesses them as the library does (the model's preprocessing, stored as JSON in the file's metadata), so the
/// scores are the library's. The class names come from the ONNX file itself.
/// </summary>
public sealed class OnnxImageClassifier : IDisposable
{
    /// <summary>The exported model's inputs: one image's 4-byte pixels in B, G, R, A order, and its size.</summary>
    public sealed class PixelsInput
    {
        [ColumnName("pixels"), VectorType]
        public byte[] Pixels { get; set; } = Array.Empty<byte>();

        [ColumnName("height"), VectorType(1)]
        public long[] Height { get; set; } = new long[1];

        [ColumnName("width"), VectorType(1)]
        public long[] Width { get; set; } = new long[1];

        /// <summary>Decodes an image file (PNG, JPEG, ...) as it is: no resize, no colour conversion.</summary>
        public static PixelsInput FromFile(string path)
        {
            using var image = MLImage.CreateFromFile(path);
            byte[] pixels = image.Pixels.ToArray();
            if (image.PixelFormat == MLPixelFormat.Rgba32)
                for (int i = 0; i < pixels.Length; i += 4) (pixels[i], pixels[i + 2]) = (pixels[i + 2], pixels[i]);
            return new PixelsInput { Pixels = pixels, Height = new long[] { image.Height }, Width = new long[] { image.Width } };
        }
    }

    public sealed class Prediction
    {
        [ColumnName("probabilities")]
        public float[] Probabilities { get; set; } = Array.Empty<float>();
    }

    private readonly ITransformer _model;
    private readonly PredictionEngine<PixelsInput, Prediction> _engine;

    public OnnxImageClassifier(MLContext ml, string onnxPath)
    {
        (LabelNames, Preprocessing) = ReadModelInfo(onnxPath);
        var pipeline = ml.Transforms.ApplyOnnxModel(new[] { "probabilities" }, new[] { "pixels", "height", "width" }, onnxPath);
        _model = pipeline.Fit(ml.Data.LoadFromEnumerable(Array.Empty<PixelsInput>()));
        _engine = ml.Model.CreatePredictionEngine<PixelsInput, Prediction>(_model);
    }

    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>How the graph turns pixels into the model's input (metadata "vir.preprocessing", JSON).</summary>
    public JsonElement Preprocessing { get; }

    /// <summary>Class probabilities of one image file, in the order of <see cref="LabelNames"/>.</summary>
    public float[] Probabilities(string imagePath) => _engine.Predict(PixelsInput.FromFile(imagePath)).Probabilities;

    /// <summary>The classes of one image file, most likely first.</summary>
    public IEnumerable<(string Label, float Probability)> Predict(string imagePath) =>
        Probabilities(imagePath).Select((p, i) => (LabelNames[i], p)).OrderByDescending(x => x.p);

    /// <summary>The class names (metadata "labels", a JSON array) and the preprocessing, as ONNX Runtime reads them.</summary>
    public static (IReadOnlyList<string> Labels, JsonElement Preprocessing) ReadModelInfo(string onnxPath)
    {
        using var session = new InferenceSession(onnxPath);
        var metadata = session.ModelMetadata.CustomMetadataMap;
        if (!metadata.TryGetValue("labels", out var json) || !metadata.TryGetValue("vir.preprocessing", out var preprocessing))
            throw new InvalidDataException($"'{onnxPath}' has no 'labels' or 'vir.preprocessing' metadata: it was not exported by Microsoft.ML.Retention's ExportToOnnx.");
        if (!session.InputMetadata.ContainsKey("pixels"))
            throw new InvalidDataException($"'{onnxPath}' has no 'pixels' input: export it with the default input (OnnxImageInput.Pixels).");
        var labels = JsonSerializer.Deserialize<string[]>(json) ?? throw new InvalidDataException($"'{onnxPath}': the 'labels' metadata is empty.");
        return (labels, JsonDocument.Parse(preprocessing).RootElement.Clone());
    }

    public void Dispose()
    {
        _engine.Dispose();
        (_model as IDisposable)?.Dispose();
    }
}
