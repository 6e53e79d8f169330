using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// RMT's attention with a Manhattan decay, on queries, keys and values laid out [B, H, h, w, d] (heads first, then the
/// grid). <see cref="Full"/> is MaSA: softmax(q·kᵀ + (|Δrow| + |Δcol|)·ln γ) v over the whole grid. <see cref="Decomposed"/>
/// is MaSAD: the same along each row, then along each column, with the same q and k and the values carried over.
/// Softmax runs in float32 whatever the activations' type.
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
        var qf = q.flatten(2, 3);
        var kf = k.flatten(2, 3);
        var vf = v.flatten(2, 3);
        var weights = qf.matmul(kf.transpose(-1, -2)).add(mask).softmax(-1, ScalarType.Float32).to(v.dtype);
        return weights.matmul(vf).MoveToOuterDisposeScope();
    }

    /// <summary>MaSAD: [B, H, h, w, d] in, [B, H, h·w, dv] out; rows first, then columns.</summary>
    public static Tensor Decomposed(Tensor q, Tensor k, Tensor v, Tensor maskHeight, Tensor maskWidth)
    {
        using var scope = NewDisposeScope();
        // Along w inside each row: [B, h, H, w, ·].
        var qw = q.transpose(1, 2);
        var kw = k.transpose(1, 2);
        var alongRows = qw.matmul(kw.transpose(-1, -2)).add(maskWidth).softmax(-1, ScalarType.Float32).to(v.dtype)
            .matmul(v.transpose(1, 2));
        // Along h inside each column: [B, w, H, h, ·].
        var qh = q.permute(0, 3, 1, 2, 4);
        var kh = k.permute(0, 3, 1, 2, 4);
        var output = qh.matmul(kh.transpose(-1, -2)).add(maskHeight).softmax(-1, ScalarType.Float32).to(v.dtype)
            .matmul(alongRows.permute(0, 3, 2, 1, 4));
        return output.permute(0, 2, 3, 1, 4).flatten(2, 3).MoveToOuterDisposeScope(); // [B, H, h·w, dv]
    }
}
