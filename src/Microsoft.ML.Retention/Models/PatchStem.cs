namespace Microsoft.ML.Retention.Models;

/// <summary>How a <see cref="ViRConfig"/> model turns patches into tokens.</summary>
public enum PatchStem
{
    /// <summary>One linear projection per non-overlapping patch, as in ViT and ViR.</summary>
    Patchify,

    /// <summary>
    /// log2(PatchSize) stride-2 3×3 convolutions with BatchNorm and ReLU, then a 1×1 projection (Xiao et al. 2021).
    /// Costs little and makes small transformers learn faster from little data.
    /// </summary>
    Convolutional,
}
