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
public static partial class ViROnnxExport
{
    /// <summary>The metadata keys.</summary>
    public const string LabelsKey = "labels", ConfigKey = "vir.config", RetentionKey = "vir.retention", PreprocessingKey = "vir.preprocessing",
        BackboneKey = "vir.backbone";

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
        OnnxModelWriter.CheckArguments(config, labelNames, includeEmbedding, opset, input);
        if (imageSize is { } size && (size < config.PatchSize || size % config.PatchSize != 0))
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"imageSize must be a positive multiple of the patch size {config.PatchSize}, but it is {imageSize}.");
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

        var metadata = new Dictionary<string, string>
        {
            [RetentionKey] = (config.SpatialDecay, form.Mode) switch
            {
                (null, _) => $"{form.Mode}, chunk size {ChunkSizes.Resolve(form.ChunkSize, gridH * gridW + 1)}",
                ({ } spatial, RetentionMode.Parallel) => $"Parallel, 2-D decay {spatial} on a {gridH}×{gridW} grid",
                ({ } spatial, _) => $"{form.Mode}, 2-D decay {spatial} in tiles of {SpatialRetention.TileSide(form.ChunkSize, gridH * gridW)}² patches on a {gridH}×{gridW} grid",
            },
        };
        new Writer(new OnnxGraph(), weights, config, gridH, gridW, form).Save(path, height, width, labelNames, includeEmbedding, opset, input, metadata);
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
    private sealed partial class Writer(OnnxGraph g, Dictionary<string, Tensor> weights, ViRConfig config, long gridH, long gridW, RetentionSettings retention)
        : OnnxModelWriter(g, weights, config)
    {
        private readonly long tokens = gridH * gridW + 1;
        private readonly int _heads = config.Heads, _headDim = config.Dim / config.Heads;
        private readonly double[] _gammas = DecaySchedules.Gammas(config.DecaySchedule, config.Heads).Select(g => (double)g).ToArray();
        private readonly double[] _logGammas = DecaySchedules.Gammas(config.DecaySchedule, config.Heads).Select(g => Math.Log(g)).ToArray();

        protected override (string? Probabilities, string Embedding) Forward(string images)
        {
            var x = G.Op("Add", new[] { PatchTokens(images), Weight("pos_embed") });
            // [B, 1, dim] class token for the batch, appended last: Expand to (batch, 1, dim).
            var batch = G.Op("Slice", new[] { G.Op("Shape", new[] { images }), G.Ints("zero", new long[] { 0 }), G.Ints("one", new long[] { 1 }) });
            var clsShape = G.Op("Concat", new[] { batch, G.Ints("cls_shape_tail", new long[] { 1, config.Dim }) }, ("axis", 0));
            x = G.Op("Concat", new[] { x, G.Op("Expand", new[] { Weight("cls_token"), clsShape }) }, ("axis", 1));
            for (int i = 0; i < config.Depth; i++) x = Block(x, $"blocks.{i}");
            var embedding = G.Op("Gather", new[] { LayerNorm(x, "norm", 1e-6f), G.Ints("last_token", new long[] { tokens - 1 }, scalar: true) }, ("axis", 1));
            if (config.NumClasses == 0) return (null, embedding);
            return (G.Op("Softmax", new[] { Linear(embedding, "head") }, ("axis", -1)), embedding);
        }

        private string PatchTokens(string images)
        {
            if (config.Stem == PatchStem.Patchify)
            {
                var conv = G.Op("Conv", new[] { images, Weight("patch_embed.proj.weight"), Weight("patch_embed.proj.bias") },
                    ("kernel_shape", new long[] { config.PatchSize, config.PatchSize }), ("strides", new long[] { config.PatchSize, config.PatchSize }));
                return Tokens(conv);
            }
            var x = images;
            for (int j = 0; HasWeight($"patch_embed.stem.{j}.conv.weight"); j++)
                x = G.Op("Relu", new[] { BatchNorm(Conv(x, $"patch_embed.stem.{j}.conv", kernel: 3, stride: 2), $"patch_embed.stem.{j}.bn") });
            return Linear(Tokens(x), "patch_embed.proj");
        }

        // [B, dim, h, w] to [B, h·w, dim].
        private string Tokens(string map) =>
            G.Op("Transpose", new[] { G.Op("Reshape", new[] { map, Shape(0, 0, -1) }) }, ("perm", new long[] { 0, 2, 1 }));

        private string Block(string x, string name)
        {
            var mixed = Retention(LayerNorm(x, $"{name}.norm1", 1e-6f), $"{name}.attn");
            if (HasWeight($"{name}.ls1.gamma")) mixed = G.Op("Mul", new[] { mixed, Weight($"{name}.ls1.gamma") });
            x = G.Op("Add", new[] { x, mixed });
            var hidden = Gelu(Linear(LayerNorm(x, $"{name}.norm2", 1e-6f), $"{name}.mlp.fc1"));
            var mlp = Linear(hidden, $"{name}.mlp.fc2");
            if (HasWeight($"{name}.ls2.gamma")) mlp = G.Op("Mul", new[] { mlp, Weight($"{name}.ls2.gamma") });
            return G.Op("Add", new[] { x, mlp });
        }

        private string Retention(string x, string name)
        {
            // [B, N, 3·dim] to q, k, v of [B, H, N, Dh].
            var heads = G.Op("Transpose", new[] { G.Op("Reshape", new[] { Linear(x, $"{name}.qkv"), Shape(0, 0, 3, _heads, _headDim) }) },
                ("perm", new long[] { 2, 0, 3, 1, 4 }));
            string Part(int i) => G.Op("Gather", new[] { heads, Once($"qkv.part{i}", n => G.Ints(n, new long[] { i }, scalar: true)) }, ("axis", 0));
            var (q, k, v) = (Part(0), Part(1), Part(2));
            long chunk = retention.Mode == RetentionMode.Chunkwise ? Math.Min(ChunkSizes.Resolve(retention.ChunkSize, tokens), tokens) : tokens;
            var retained = config.SpatialDecay is { } shape ? Spatial(q, k, v, shape)
                : chunk >= tokens ? Parallel(q, k, v, Mask(tokens, "retention.mask")) : Chunkwise(q, k, v, chunk);
            // [B, H, N, Dh] to [B, N, dim], then the optional GroupNorm and the output projection.
            var merged = G.Op("Reshape", new[] { G.Op("Transpose", new[] { retained }, ("perm", new long[] { 0, 2, 1, 3 })), Shape(0, 0, config.Dim) });
            if (config.RetentionGroupNorm) merged = GroupNormPerHead(merged);
            return Linear(merged, $"{name}.proj");
        }

        // [B, N, dim]: each head of each token normalised (libtorch's GroupNorm, epsilon 1e-5, no weights).
        private string GroupNormPerHead(string x)
        {
            var ones = Once("retention.group_norm.scale", n => G.Floats(n, Enumerable.Repeat(1f, _headDim).ToArray(), _headDim));
            var zeros = Once("retention.group_norm.bias", n => G.Floats(n, new float[_headDim], _headDim));
            var normed = G.Op("LayerNormalization", new[] { G.Op("Reshape", new[] { x, Shape(0, 0, _heads, _headDim) }), ones, zeros }, ("axis", -1), ("epsilon", 1e-5f));
            return G.Op("Reshape", new[] { normed, Shape(0, 0, config.Dim) });
        }

        // (q Kᵀ ⊙ mask) V with the mask [H, N, N] scaled by 1/√Dh.
        private string Parallel(string q, string k, string v, string mask)
        {
            var scores = G.Op("MatMul", new[] { q, G.Op("Transpose", new[] { k }, ("perm", new long[] { 0, 1, 3, 2 })) });
            return G.Op("MatMul", new[] { G.Op("Mul", new[] { scores, mask }), v });
        }

        // Chunks of C tokens: the parallel form inside each, and the states passed across them by one matmul with a
        // constant [H, nC, nC] decay matrix, so there is no loop in the graph. Every block shares these constants.
        private string Chunkwise(string q, string k, string v, long c)
        {
            long chunks = (tokens + c - 1) / c, padding = chunks * c - tokens;
            var pads = Once("retention.pads", n => G.Ints(n, new long[] { 0, 0, 0, 0, 0, 0, padding, 0 }));
            string Chunked(string t) => G.Op("Reshape", new[] { padding > 0 ? G.Op("Pad", new[] { t, pads }) : t, Shape(0, _heads, chunks, c, _headDim) });
            var (qc, kc, vc) = (Chunked(q), Chunked(k), Chunked(v));

            var inner = G.Op("MatMul", new[] { qc, G.Op("Transpose", new[] { kc }, ("perm", new long[] { 0, 1, 2, 4, 3 })) });
            var output = G.Op("MatMul", new[] { G.Op("Mul", new[] { inner, Unsqueezed(Mask(c, "retention.chunk_mask"), c, c) }), vc });

            var keyDecay = Decays("retention.key_decay", c, j => (c - 1 - j), 1.0);
            var states = G.Op("MatMul", new[] { G.Op("Transpose", new[] { G.Op("Mul", new[] { kc, keyDecay }) }, ("perm", new long[] { 0, 1, 2, 4, 3 })), vc });
            var flat = G.Op("Reshape", new[] { states, Shape(0, _heads, chunks, _headDim * _headDim) });
            var entering = G.Op("Reshape", new[] { G.Op("MatMul", new[] { CrossChunkDecay(c, chunks, "retention.cross_decay"), flat }), Shape(0, _heads, chunks, _headDim, _headDim) });
            var queryDecay = Decays("retention.query_decay", c, i => i + 1, 1 / Math.Sqrt(_headDim));
            output = G.Op("Add", new[] { output, G.Op("Mul", new[] { G.Op("MatMul", new[] { qc, entering }), queryDecay }) });

            var flatOutput = G.Op("Reshape", new[] { output, Shape(0, _heads, chunks * c, _headDim) });
            return padding == 0 ? flatOutput
                : G.Op("Slice", new[] { flatOutput, Once("retention.start", n => G.Ints(n, new long[] { 0 })), Once("retention.end", n => G.Ints(n, new long[] { tokens })), Once("retention.axis", n => G.Ints(n, new long[] { 2 })) });
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
            return G.Floats(name, values, _heads, n, n);
        });

        // [H, 1, C, 1] with scale·γ^exponent(position): a per-row decay for [B, H, nC, C, ·] chunks.
        private string Decays(string name, long c, Func<long, long> exponent, double scale) => Once(name, _ =>
        {
            var values = new float[_heads * c];
            for (int h = 0; h < _heads; h++)
                for (long i = 0; i < c; i++)
                    values[h * c + i] = (float)(Math.Exp(_logGammas[h] * exponent(i)) * scale);
            return G.Floats(name, values, _heads, 1, c, 1);
        });

        // [H, nC, nC] with γ^(C·(c−1−c')) where c' < c, else 0: how chunk c' reaches the state entering chunk c.
        private string CrossChunkDecay(long c, long chunks, string name) => Once(name, _ =>
        {
            var values = new float[_heads * chunks * chunks];
            for (int h = 0; h < _heads; h++)
                for (long i = 1; i < chunks; i++)
                    for (long j = 0; j < i; j++)
                        values[(h * chunks + i) * chunks + j] = (float)Math.Exp(_logGammas[h] * c * (i - 1 - j));
            return G.Floats(name, values, _heads, chunks, chunks);
        });

        // [H, a, b] as [H, 1, a, b], to broadcast over the chunk axis.
        private string Unsqueezed(string t, long a, long b) => G.Op("Reshape", new[] { t, Shape(_heads, 1, a, b) });
    }
}
