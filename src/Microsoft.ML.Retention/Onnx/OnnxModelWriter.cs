using System.Text.Json;
using Microsoft.ML.Retention.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Onnx;

/// <summary>
/// What every backbone's ONNX writer shares: the arguments' checks, the image input (pixels preprocessed in the graph, or
/// a preprocessed batch), the common layers (Linear, LayerNorm, BatchNorm, GELU, convolutions), one initializer per
/// constant, and the file. A backbone's writer adds its <see cref="Forward"/>.
/// </summary>
internal abstract class OnnxModelWriter(OnnxGraph g, Dictionary<string, Tensor> weights, IVisionBackboneConfig config)
{
    protected OnnxGraph G => g;

    /// <summary>Probabilities [batch, classes] (null without a head) and the embedding [batch, EmbeddingDim] for a [batch, C, H, W] input.</summary>
    protected abstract (string? Probabilities, string Embedding) Forward(string images);

    /// <summary>Throws for arguments no backbone can export: input, opset, a model without outputs, class names of another count.</summary>
    public static void CheckArguments(IVisionBackboneConfig config, IReadOnlyList<string>? labelNames, bool includeEmbedding, int opset, OnnxImageInput input)
    {
        if (!Enum.IsDefined(input))
            throw new ArgumentOutOfRangeException(nameof(input), input, $"input must be Pixels or Images, but it is {input}.");
        if (opset is < ViROnnxExport.MinOpset or > ViROnnxExport.MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset,
                $"opset must be from {ViROnnxExport.MinOpset} (the first with LayerNormalization) to {ViROnnxExport.MaxOpset}, but it is {opset}.");
        if (input == OnnxImageInput.Pixels && opset < ViROnnxExport.PixelsMinOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset,
                $"Pixels input needs opset {ViROnnxExport.PixelsMinOpset} or newer (Resize with antialias), but the opset is {opset}; export Images input for opset {opset}.");
        if (config.NumClasses == 0 && !includeEmbedding)
            throw new ArgumentException("The model has no classification head (NumClasses 0), so the ONNX model would have no output: set includeEmbedding.", "model");
        if (labelNames is not null && labelNames.Count != config.NumClasses)
            throw new ArgumentException($"labelNames must have one name per class, {config.NumClasses}, but it has {labelNames.Count}.", nameof(labelNames));
    }

    /// <summary>Writes the graph for a <paramref name="height"/>×<paramref name="width"/> model input to <paramref name="path"/>, all or nothing.</summary>
    public void Save(string path, int height, int width, IReadOnlyList<string>? labelNames, bool includeEmbedding, int opset, OnnxImageInput input,
        Dictionary<string, string> metadata)
    {
        var inputs = input == OnnxImageInput.Images
            ? new[] { ("images", OnnxGraph.FloatType, new object[] { "batch", config.Channels, height, width }) }
            // pixels [1, height·width·4]: ML.NET's ApplyOnnxModel fills the one dynamic size after a leading 1.
            : new[] { ("pixels", OnnxGraph.UInt8Type, new object[] { 1, "pixel_bytes" }), ("height", OnnxGraph.Int64Type, new object[] { 1 }),
                      ("width", OnnxGraph.Int64Type, new object[] { 1 }) };
        var (probabilities, embedding) = Forward(input == OnnxImageInput.Images ? "images" : Preprocessed("pixels", "height", "width", height, width));
        var outputs = new List<(string, int, object[])>();
        if (probabilities is not null) outputs.Add((g.Output(probabilities, "probabilities"), OnnxGraph.FloatType, new object[] { "batch", config.NumClasses }));
        if (includeEmbedding) outputs.Add((g.Output(embedding, "embedding"), OnnxGraph.FloatType, new object[] { "batch", config.EmbeddingDim }));

        metadata[ViROnnxExport.BackboneKey] = config.Backbone;
        metadata[ViROnnxExport.ConfigKey] = config.ToJson();
        metadata[ViROnnxExport.PreprocessingKey] = JsonSerializer.Serialize(config.Preprocessing);
        if (labelNames is not null) metadata[ViROnnxExport.LabelsKey] = JsonSerializer.Serialize(labelNames);
        byte[] bytes = g.ToModel(opset, inputs, outputs, metadata, typeof(OnnxModelWriter).Assembly.GetName().Version?.ToString() ?? "");
        AtomicFile.Write(path, file => file.Write(bytes));
    }

