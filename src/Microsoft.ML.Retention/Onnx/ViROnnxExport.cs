using System.Text.Json;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Onnx;

/// <summary>
/// Writes a <see cref="ViRModel"/> as an ONNX model (no Python involved), in the parallel or the chunkwise form of
/// retention. The input is one image's pixels at any size, preprocessed inside the graph as the library does
/// (<see cref="OnnxImageInput.Pixels"/>), or a preprocessed batch (<see cref="OnnxImageInput.Images"/>). Outputs
/// <c>probabilities</c> [batch, classes] and, if asked for, <c>embedding</c> [batch, dim]. The metadata holds the class
/// names (<see cref="LabelsKey"/>, a JSON array), the config, the retention form and the preprocessing (JSON).
/// </summary>
public static class ViROnnxExport
{
    /// <summary>The metadata keys.</summary>
    public const string LabelsKey = "labels", ConfigKey = "vir.config", RetentionKey = "vir.retention", PreprocessingKey = "vir.preprocessing";

    /// <summary>The form written when none is named: linear in the tokens, and the same as Parallel within one chunk.</summary>
    public const RetentionMode DefaultMode = RetentionMode.Chunkwise;

    /// <summary>The input written when none is named: the one that scores exactly as the library does.</summary>
    public const OnnxImageInput DefaultInput = OnnxImageInput.Pixels;

    /// <summary>
    /// The opsets the exporter writes: 17 (LayerNormalization's first) up to 21; <see cref="OnnxImageInput.Pixels"/>
    /// needs 18 (Resize's antialias), which is the default.
    /// </summary>
    public const int MinOpset = 17, PixelsMinOpset = 18, MaxOpset = 21, DefaultOpset = 18;

    /// <summary>Writes <paramref name="model"/> as ONNX to <paramref name="path"/> (the file appears only when complete).</summary>
    /// <param name="model">The model; its weights are read, not changed.</param>
    /// <param name="path">The .onnx file to write.</param>
    /// <param name="labelNames">The class names, one per output of the head (stored as metadata); null for none.</param>
    /// <param name="retention">Parallel or Chunkwise (with its chunk size), or null for <see cref="DefaultMode"/> with an automatic chunk size. Recurrent is not exported: it gives the same scores as both.</param>
    /// <param name="imageSize">The resolution the exported model takes (square), or null for the config's. Another resolution resamples the position embedding, as the model does.</param>
    /// <param name="includeEmbedding">Adds the <c>embedding</c> output, the [class] representation after the last LayerNorm.</param>
    /// <param name="opset">The ONNX opset, from <see cref="MinOpset"/> (<see cref="PixelsMinOpset"/> for pixels) to <see cref="MaxOpset"/>.</param>
    /// <param name="input">Pixels of one image at any size, preprocessed in the graph, or a preprocessed batch.</param>
    public static void Export(ViRModel model, string path, IReadOnlyList<string>? labelNames = null, RetentionSettings? retention = null,
        int? imageSize = null, bool includeEmbedding = false, int opset = DefaultOpset, OnnxImageInput input = DefaultInput)
    {
        var form = retention ?? new RetentionSettings(DefaultMode, ChunkSizes.Auto);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var config = model.Config;
        if (form.Mode is not (RetentionMode.Parallel or RetentionMode.Chunkwise))
            throw new ArgumentOutOfRangeException(nameof(retention), form.Mode,
                $"ONNX export writes retention in Parallel or Chunkwise form (both give the scores the Recurrent form gives), but the mode is {form.Mode}.");
        if (!Enum.IsDefined(input))
            throw new ArgumentOutOfRangeException(nameof(input), input, $"input must be Pixels or Images, but it is {input}.");
        if (opset is < MinOpset or > MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset, $"opset must be from {MinOpset} (the first with LayerNormalization) to {MaxOpset}, but it is {opset}.");
        if (input == OnnxImageInput.Pixels && opset < PixelsMinOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset,
                $"Pixels input needs opset {PixelsMinOpset} or newer (Resize with antialias), but the opset is {opset}; export Images input for opset {opset}.");
        if (imageSize is { } size && (size < config.PatchSize || size % config.PatchSize != 0))
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"imageSize must be a positive multiple of the patch size {config.PatchSize}, but it is {imageSize}.");
        if (config.NumClasses == 0 && !includeEmbedding)
            throw new ArgumentException("The model has no classification head (NumClasses 0), so the ONNX model would have no output: set includeEmbedding.", nameof(model));
        if (labelNames is not null && labelNames.Count != config.NumClasses)
            throw new ArgumentException($"labelNames must have one name per class, {config.NumClasses}, but it has {labelNames.Count}.", nameof(labelNames));

