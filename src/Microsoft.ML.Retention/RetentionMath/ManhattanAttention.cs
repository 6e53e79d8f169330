using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// RMT's attention with a Manhattan decay, on queries, keys and values laid out [B, H, h, w, d] (heads first, then the
/// grid). <see cref="Full"/> is MaSA: softmax(q·kᵀ + (|Δrow| + |Δcol|)·ln γ) v over the whole grid. <see cref="Decomposed"/>
/// is MaSAD: the same along each row, then along each column, with the same q and k and the values carried over.
/// Float32 and float64 run libtorch's fused attention with the decay as its float mask; under bfloat16 the bias and the
/// softmax stay float32.
/// </summary>
internal static class ManhattanAttention
{
    /// <summary>Rotates interleaved channel pairs (x₀, x₁) by the angle whose sin and cos are given, [h, w, d] broadcast.</summary>
    public static Tensor Rotate(Tensor x, Tensor sin, Tensor cos)
    {
        long d = x.shape[^1];
        var even = x.slice(-1, 0, d, 2);
        var odd = x.slice(-1, 1, d, 2);
        var turned = stack(new[] { odd.neg(), even }, -1).flatten(-2);
        return x * cos + turned * sin;
    }

    /// <summary>MaSA: [B, H, h, w, d] in, [B, H, h·w, dv] out.</summary>
    public static Tensor Full(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        using var scope = NewDisposeScope();
        return Attend(q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3), mask).MoveToOuterDisposeScope();
    }

    /// <summary>MaSAD: [B, H, h, w, d] in, [B, H, h·w, dv] out; rows first, then columns.</summary>
    public static Tensor Decomposed(Tensor q, Tensor k, Tensor v, Tensor maskHeight, Tensor maskWidth)
    {
        using var scope = NewDisposeScope();
        // Along w inside each row: [B, h, H, w, ·]; then along h inside each column: [B, w, H, h, ·].
        var alongRows = Attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), maskWidth);
        var output = Attend(q.permute(0, 3, 1, 2, 4), k.permute(0, 3, 1, 2, 4), alongRows.permute(0, 3, 2, 1, 4), maskHeight);
        return output.permute(0, 2, 3, 1, 4).flatten(2, 3).MoveToOuterDisposeScope(); // [B, H, h·w, dv]
    }

    /// <summary>softmax(q·kᵀ + mask) v over the last two axes, for [..., H, L, d] with a mask [H, L, S].</summary>
    private static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        if (q.dtype is ScalarType.Float32 or ScalarType.Float64)
        {
            // libtorch's fused attention (1.8× the explicit form here) takes the bias as a float mask; it scales by
            // d^-½ itself, which RMT already did to k, so q is scaled back.
            long heads = mask.shape[0], l = q.shape[^2], s = k.shape[^2], d = q.shape[^1];
            var fused = nn.functional.scaled_dot_product_attention(
                q.reshape(-1, heads, l, d).mul(Math.Sqrt(d)), k.reshape(-1, heads, s, d), v.reshape(-1, heads, s, v.shape[^1]),
                mask.to(q.dtype).unsqueeze(0));
            return fused.reshape(v.shape[..^2].Append(l).Append(v.shape[^1]).ToArray());
        }
        // bfloat16 and float16: the fused kernel would want the bias in the activations' type; keep it and the softmax in float32.
        return q.matmul(k.transpose(-1, -2)).to(ScalarType.Float32).add_(mask).softmax(-1).to(v.dtype).matmul(v);
    }
}
