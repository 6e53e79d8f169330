using Microsoft.ML.Data;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention;

/// <summary>Retention-mode switching on a whole loaded model (for example the chain <c>mlContext.Model.Load</c> returns).</summary>
public static class ViRModelExtensions
{
    /// <summary>
    /// The same model with every ViR in it predicting in <paramref name="mode"/>: a ViR transformer, or
    /// a transformer chain (nested or not) that contains one. Weights are shared, not copied.
    /// </summary>
    /// <exception cref="ArgumentException">The model contains no <see cref="ViRImageClassificationTransformer"/>.</exception>
    public static ITransformer WithRetentionMode(this ITransformer model, RetentionMode mode, int? chunkSize = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        int switched = 0;
        var result = Switch(model);
        if (switched == 0)
            throw new ArgumentException($"The model must be a ViRImageClassificationTransformer or a chain containing one, but it is {model.GetType().Name} without one.", nameof(model));
        return result;

        ITransformer Switch(ITransformer transformer)
        {
            switch (transformer)
            {
                case ViRImageClassificationTransformer vir:
                    switched++;
                    return vir.WithRetentionMode(mode, chunkSize);
                case TransformerChain<ITransformer> chain:
                    return new TransformerChain<ITransformer>(chain.Select(Switch).ToArray());
                default:
                    return transformer;
            }
        }
    }
}
