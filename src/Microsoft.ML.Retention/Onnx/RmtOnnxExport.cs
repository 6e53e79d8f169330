using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Onnx;

/// <summary>
/// Writes an <see cref="RmtModel"/> as an ONNX model at one resolution, with the inputs, outputs and metadata of
/// <see cref="ViROnnxExport"/> (the embedding is the pooled features the head reads). The Manhattan masks and the
/// rotations are constants of the exported grid sizes, computed as the model computes them.
/// </summary>
public static class RmtOnnxExport
{
    /// <summary>Writes <paramref name="model"/> as ONNX to <paramref name="path"/> (the file appears only when complete).</summary>
    /// <param name="model">The model; its weights are read, not changed.</param>
    /// <param name="path">The .onnx file to write.</param>
    /// <param name="labelNames">The class names, one per output of the head (stored as metadata); null for none.</param>
    /// <param name="imageSize">The resolution the exported model takes (square), or null for the config's.</param>
    /// <param name="includeEmbedding">Adds the <c>embedding</c> output, the pooled features [batch, Projection].</param>
    /// <param name="opset">The ONNX opset, as for <see cref="ViROnnxExport.Export"/>.</param>
    /// <param name="input">Pixels of one image at any size, preprocessed in the graph, or a preprocessed batch.</param>
    public static void Export(RmtModel model, string path, IReadOnlyList<string>? labelNames = null, int? imageSize = null,
        bool includeEmbedding = false, int opset = ViROnnxExport.DefaultOpset, OnnxImageInput input = ViROnnxExport.DefaultInput)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var config = model.Config;
        OnnxModelWriter.CheckArguments(config, labelNames, includeEmbedding, opset, input);
        if (imageSize is < 1)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"imageSize must be positive, but it is {imageSize}.");
        int height = imageSize ?? config.ImageHeight, width = imageSize ?? config.ImageWidth;
        var grids = Grids(config, height, width);
        double fileBytes = 4.0 * (config.ParameterCount + config.Stages.Zip(grids).Sum(p =>
        {
            var (stage, (h, w)) = p;
            double masks = stage.Decomposed ? (double)h * h + (double)w * w : (double)h * w * h * w;
            return stage.Heads * masks + 2.0 * h * w * (stage.Dim / stage.Heads);
        }));
        if (fileBytes > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize,
                $"At {height}×{width} the ONNX model would hold about {fileBytes:N0} bytes of weights, masks and rotations, but an ONNX file holds at most " +
                $"{int.MaxValue:N0} (protobuf's limit). Export a smaller imageSize.");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var weights = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().to(float32));
        new Writer(new OnnxGraph(), weights, config, grids).Save(path, height, width, labelNames, includeEmbedding, opset, input, new Dictionary<string, string>());
    }

    /// <summary>Each stage's grid at this resolution: the stem and every merge halve it, rounding up (3×3, stride 2, padding 1).</summary>
    private static (long Height, long Width)[] Grids(RmtConfig config, long height, long width)
    {
        static long Half(long n) => (n + 1) / 2;
        var grids = new (long, long)[config.Stages.Count];
        (long h, long w) = (Half(Half(height)), Half(Half(width)));
        for (int i = 0; i < grids.Length; i++, (h, w) = (Half(h), Half(w))) grids[i] = (h, w);
        return grids;
    }

    /// <summary>Emits RMT's forward pass in the order of <see cref="RmtModel"/>, tokens laid out [B, h, w, C] as there.</summary>
    private sealed class Writer(OnnxGraph g, Dictionary<string, Tensor> weights, RmtConfig config, (long Height, long Width)[] grids)
        : OnnxModelWriter(g, weights, config)
    {
        protected override (string? Probabilities, string Embedding) Forward(string images)
        {
            var x = images;
            foreach (var (conv, gelu) in new[] { (0, true), (3, true), (6, true), (9, false) })
            {
                x = BatchNorm(Conv(x, $"patch_embed.proj.{conv}", kernel: 3, stride: conv is 0 or 6 ? 2 : 1), $"patch_embed.proj.{conv + 1}");
                if (gelu) x = Gelu(x);
            }
            x = ToTokens(x);
            for (int i = 0; i < config.Stages.Count; i++)
            {
                var stage = config.Stages[i];
                for (int j = 0; j < stage.Depth; j++) x = Block(x, $"layers.{i}.blocks.{j}", i);
                if (i + 1 < config.Stages.Count)
                    x = ToTokens(BatchNorm(Conv(ToMap(x), $"layers.{i}.downsample.reduction", kernel: 3, stride: 2), $"layers.{i}.downsample.norm"));
            }
            // The head: a per-token Linear, BatchNorm and Swish, the average over the grid, and the classifier.
            var projected = BatchNorm(ToMap(Linear(x, "proj")), "norm");
            var swish = G.Op("Mul", new[] { projected, G.Op("Sigmoid", new[] { projected }) });
            var (h, w) = grids[^1];
            var embedding = G.Op("Mul", new[] { G.Op("ReduceSum", new[] { swish, Shape(2, 3) }, ("keepdims", 0L)), Scalar(1.0 / (h * w)) });
            if (config.NumClasses == 0) return (null, embedding);
            return (G.Op("Softmax", new[] { Linear(embedding, "head") }, ("axis", -1)), embedding);
        }

        private string ToTokens(string map) => G.Op("Transpose", new[] { map }, ("perm", new long[] { 0, 2, 3, 1 }));

        private string ToMap(string tokens) => G.Op("Transpose", new[] { tokens }, ("perm", new long[] { 0, 3, 1, 2 }));

        private string DepthwiseConv(string tokens, string name, int dim, long kernel) => ToTokens(Conv(ToMap(tokens), $"{name}.conv", kernel, groups: dim));

        private string Block(string x, string name, int stageIndex)
        {
            var stage = config.Stages[stageIndex];
            x = G.Op("Add", new[] { x, DepthwiseConv(x, $"{name}.pos", stage.Dim, 3) });
            var mixed = Attention(LayerNorm(x, $"{name}.retention_layer_norm", 1e-6f), $"{name}.retention", stageIndex);
            if (HasWeight($"{name}.gamma_1")) mixed = G.Op("Mul", new[] { mixed, Weight($"{name}.gamma_1") });
            x = G.Op("Add", new[] { x, mixed });
            var hidden = Gelu(Linear(LayerNorm(x, $"{name}.final_layer_norm", 1e-6f), $"{name}.ffn.fc1"));
            var fed = Linear(G.Op("Add", new[] { hidden, DepthwiseConv(hidden, $"{name}.ffn.dwconv", stage.FeedForwardDim, 3) }), $"{name}.ffn.fc2");
            if (HasWeight($"{name}.gamma_2")) fed = G.Op("Mul", new[] { fed, Weight($"{name}.gamma_2") });
            return G.Op("Add", new[] { x, fed });
        }

        private string Attention(string x, string name, int stageIndex)
        {
            var stage = config.Stages[stageIndex];
            var (h, w) = grids[stageIndex];
            int heads = stage.Heads, d = stage.Dim / heads;
            var decay = ManhattanDecay.Shared(heads, config.InitialValue, stage.HeadsRange, d);
            string prefix = $"rmt.stage{stageIndex}";

            var v = Linear(x, $"{name}.v_proj");
            var local = DepthwiseConv(v, $"{name}.lepe", stage.Dim, 5);
            // [B, h, w, C] to [B, H, h, w, d]
            string Heads(string t) => G.Op("Transpose", new[] { G.Op("Reshape", new[] { t, Shape(0, h, w, heads, d) }) }, ("perm", new long[] { 0, 3, 1, 2, 4 }));
            var (sin, cos) = decay.Rotation(h, w, ScalarType.Float32, CPU);
            var sinName = Once($"{prefix}.sin", n => G.Floats(n, sin.data<float>().ToArray(), h, w, d));
            var cosName = Once($"{prefix}.cos", n => G.Floats(n, cos.data<float>().ToArray(), h, w, d));
            // Rotation of interleaved pairs: x·cos + turn(x)·sin, where turn(x₀, x₁) = (−x₁, x₀) is a matmul by a constant.
            var turn = Once($"rmt.turn{d}", n =>
            {
                var values = new float[d * d];
                for (int j = 0; j < d; j += 2)
                {
                    values[(j + 1) * d + j] = -1;
                    values[j * d + j + 1] = 1;
                }
                return G.Floats(n, values, d, d);
            });
            string Rotate(string t) => G.Op("Add", new[] { G.Op("Mul", new[] { t, cosName }), G.Op("Mul", new[] { G.Op("MatMul", new[] { t, turn }), sinName }) });
            var q = Rotate(Heads(Linear(x, $"{name}.q_proj")));
            var k = Rotate(Heads(G.Op("Mul", new[] { Linear(x, $"{name}.k_proj"), Scalar(1 / Math.Sqrt(d)) })));
            var values5 = Heads(v);

            string attended; // [B, H, h, w, d]
            if (stage.Decomposed)
            {
                var maskW = Once($"{prefix}.mask_w", n => G.Floats(n, decay.Mask1d(w, ScalarType.Float32, CPU).data<float>().ToArray(), heads, w, w));
                var maskH = Once($"{prefix}.mask_h", n => G.Floats(n, decay.Mask1d(h, ScalarType.Float32, CPU).data<float>().ToArray(), heads, h, h));
                // Along each row ([B, h, H, w, d]), then along each column ([B, w, H, h, d]).
                string Permute(string t, params long[] perm) => G.Op("Transpose", new[] { t }, ("perm", perm));
                var rows = Attend(Permute(q, 0, 2, 1, 3, 4), Permute(k, 0, 2, 1, 3, 4), Permute(values5, 0, 2, 1, 3, 4), maskW);
                var columns = Attend(Permute(q, 0, 3, 1, 2, 4), Permute(k, 0, 3, 1, 2, 4), Permute(rows, 0, 3, 2, 1, 4), maskH);
                attended = Permute(columns, 0, 2, 3, 1, 4);
            }
            else
            {
                long n = h * w;
                var mask = Once($"{prefix}.mask_2d", m => G.Floats(m, decay.Mask2d(h, w, ScalarType.Float32, CPU).data<float>().ToArray(), heads, n, n));
                string Flat(string t) => G.Op("Reshape", new[] { t, Shape(0, heads, n, d) });
                attended = Attend(Flat(q), Flat(k), Flat(values5), mask, rank: 4);
            }
            // [B, H, ·, d] to [B, h, w, C]
            var merged = G.Op("Reshape", new[] { G.Op("Transpose", new[] { G.Op("Reshape", new[] { attended, Shape(0, heads, h, w, d) }) },
                ("perm", new long[] { 0, 2, 3, 1, 4 })), Shape(0, h, w, stage.Dim) });
            return Linear(G.Op("Add", new[] { merged, local }), $"{name}.out_proj");
        }

        // softmax(q·kᵀ + mask) v over the last two axes of rank-4 or rank-5 tensors; the mask [H, L, S] broadcasts over the leading ones.
        private string Attend(string q, string k, string v, string mask, int rank = 5)
        {
            var swapped = rank == 4 ? new long[] { 0, 1, 3, 2 } : new long[] { 0, 1, 2, 4, 3 };
            var scores = G.Op("MatMul", new[] { q, G.Op("Transpose", new[] { k }, ("perm", swapped)) });
            return G.Op("MatMul", new[] { G.Op("Softmax", new[] { G.Op("Add", new[] { scores, mask }) }, ("axis", -1L)), v });
        }
    }
}
