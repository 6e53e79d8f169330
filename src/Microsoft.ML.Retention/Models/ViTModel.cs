namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The ViT baseline with the same skeleton and dimensions: softmax attention through libtorch's
/// fused scaled_dot_product_attention, with the [class] token first.
/// </summary>
public sealed class ViTModel : VisionTransformerBase
{
    /// <summary>Creates a randomly initialised ViT (seed it with <c>torch.manual_seed</c>); the config's retention fields must be unset.</summary>
    public ViTModel(ViRConfig config)
        : base(nameof(ViTModel), WithoutRetentionFields(config), classTokenLast: false, () => new SoftmaxAttention(config.Dim, config.Heads))
    {
    }

    // A softmax has no decay to shape and no retention output to normalise: refuse rather than ignore them.
    private static ViRConfig WithoutRetentionFields(ViRConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.SpatialDecay is not null || config.RetentionGroupNorm)
            throw new ArgumentException($"A ViT has softmax attention, so ViRConfig.SpatialDecay and RetentionGroupNorm must be unset, but they are " +
                $"{config.SpatialDecay?.ToString() ?? "null"} and {config.RetentionGroupNorm}.", nameof(config));
        return config;
    }
}