    /// <summary>
    /// [1, C, height, width] model input from one image's BGRA bytes and size, as <see cref="ImagePreprocessing"/>
    /// says: colour planes, (value / 255 − mean) / std, then the antialiased bilinear stretch.
    /// </summary>
    private string Preprocessed(string pixels, string imageHeight, string imageWidth, long height, long width)
    {
        var p = config.Preprocessing;
        var hwc = g.Op("Reshape", new[] { g.Op("Cast", new[] { pixels }, ("to", (long)OnnxGraph.FloatType)),
            g.Op("Concat", new[] { imageHeight, imageWidth, g.Ints("pixel_channels", new long[] { 4 }) }, ("axis", 0)) });
        var bgra = g.Op("Transpose", new[] { hwc }, ("perm", new long[] { 2, 0, 1 }));
        string planes = config.Channels switch
        {
            1 => g.Op("ReduceSum", new[] { g.Op("Mul", new[] {
                    g.Op("Slice", new[] { bgra, g.Ints("bgr_start", new long[] { 0 }), g.Ints("bgr_end", new long[] { 3 }), g.Ints("bgr_axis", new long[] { 0 }) }),
                    g.Floats("luma_bgr", new[] { (float)p.LumaBlue, (float)p.LumaGreen, (float)p.LumaRed }, 3, 1, 1) }),
                g.Ints("luma_axis", new long[] { 0 }) }, ("keepdims", 1L)),
            3 => g.Op("Gather", new[] { bgra, g.Ints("rgb", new long[] { 2, 1, 0 }) }, ("axis", 0)),
            4 => g.Op("Gather", new[] { bgra, g.Ints("rgba", new long[] { 2, 1, 0, 3 }) }, ("axis", 0)),
            int c => throw new ArgumentException($"Pixels input feeds a model with 1, 3 or 4 channels, but this model has {c}; export Images input."),
        };
        // (v / 255 − mean) / std = v · (1 / (255·std)) − mean / std, per channel
        var channels = Enumerable.Range(0, config.Channels).ToArray();
        var scale = g.Floats("pixel_scale", channels.Select(c => (float)(1 / (255 * p.StdOf(c)))).ToArray(), config.Channels, 1, 1);
        var shift = g.Floats("pixel_shift", channels.Select(c => (float)(-p.MeanOf(c) / p.StdOf(c))).ToArray(), config.Channels, 1, 1);
        var scaled = g.Op("Add", new[] { g.Op("Mul", new[] { planes, scale }), shift });
        var batch = g.Op("Unsqueeze", new[] { scaled, g.Ints("batch_axis", new long[] { 0 }) });
        return g.Op("Resize", new[] { batch, "", "", g.Ints("input_size", new long[] { 1, config.Channels, height, width }) },
            // exclude_outside renormalizes the filter where it overhangs the image's edge, as torch does (off, edges differ by 0.05).
            ("mode", "linear"), ("antialias", 1L), ("coordinate_transformation_mode", "half_pixel"), ("exclude_outside", 1L));
    }

    protected string LayerNorm(string x, string name, float epsilon) =>
        g.Op("LayerNormalization", new[] { x, Weight($"{name}.weight"), Weight($"{name}.bias") }, ("axis", -1), ("epsilon", epsilon));

    // In inference form, with libtorch's default epsilon.
    protected string BatchNorm(string x, string name) =>
        g.Op("BatchNormalization", new[] { x, Weight($"{name}.weight"), Weight($"{name}.bias"), Weight($"{name}.running_mean"), Weight($"{name}.running_var") },
            ("epsilon", 1e-5f));

    // x·Wᵀ + b, with Wᵀ stored.
    protected string Linear(string x, string name) =>
        g.Op("Add", new[] { g.Op("MatMul", new[] { x, Weight($"{name}.weight", transpose: true) }), Weight($"{name}.bias") });

    /// <summary>A square convolution of stride <paramref name="stride"/> that keeps the size (padding k/2), with bias when the model has one.</summary>
    protected string Conv(string x, string name, long kernel, long stride = 1, long groups = 1)
    {
        var inputs = weights.ContainsKey($"{name}.bias") ? new[] { x, Weight($"{name}.weight"), Weight($"{name}.bias") } : new[] { x, Weight($"{name}.weight") };
        long pad = kernel / 2;
        return g.Op("Conv", inputs, ("kernel_shape", new[] { kernel, kernel }), ("strides", new[] { stride, stride }),
            ("pads", new[] { pad, pad, pad, pad }), ("group", groups));
    }

    // GELU in its erf form (Gelu is an operator only from opset 20): 0.5·x·(1 + erf(x/√2)).
    protected string Gelu(string x)
    {
        var erf = g.Op("Erf", new[] { g.Op("Mul", new[] { x, Scalar(1 / Math.Sqrt(2)) }) });
        return g.Op("Mul", new[] { g.Op("Mul", new[] { x, Scalar(0.5) }), g.Op("Add", new[] { erf, Scalar(1) }) });
    }

    private readonly Dictionary<string, string> _constants = new();

    // One initializer per name, however many nodes read it.
    protected string Once(string name, Func<string, string> make)
    {
        if (!_constants.TryGetValue(name, out var value)) _constants[name] = value = make(name);
        return value;
    }

    protected string Scalar(double value) => Once($"scalar_{value:R}", name => g.Floats(name, new[] { (float)value }));

    protected string Shape(params long[] dims) => Once($"shape_{string.Join('_', dims).Replace('-', 'm')}", name => g.Ints(name, dims));

    protected bool HasWeight(string name) => weights.ContainsKey(name);

    protected string Weight(string name, bool transpose = false)
    {
        var tensor = weights.TryGetValue(name, out var t) ? t
            : throw new InvalidOperationException($"The model has no weight '{name}' to export.");
        if (transpose) tensor = tensor.t();
        return g.Floats(transpose ? name + ".T" : name, tensor.contiguous().data<float>().ToArray(), tensor.shape);
    }
}
