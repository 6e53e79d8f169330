using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// Per-head decays γ and the decay masks and vectors derived from them, cached per
/// (sequence or chunk length, dtype, device) so they are not rebuilt on every call. Layers with the same γ share one
/// instance (<see cref="Shared"/>), so a model keeps one copy of each mask within one budget, not one per block.
/// Every exponent is non-negative, so nothing overflows on long sequences.
/// </summary>
internal sealed class RetentionDecay
{
    // Masks for very long sequences are large (H·N² floats): cache within a budget, build the rest on demand.
    private const long CacheBudgetBytes = 512L << 20;
    private const int MaxSharedDecays = 32;
    private static readonly ConcurrentDictionary<string, RetentionDecay> SharedByValue = new();

    private readonly double[] _logGammas;
    private readonly TensorCache _cache = new(CacheBudgetBytes);

    /// <summary>Creates the decays; every γ must lie in (0, 1].</summary>
    internal RetentionDecay(IReadOnlyList<float> gammas)
    {
        ArgumentNullException.ThrowIfNull(gammas);
        if (gammas.Count == 0) throw new ArgumentException("At least one head decay is required, but gamma is empty.", nameof(gammas));
        for (int h = 0; h < gammas.Count; h++)
        {
            float g = gammas[h];
            if (!(g > 0 && g <= 1))
                throw new ArgumentException($"Every decay must lie in (0, 1], but gamma[{h}] is {g}.", "gamma");
        }
        Gammas = gammas.ToArray();
        _logGammas = Gammas.Select(g => Math.Log(g)).ToArray();
    }

    /// <summary>The decay of each head.</summary>
    internal IReadOnlyList<float> Gammas { get; }

    /// <summary>The number of heads.</summary>
    internal int Heads => Gammas.Count;

    /// <summary>The shared decays for a γ tensor of shape [H], looked up by value.</summary>
    internal static RetentionDecay FromTensor(Tensor gamma)
    {
        ArgumentNullException.ThrowIfNull(gamma, nameof(gamma));
        if (gamma.dim() != 1)
            throw new ArgumentException($"gamma must have shape [H], but its shape is [{string.Join(",", gamma.shape)}].", nameof(gamma));
        return Shared(gamma.detach().cpu().to_type(ScalarType.Float32).data<float>().ToArray());
    }

    /// <summary>The one instance for these γ values, with its cache.</summary>
    internal static RetentionDecay Shared(IReadOnlyList<float> gammas)
    {
        ArgumentNullException.ThrowIfNull(gammas);
        string key = string.Join(",", gammas.Select(v => BitConverter.SingleToInt32Bits(v)));
        if (SharedByValue.TryGetValue(key, out var shared)) return shared;
        var decay = new RetentionDecay(gammas); // checks the values before anything is kept
        if (SharedByValue.Count >= MaxSharedDecays) SharedByValue.Clear();
        return SharedByValue.GetOrAdd(key, decay);
    }

    /// <summary>The γ of every head as a [H] tensor.</summary>
    internal Tensor Gamma(ScalarType type, Device device) =>
        Cached("gamma", 0, 0, type, device, () => tensor(_logGammas.Select(Math.Exp).ToArray()));

    /// <summary>[H, n, n] with scale·γ_h^(i−j) where i ≥ j and 0 elsewhere.</summary>
    internal Tensor CausalMask(long n, double scale, ScalarType type, Device device) =>
        Cached("mask", n, BitConverter.DoubleToInt64Bits(scale), type, device, () =>
        {
            // Built in float32 on the target device: a float64 [H, N, N] would not fit for long sequences.
            // The exponent's rounding error is |ln γ·Δ|·ε relative on e^(ln γ·Δ), so at most ε/e absolute.
            var distance = (arange(n, float32, device).unsqueeze(1) - arange(n, float32, device).unsqueeze(0)).clamp_min_(0);
            return (LogGamma().to(float32, device).view(-1, 1, 1) * distance).exp_().tril_().mul_(scale);
        });

    /// <summary>[H, C, 1] with scale·γ^(i+1): decay from the state entering a chunk to its token i.</summary>
    internal Tensor QueryDecay(long chunk, double scale, ScalarType type, Device device) =>
        Cached("query", chunk, BitConverter.DoubleToInt64Bits(scale), type, device,
            () => exp(LogGamma().view(-1, 1, 1) * (arange(chunk, float64) + 1).view(1, -1, 1)).mul_(scale));

    /// <summary>[H] with γ^C: the decay of a state across one whole chunk.</summary>
    internal Tensor ChunkDecay(long chunk, ScalarType type, Device device) =>
        Cached("chunk", chunk, 0, type, device, () => exp(LogGamma() * chunk));

    /// <summary>[H, C, 1] with γ^(C−1−j): decay from token j to the end of its chunk.</summary>
    internal Tensor KeyDecay(long chunk, ScalarType type, Device device) =>
        Cached("key", chunk, 0, type, device, () => exp(LogGamma().view(-1, 1, 1) * (chunk - 1 - arange(chunk, float64)).view(1, -1, 1)));

    /// <summary>[H, nC, nC] with γ^(C·(c−1−c')) where c' &lt; c and 0 elsewhere: how chunk c' reaches the state entering chunk c.</summary>
    internal Tensor CrossChunkDecay(long chunk, long chunks, ScalarType type, Device device) =>
        Cached("cross", chunk, chunks, type, device, () =>
        {
            var distance = (arange(chunks, float64).unsqueeze(1) - arange(chunks, float64).unsqueeze(0) - 1).clamp_min_(0);
            return (LogGamma().view(-1, 1, 1) * (chunk * distance)).exp_().tril_(-1);
        });

    private Tensor LogGamma() => tensor(_logGammas);

    private Tensor Cached(string kind, long a, long b, ScalarType type, Device device, Func<Tensor> build) =>
        _cache.GetOrAdd($"{kind}|{a}|{b}", type, device, build);
}
