using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention;

/// <summary>Retention form and precision switching on a whole loaded model (for example the chain <c>mlContext.Model.Load</c> returns).</summary>
public static class ViRModelExtensions
{
    /// <summary>
    /// The same model with every ViR in it predicting in <paramref name="mode"/>: a ViR transformer, or
    /// a transformer chain (nested or not) that contains one. Weights are shared, not copied.
    /// </summary>
    /// <exception cref="ArgumentException">The model contains no <see cref="ViRImageClassificationTransformer"/>.</exception>
    public static ITransformer WithRetentionMode(this ITransformer model, RetentionMode mode, int? chunkSize = null) =>
        Switch(model, vir => vir.WithRetentionMode(mode, chunkSize));

    /// <summary>The same model with every ViR in it scoring in <paramref name="precision"/> (see <see cref="ViRImageClassificationTransformer.WithPrecision"/>).</summary>
    /// <exception cref="ArgumentException">The model contains no <see cref="ViRImageClassificationTransformer"/>.</exception>
    public static ITransformer WithPrecision(this ITransformer model, ViRPrecision precision) =>
        Switch(model, vir => vir.WithPrecision(precision));

    /// <summary>
    /// Writes the model's ViR as ONNX (see <see cref="ViRImageClassificationTransformer.ExportToOnnx"/>): a ViR transformer,
    /// or a chain such as the one <c>mlContext.Model.Load</c> returns. The ONNX model covers the ViR alone; the chain's
    /// other transformers (label mapping, image loading) are rebuilt around it with ML.NET's own transforms.
    /// </summary>
    /// <exception cref="ArgumentException">The model contains no <see cref="ViRImageClassificationTransformer"/>.</exception>
    public static void ExportToOnnx(this ITransformer model, string path, RetentionMode mode = Onnx.ViROnnxExport.DefaultMode, int chunkSize = ChunkSizes.Auto,
        int? imageSize = null, bool includeEmbedding = false, int opset = Onnx.ViROnnxExport.DefaultOpset, Onnx.OnnxImageInput input = Onnx.ViROnnxExport.DefaultInput)
    {
        ArgumentNullException.ThrowIfNull(model);
        var vir = ViRsIn(model).FirstOrDefault() ?? throw NoViR(model);
        vir.ExportToOnnx(path, mode, chunkSize, imageSize, includeEmbedding, opset, input);
    }

    /// <summary>The ViR transformers in a model: itself, or those in its chains, in order.</summary>
    private static IEnumerable<ViRImageClassificationTransformer> ViRsIn(ITransformer transformer) => transformer switch
    {
        ViRImageClassificationTransformer vir => new[] { vir },
        _ when Chain(transformer) is { } chain => chain.SelectMany(ViRsIn),
        _ => Enumerable.Empty<ViRImageClassificationTransformer>(),
    };

    /// <summary>
    /// The transformers of a chain of any last-transformer type (a fitted pipeline's chains nest as
    /// TransformerChain&lt;TransformerChain&lt;…&gt;&gt;), or null for anything else.
    /// </summary>
    private static IEnumerable<ITransformer>? Chain(ITransformer transformer) =>
        transformer is IEnumerable<ITransformer> chain && transformer.GetType() is { IsGenericType: true } type && type.GetGenericTypeDefinition() == typeof(TransformerChain<>)
            ? chain : null;

    private static ArgumentException NoViR(ITransformer model) =>
        new($"The model must be a ViRImageClassificationTransformer or a chain containing one, but it is {model.GetType().Name} without one.", nameof(model));

    private static ITransformer Switch(ITransformer model, Func<ViRImageClassificationTransformer, ITransformer> change)
    {
        ArgumentNullException.ThrowIfNull(model);
        int switched = 0;
        var result = Visit(model);
        if (switched == 0) throw NoViR(model);
        return result;

        ITransformer Visit(ITransformer transformer)
        {
            if (transformer is ViRImageClassificationTransformer vir)
            {
                switched++;
                return change(vir);
            }
            return Chain(transformer) is { } chain ? new TransformerChain<ITransformer>(chain.Select(Visit).ToArray()) : transformer;
        }
    }
}