        int height = imageSize ?? config.ImageHeight, width = imageSize ?? config.ImageWidth;
        double fileBytes = FileBytes(config, (double)(height / config.PatchSize) * (width / config.PatchSize) + 1, form);
        if (fileBytes > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize,
                $"At {height}×{width} the ONNX model would hold about {fileBytes:N0} bytes of weights and decay constants, but an ONNX file holds at most " +
                $"{int.MaxValue:N0} (protobuf's limit). Export a smaller imageSize{(form.Mode == RetentionMode.Parallel ? ", or the Chunkwise form" : "")}.");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weights = new Dictionary<string, Tensor>();
        foreach (var (name, tensor) in model.state_dict())
            if (ViRCheckpoint.CheckpointName(name) is { } exported) weights[exported] = tensor.detach().cpu().to(float32);
        long gridH = height / config.PatchSize, gridW = width / config.PatchSize;
        weights["pos_embed"] = model.PositionEmbedding(gridH, gridW).detach().cpu().to(float32);

        var graph = new OnnxGraph();
        var writer = new Writer(graph, weights, config, gridH * gridW + 1, form);
        var inputs = input == OnnxImageInput.Images
            ? new[] { ("images", OnnxGraph.FloatType, new object[] { "batch", config.Channels, height, width }) }
            // pixels [1, height·width·4]: ML.NET's ApplyOnnxModel fills the one dynamic size after a leading 1.
            : new[] { ("pixels", OnnxGraph.UInt8Type, new object[] { 1, "pixel_bytes" }), ("height", OnnxGraph.Int64Type, new object[] { 1 }),
                      ("width", OnnxGraph.Int64Type, new object[] { 1 }) };
        var (probabilities, embedding) = writer.Forward(input == OnnxImageInput.Images ? "images" : writer.Preprocessed("pixels", "height", "width", height, width));
        var outputs = new List<(string, int, object[])>();
        if (probabilities is not null) outputs.Add((graph.Output(probabilities, "probabilities"), OnnxGraph.FloatType, new object[] { "batch", config.NumClasses }));
        if (includeEmbedding) outputs.Add((graph.Output(embedding, "embedding"), OnnxGraph.FloatType, new object[] { "batch", config.Dim }));

        var metadata = new Dictionary<string, string>
        {
            [ConfigKey] = config.ToJson(),
            [RetentionKey] = $"{form.Mode}, chunk size {ChunkSizes.Resolve(form.ChunkSize, gridH * gridW + 1)}",
            [PreprocessingKey] = JsonSerializer.Serialize(config.Preprocessing),
        };
        if (labelNames is not null) metadata[LabelsKey] = JsonSerializer.Serialize(labelNames);
        byte[] bytes = graph.ToModel(opset, inputs, outputs, metadata,
            typeof(ViROnnxExport).Assembly.GetName().Version?.ToString() ?? "");

