using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// RMT's spatial decay for one set of heads (Fan et al., CVPR 2024): γ_h = 1 − 2^−(a + r·h/N), applied as the additive
/// log-bias (|Δrow| + |Δcol|)·ln γ_h before the softmax, and the rotation of queries and keys by their raster index.
/// Masks and rotations are cached per grid shape, and stages with the same heads, schedule and head width share
/// one instance (<see cref="Shared"/>), so every block of a stage reads one copy.
/// </summary>
internal sealed class ManhattanDecay
{
    private const long CacheBudgetBytes = 256L << 20;
    private static readonly ConcurrentDictionary<(int, double, double, int), ManhattanDecay> SharedByValue = new();

    private readonly TensorCache _cache = new(CacheBudgetBytes);

    private ManhattanDecay(int heads, double initialValue, double headsRange, int headDim)
    {
        Heads = heads;
        HeadDim = headDim;
        // As the official code computes them, in float32: ln(1 − 2^−(a + r·h/N)) and 10000^−linspace(0, 1, d/2).
        LogGamma = Enumerable.Range(0, heads)
            .Select(h => MathF.Log(1 - MathF.Pow(2, -(float)initialValue - (float)headsRange * h / heads))).ToArray();
        int half = headDim / 2;
        Angle = Enumerable.Range(0, half)
            .Select(j => 1 / MathF.Pow(10000, half == 1 ? 0 : (float)j / (half - 1)))
            .SelectMany(a => new[] { a, a }).ToArray();
    }

    public int Heads { get; }

    public int HeadDim { get; }

    /// <summary>ln γ of each head, [H].</summary>
    public float[] LogGamma { get; }

    /// <summary>The rotation frequency of each query/key channel, [HeadDim] (pairs share one).</summary>
    public float[] Angle { get; }

    /// <summary>The instance for these heads, decay schedule and head width.</summary>
    public static ManhattanDecay Shared(int heads, double initialValue, double headsRange, int headDim)
    {
        if (heads < 1) throw new ArgumentOutOfRangeException(nameof(heads), heads, $"heads must be at least 1, but it is {heads}.");
        if (headDim < 2 || headDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"The head width must be a positive even number (rotation pairs channels), but it is {headDim}.");
        var key = (heads, initialValue, headsRange, headDim);
        if (SharedByValue.TryGetValue(key, out var shared)) return shared;
        if (SharedByValue.Count >= 64) SharedByValue.Clear();
        return SharedByValue.GetOrAdd(key, _ => new ManhattanDecay(heads, initialValue, headsRange, headDim));
    }

    /// <summary>[H, h·w, h·w]: (|Δrow| + |Δcol|)·ln γ_h between raster positions.</summary>
    public Tensor Mask2d(long height, long width, ScalarType type, Device device) =>
        _cache.GetOrAdd($"2d|{height}|{width}", type, device, () =>
        {
            var row = arange(height, float32).repeat_interleave(width);
            var col = arange(width, float32).repeat(height);
            var distance = (row.unsqueeze(1) - row.unsqueeze(0)).abs_() + (col.unsqueeze(1) - col.unsqueeze(0)).abs_();
            return distance.unsqueeze(0) * tensor(LogGamma).view(-1, 1, 1);
        });

    /// <summary>[H, n, n]: |i − j|·ln γ_h along one axis.</summary>
    public Tensor Mask1d(long length, ScalarType type, Device device) =>
        _cache.GetOrAdd($"1d|{length}", type, device, () =>
        {
            var index = arange(length, float32);
            return (index.unsqueeze(1) - index.unsqueeze(0)).abs_().unsqueeze(0) * tensor(LogGamma).view(-1, 1, 1);
        });

    /// <summary>sin and cos of position·angle, [h, w, HeadDim], for the raster position row·w + col.</summary>
    public (Tensor Sin, Tensor Cos) Rotation(long height, long width, ScalarType type, Device device)
    {
        Tensor Phase() => arange(height * width, float32).unsqueeze(1) * tensor(Angle).unsqueeze(0);
        return (_cache.GetOrAdd($"sin|{height}|{width}", type, device, () => Phase().sin_().view(height, width, -1)),
                _cache.GetOrAdd($"cos|{height}|{width}", type, device, () => Phase().cos_().view(height, width, -1)));
    }
}
