namespace Microsoft.ML.Retention;

/// <summary>What <see cref="ViRImageClassificationTransformer.PredictStreaming(string, int, IProgress{double}?, CancellationToken)"/> gives for one image.</summary>
/// <param name="PredictedLabel">The most probable class's name.</param>
/// <param name="Score">The class probabilities, in <see cref="ViRImageClassificationTransformer.LabelNames"/> order.</param>
/// <param name="Embedding">The final [class] representation the head read.</param>
/// <param name="Height">The pixel rows the model read (the image's, down to a multiple of the patch size).</param>
/// <param name="Width">The pixel columns the model read.</param>
public sealed record ViRStreamingPrediction(string PredictedLabel, float[] Score, float[] Embedding, long Height, long Width);