        AtomicFile.Write(path, file => file.Write(bytes));
    }

    // The float32 weights (with the position embedding at the exported size) and the largest decay constants, in double.
    private static double FileBytes(ViRConfig config, double tokens, RetentionSettings form)
    {
        double weights = config.ParameterCount + (tokens - 1 - config.PatchCount) * config.Dim;
        double chunk = form.Mode == RetentionMode.Chunkwise ? Math.Min(ChunkSizes.Resolve(form.ChunkSize, (long)Math.Min(tokens, long.MaxValue)), tokens) : tokens;
        double chunks = Math.Ceiling(tokens / chunk);
        double constants = config.Heads * (chunk * chunk + (chunks > 1 ? chunks * chunks + 2 * chunk : 0));
        return 4 * (weights + constants);
    }

    /// <summary>Emits the ViR's forward pass, node by node, in the order of <see cref="VisionTransformerBase"/>.</summary>
    private sealed class Writer(OnnxGraph g, Dictionary<string, Tensor> weights, ViRConfig config, long tokens, RetentionSettings retention)
    {
        private readonly int _heads = config.Heads, _headDim = config.Dim / config.Heads;
        private readonly double[] _logGammas = DecaySchedules.Gammas(config.DecaySchedule, config.Heads).Select(g => Math.Log(g)).ToArray();

        /// <summary>
        /// [1, C, height, width] model input from one image's BGRA bytes and size, as <see cref="ImagePreprocessing"/>
        /// says: colour planes, (value / 255 − mean) / std, then the antialiased bilinear stretch.
        /// </summary>
        public string Preprocessed(string pixels, string imageHeight, string imageWidth, long height, long width)
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

        public (string? Probabilities, string Embedding) Forward(string images)
        {
            var x = g.Op("Add", new[] { PatchTokens(images), Weight("pos_embed") });
            // [B, 1, dim] class token for the batch, appended last: Expand to (batch, 1, dim).
            var batch = g.Op("Slice", new[] { g.Op("Shape", new[] { images }), g.Ints("zero", new long[] { 0 }), g.Ints("one", new long[] { 1 }) });
            var clsShape = g.Op("Concat", new[] { batch, g.Ints("cls_shape_tail", new long[] { 1, config.Dim }) }, ("axis", 0));
            x = g.Op("Concat", new[] { x, g.Op("Expand", new[] { Weight("cls_token"), clsShape }) }, ("axis", 1));
            for (int i = 0; i < config.Depth; i++) x = Block(x, $"blocks.{i}");
            var embedding = g.Op("Gather", new[] { LayerNorm(x, "norm"), g.Ints("last_token", new long[] { tokens - 1 }, scalar: true) }, ("axis", 1));
            if (config.NumClasses == 0) return (null, embedding);
            return (g.Op("Softmax", new[] { Linear(embedding, "head") }, ("axis", -1)), embedding);
        }

        private string PatchTokens(string images)
        {
            if (config.Stem == PatchStem.Patchify)
            {
                var conv = g.Op("Conv", new[] { images, Weight("patch_embed.proj.weight"), Weight("patch_embed.proj.bias") },
                    ("kernel_shape", new long[] { config.PatchSize, config.PatchSize }), ("strides", new long[] { config.PatchSize, config.PatchSize }));
                return Tokens(conv);
            }
            var x = images;
            for (int j = 0; weights.ContainsKey($"patch_embed.stem.{j}.conv.weight"); j++)
            {
                string stage = $"patch_embed.stem.{j}";
                x = g.Op("Conv", new[] { x, Weight($"{stage}.conv.weight") },
                    ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
                x = g.Op("BatchNormalization", new[] { x, Weight($"{stage}.bn.weight"), Weight($"{stage}.bn.bias"), Weight($"{stage}.bn.running_mean"), Weight($"{stage}.bn.running_var") },
                    ("epsilon", 1e-5f));
                x = g.Op("Relu", new[] { x });
            }
            return Linear(Tokens(x), "patch_embed.proj");
        }

        // [B, dim, h, w] to [B, h·w, dim].
        private string Tokens(string map) =>
            g.Op("Transpose", new[] { g.Op("Reshape", new[] { map, Shape(0, 0, -1) }) }, ("perm", new long[] { 0, 2, 1 }));

        private string Block(string x, string name)
        {
            var mixed = Retention(LayerNorm(x, $"{name}.norm1"), $"{name}.attn");
            if (weights.ContainsKey($"{name}.ls1.gamma")) mixed = g.Op("Mul", new[] { mixed, Weight($"{name}.ls1.gamma") });
            x = g.Op("Add", new[] { x, mixed });
            var hidden = Gelu(Linear(LayerNorm(x, $"{name}.norm2"), $"{name}.mlp.fc1"));
            var mlp = Linear(hidden, $"{name}.mlp.fc2");
            if (weights.ContainsKey($"{name}.ls2.gamma")) mlp = g.Op("Mul", new[] { mlp, Weight($"{name}.ls2.gamma") });
            return g.Op("Add", new[] { x, mlp });
        }

        private string Retention(string x, string name)
        {
            // [B, N, 3·dim] to q, k, v of [B, H, N, Dh].
            var heads = g.Op("Transpose", new[] { g.Op("Reshape", new[] { Linear(x, $"{name}.qkv"), Shape(0, 0, 3, _heads, _headDim) }) },
                ("perm", new long[] { 2, 0, 3, 1, 4 }));
            string Part(int i) => g.Op("Gather", new[] { heads, Once($"qkv.part{i}", n => g.Ints(n, new long[] { i }, scalar: true)) }, ("axis", 0));
            var (q, k, v) = (Part(0), Part(1), Part(2));
            long chunk = retention.Mode == RetentionMode.Chunkwise ? Math.Min(ChunkSizes.Resolve(retention.ChunkSize, tokens), tokens) : tokens;
            var retained = chunk >= tokens ? Parallel(q, k, v) : Chunkwise(q, k, v, chunk);
            // [B, H, N, Dh] to [B, N, dim], then the output projection.
            var merged = g.Op("Reshape", new[] { g.Op("Transpose", new[] { retained }, ("perm", new long[] { 0, 2, 1, 3 })), Shape(0, 0, config.Dim) });
            return Linear(merged, $"{name}.proj");
        }

        private string Parallel(string q, string k, string v)
        {
            var scores = g.Op("MatMul", new[] { q, g.Op("Transpose", new[] { k }, ("perm", new long[] { 0, 1, 3, 2 })) });
            return g.Op("MatMul", new[] { g.Op("Mul", new[] { scores, Mask(tokens, "retention.mask") }), v });
        }

        // Chunks of C tokens: the parallel form inside each, and the states passed across them by one matmul with a
        // constant [H, nC, nC] decay matrix, so there is no loop in the graph. Every block shares these constants.
        private string Chunkwise(string q, string k, string v, long c)
        {
            long chunks = (tokens + c - 1) / c, padding = chunks * c - tokens;
            var pads = Once("retention.pads", n => g.Ints(n, new long[] { 0, 0, 0, 0, 0, 0, padding, 0 }));
            string Chunked(string t) => g.Op("Reshape", new[] { padding > 0 ? g.Op("Pad", new[] { t, pads }) : t, Shape(0, _heads, chunks, c, _headDim) });
            var (qc, kc, vc) = (Chunked(q), Chunked(k), Chunked(v));

            var inner = g.Op("MatMul", new[] { qc, g.Op("Transpose", new[] { kc }, ("perm", new long[] { 0, 1, 2, 4, 3 })) });
            var output = g.Op("MatMul", new[] { g.Op("Mul", new[] { inner, Unsqueezed(Mask(c, "retention.chunk_mask"), c, c) }), vc });

            var keyDecay = Decays("retention.key_decay", c, j => (c - 1 - j), 1.0);
            var states = g.Op("MatMul", new[] { g.Op("Transpose", new[] { g.Op("Mul", new[] { kc, keyDecay }) }, ("perm", new long[] { 0, 1, 2, 4, 3 })), vc });
            var flat = g.Op("Reshape", new[] { states, Shape(0, _heads, chunks, _headDim * _headDim) });
            var entering = g.Op("Reshape", new[] { g.Op("MatMul", new[] { CrossChunkDecay(c, chunks, "retention.cross_decay"), flat }), Shape(0, _heads, chunks, _headDim, _headDim) });
            var queryDecay = Decays("retention.query_decay", c, i => i + 1, 1 / Math.Sqrt(_headDim));
            output = g.Op("Add", new[] { output, g.Op("Mul", new[] { g.Op("MatMul", new[] { qc, entering }), queryDecay }) });

            var flatOutput = g.Op("Reshape", new[] { output, Shape(0, _heads, chunks * c, _headDim) });
            return padding == 0 ? flatOutput
                : g.Op("Slice", new[] { flatOutput, Once("retention.start", n => g.Ints(n, new long[] { 0 })), Once("retention.end", n => g.Ints(n, new long[] { tokens })), Once("retention.axis", n => g.Ints(n, new long[] { 2 })) });
        }

        // [H, n, n]: γ^(i−j)/√Dh where i ≥ j, else 0.
        private string Mask(long n, string name) => Once(name, _ =>
        {
            var values = new float[_heads * n * n];
            double scale = 1 / Math.Sqrt(_headDim);
            for (int h = 0; h < _heads; h++)
                for (long i = 0; i < n; i++)
                    for (long j = 0; j <= i; j++)
                        values[(h * n + i) * n + j] = (float)(Math.Exp(_logGammas[h] * (i - j)) * scale);
            return g.Floats(name, values, _heads, n, n);
        });

        // [H, 1, C, 1] with scale·γ^exponent(position): a per-row decay for [B, H, nC, C, ·] chunks.
        private string Decays(string name, long c, Func<long, long> exponent, double scale) => Once(name, _ =>
        {
            var values = new float[_heads * c];
            for (int h = 0; h < _heads; h++)
                for (long i = 0; i < c; i++)
                    values[h * c + i] = (float)(Math.Exp(_logGammas[h] * exponent(i)) * scale);
            return g.Floats(name, values, _heads, 1, c, 1);
        });

        // [H, nC, nC] with γ^(C·(c−1−c')) where c' < c, else 0: how chunk c' reaches the state entering chunk c.
        private string CrossChunkDecay(long c, long chunks, string name) => Once(name, _ =>
        {
            var values = new float[_heads * chunks * chunks];
            for (int h = 0; h < _heads; h++)
                for (long i = 1; i < chunks; i++)
                    for (long j = 0; j < i; j++)
                        values[(h * chunks + i) * chunks + j] = (float)Math.Exp(_logGammas[h] * c * (i - 1 - j));
            return g.Floats(name, values, _heads, chunks, chunks);
        });

        // [H, a, b] as [H, 1, a, b], to broadcast over the chunk axis.
        private string Unsqueezed(string t, long a, long b) => g.Op("Reshape", new[] { t, Shape(_heads, 1, a, b) });

        private string LayerNorm(string x, string name) =>
            g.Op("LayerNormalization", new[] { x, Weight($"{name}.weight"), Weight($"{name}.bias") }, ("axis", -1), ("epsilon", 1e-6f));

        // x·Wᵀ + b, with Wᵀ stored.
        private string Linear(string x, string name) =>
            g.Op("Add", new[] { g.Op("MatMul", new[] { x, Weight($"{name}.weight", transpose: true) }), Weight($"{name}.bias") });

        // GELU in its erf form (Gelu is an operator only from opset 20): 0.5·x·(1 + erf(x/√2)).
        private string Gelu(string x)
        {
            var erf = g.Op("Erf", new[] { g.Op("Mul", new[] { x, Scalar(1 / Math.Sqrt(2)) }) });
            return g.Op("Mul", new[] { g.Op("Mul", new[] { x, Scalar(0.5) }), g.Op("Add", new[] { erf, Scalar(1) }) });
        }

        private readonly Dictionary<string, string> _constants = new();

        // One initializer per name, however many nodes read it.
        private string Once(string name, Func<string, string> make)
        {
            if (!_constants.TryGetValue(name, out var value)) _constants[name] = value = make(name);
            return value;
        }

        private string Scalar(double value) => Once($"scalar_{value:R}", name => g.Floats(name, new[] { (float)value }));

        private string Shape(params long[] dims) => Once($"shape_{string.Join('_', dims).Replace('-', 'm')}", name => g.Ints(name, dims));

        private string Weight(string name, bool transpose = false)
        {
            var tensor = weights.TryGetValue(name, out var t) ? t
                : throw new InvalidOperationException($"The model has no weight '{name}' to export.");
            if (transpose) tensor = tensor.t();
            return g.Floats(transpose ? name + ".T" : name, tensor.contiguous().data<float>().ToArray(), tensor.shape);
        }
    }
}
