namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The ViT baseline with the same skeleton and dimensions: softmax attention through libtorch's
/// fused scaled_dot_product_attention, with the [class] token first.
/// </summary>
public sealed class ViTModel : VisionTransformerBase
{
    /// <summary>Creates a randomly initialised ViT (seed it with <c>torch.manual_seed</c>).</summary>
    public ViTModel(ViRConfig config)
        : base(nameof(ViTModel), config, classTokenLast: false, () => new SoftmaxAttention(config.Dim, config.Heads))
    {
    }
}
