using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// The retention operator in its three exact forms. q, k and v are [B, H, N, D] float tensors,
/// γ is [H] with values in (0, 1], and every form returns [B, H, N, D].
/// <para>
/// Scaling convention: every form multiplies q by 1/√D before anything else (as the ViR authors
/// do), so <c>Parallel(q, k, v, γ) = ((q/√D) Kᵀ ⊙ Dγ) V</c> with <c>Dγ[n, m] = γ^(n−m)</c> for n ≥ m.
/// </para>
/// </summary>
public static class RetentionOps
{
    /// <summary>Parallel form: quadratic in N, one batched matmul pair over all heads.</summary>
    public static Tensor Parallel(Tensor q, Tensor k, Tensor v, Tensor gamma) =>
        Parallel(q, k, v, DecayFor(gamma, q));

    /// <summary>
    /// Chunkwise form: parallel inside chunks of <paramref name="chunkSize"/> tokens, recurrent across them.
    /// <see cref="ChunkSizes.Auto"/> picks the chunk size from the sequence length.
    /// </summary>
    public static Tensor Chunkwise(Tensor q, Tensor k, Tensor v, Tensor gamma, int chunkSize) =>
        Chunkwise(q, k, v, DecayFor(gamma, q), chunkSize);

    /// <summary>Recurrent form: one token at a time through a [B, H, D, D] state.</summary>
    public static Tensor Recurrent(Tensor q, Tensor k, Tensor v, Tensor gamma) =>
        Recurrent(q, k, v, DecayFor(gamma, q));

    /// <summary>
    /// One recurrent step for streaming: <c>S' = γ·S + kᵀv</c>, <c>o = (q/√D) S'</c>.
    /// q, k and v are [B, H, D]; <paramref name="state"/> is [B, H, D, D] (zeros before the first token).
    /// </summary>
    public static (Tensor Output, Tensor State) RecurrentStep(Tensor state, Tensor q, Tensor k, Tensor v, Tensor gamma)
    {
        var shape = CheckTokens(q, k, v, rank: 3);
        CheckState(state, shape);
        var decay = DecayFor(gamma, q);
        CheckHeads(decay, shape);
        return Step(state, q, k, v, decay.Gamma(q.dtype, q.device).view(1, -1, 1, 1), Scale(shape[^1]));
    }

    /// <summary>
    /// The chunkwise form continued from a state, for streaming a sequence in pieces: the outputs of the N tokens given
    /// the state the earlier tokens left, <c>S</c> [B, H, D, D], and the state after them,
    /// <c>S' = γ^N·S + Σ_j γ^(N−1−j) k_jᵀ v_j</c>. Feeding a sequence piece by piece gives the outputs of one
    /// <see cref="Chunkwise(Tensor, Tensor, Tensor, Tensor, int)"/> call over all of it. The state is float32 for
    /// bfloat16 or half tokens.
    /// </summary>
    public static (Tensor Output, Tensor State) ChunkwiseStep(Tensor state, Tensor q, Tensor k, Tensor v, Tensor gamma, int chunkSize) =>
        ChunkwiseStep(state, q, k, v, DecayFor(gamma, q), chunkSize);

    /// <inheritdoc cref="ChunkwiseStep(Tensor, Tensor, Tensor, Tensor, Tensor, int)"/>
    internal static (Tensor Output, Tensor State) ChunkwiseStep(Tensor state, Tensor q, Tensor k, Tensor v, RetentionDecay decay, int chunkSize)
    {
        var shape = CheckTokens(q, k, v, rank: 4);
        CheckHeads(decay, shape);
        CheckState(state, shape);

        using var scope = NewDisposeScope();
        long n = shape[2];
        var type = StateType(q);
        var logGamma = decay.Gamma(ScalarType.Float64, q.device).log().view(-1, 1);                           // [H, 1]
        // γ^(i+1) for the queries, γ^(N−1−j) for the keys: every exponent non-negative, so nothing overflows.
        var queryDecay = (arange(1, n + 1, ScalarType.Float64, q.device).unsqueeze(0) * logGamma).exp_().mul_(Scale(shape[3])).to(type).unsqueeze(-1);
        var keyDecay = (arange(n - 1, -1, -1, ScalarType.Float64, q.device).unsqueeze(0) * logGamma).exp_().to(type).unsqueeze(-1);
        var carried = logGamma.mul(n).exp_().to(type).view(1, -1, 1, 1);                                          // γ^N

        var output = Chunkwise(q, k, v, decay, chunkSize).to(type).addcmul_(q.to(type).matmul(state.to(type)), queryDecay, 1);
        var next = state.to(type).mul(carried).add_((k.to(type) * keyDecay).transpose(-1, -2).matmul(v.to(type)));
        return (output.to(q.dtype).MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
    }

    /// <inheritdoc cref="Parallel(Tensor, Tensor, Tensor, Tensor)"/>
    internal static Tensor Parallel(Tensor q, Tensor k, Tensor v, RetentionDecay decay)
    {
        var shape = CheckTokens(q, k, v, rank: 4);
        CheckHeads(decay, shape);
        using var scope = NewDisposeScope();
        var scores = TimesTransposed(q, k, shape);
        // In place: matmul's backward needs q and k, not the scores, so autograd allows it. The mask carries 1/√D.
        var output = scores.mul_(decay.CausalMask(shape[2], Scale(shape[3]), q.dtype, q.device)).matmul(v);
        return output.MoveToOuterDisposeScope();
    }

    /// <inheritdoc cref="Chunkwise(Tensor, Tensor, Tensor, Tensor, int)"/>
    internal static Tensor Chunkwise(Tensor q, Tensor k, Tensor v, RetentionDecay decay, int chunkSize)
    {
        ChunkSizes.Check(chunkSize, nameof(chunkSize));
        var shape = CheckTokens(q, k, v, rank: 4);
        CheckHeads(decay, shape);

        using var scope = NewDisposeScope();
        long b = shape[0], h = shape[1], n = shape[2], d = shape[3];
        long c = Math.Min(ChunkSizes.Resolve(chunkSize, n), n);
        long chunks = (n + c - 1) / c;
        long padding = chunks * c - n;
        var (type, device) = (q.dtype, q.device);

        // Zero padding at the end adds nothing to any state, and its outputs are cut off below.
        Tensor Chunked(Tensor x) =>
            (padding > 0 ? nn.functional.pad(x, new long[] { 0, 0, 0, padding }) : x).view(b, h, chunks, c, d);
        var qc = Chunked(q);
        var kc = Chunked(k);
        var vc = Chunked(v);
        double scale = Scale(d); // folded into the cached mask and query decay rather than copying q

        // Inside each chunk: the parallel form, for all chunks in one batched matmul pair (in place as in Parallel).
        var output = TimesTransposed(qc, kc, new[] { b, h, chunks, c, d }).mul_(decay.CausalMask(c, scale, type, device).unsqueeze(1)).matmul(vc);
        if (chunks > 1)
        {
            // Each chunk's contribution to the state: Σ_j γ^(C−1−j) k_jᵀ v_j, shape [B, H, nC, D, D]. States add up
            // across chunks, so they do so in StateType (float32 for bfloat16 or half inputs); one rounding back follows.
            var chunkStates = (kc * decay.KeyDecay(c, type, device).unsqueeze(1)).transpose(-1, -2).matmul(vc).to(StateType(q));
            // The query decay scales rows, so it multiplies q·S rather than a copy of q.
            var queryDecay = decay.QueryDecay(c, scale, type, device);
            if (chunks > MaxChunksForCrossChunkMatmul && !Tracking(q, k, v))
                AddEnteringStatesInPlace(output, qc, chunkStates, queryDecay, decay, c);
            else
                output = output.addcmul_(qc.matmul(EnteringStates(chunkStates, decay, c).to(type)), queryDecay.unsqueeze(1), 1);
        }

        output = output.view(b, h, chunks * c, d);
        if (padding > 0) output = output.narrow(2, 0, n);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// a·bᵀ over the last two dimensions for a and b of <paramref name="shape"/>, as one 3-D bmm: libtorch's matmul of a
    /// transposed operand with more than one batch dimension is 1.6× slower (docs/benchmarks.md, "Where scoring time goes").
    /// </summary>
    private static Tensor TimesTransposed(Tensor a, Tensor b, long[] shape)
    {
        long m = shape[^2], d = shape[^1];
        var product = a.reshape(-1, m, d).bmm(b.reshape(-1, m, d).transpose(1, 2));
        return product.view(shape[..^1].Append(m).ToArray());
    }

    // Up to this many chunks, one matmul by the [H, nC, nC] cross-chunk decay is fastest; beyond it, its nC²·D²
    // cost outgrows the chunks themselves, and a scan over chunks (nC·D² work in nC small steps) wins.
    internal const int MaxChunksForCrossChunkMatmul = 32;

    /// <summary>The state entering each chunk, Σ_{c'&lt;c} γ^(C·(c−1−c')) KV_c', from the per-chunk states [B, H, nC, D, D].</summary>
    private static Tensor EnteringStates(Tensor chunkStates, RetentionDecay decay, long c)
    {
        long b = chunkStates.shape[0], h = chunkStates.shape[1], chunks = chunkStates.shape[2], d = chunkStates.shape[3];
        var (type, device) = (chunkStates.dtype, chunkStates.device);
        if (chunks <= MaxChunksForCrossChunkMatmul)
            return decay.CrossChunkDecay(c, chunks, type, device)
                .matmul(chunkStates.view(b, h, chunks, d * d))
                .view(b, h, chunks, d, d);

        var chunkDecay = decay.ChunkDecay(c, type, device).view(1, -1, 1, 1);
        var states = new Tensor[chunks];
        states[0] = zeros(new[] { b, h, d, d }, type, device);
        for (long i = 1; i < chunks; i++)
            states[i] = chunkStates.select(2, i - 1).addcmul(states[i - 1], chunkDecay, 1);
        return stack(states, 2);
    }

    /// <summary>
    /// Without autograd and with many chunks: one running state, with each chunk's term <c>(q·S)·decay</c> added to its
    /// output in place, so the entering states [B, H, nC, D, D] are never stored.
    /// </summary>
    private static void AddEnteringStatesInPlace(Tensor output, Tensor qc, Tensor chunkStates, Tensor queryDecay, RetentionDecay decay, long c)
    {
        long chunks = chunkStates.shape[2];
        var chunkDecay = decay.ChunkDecay(c, chunkStates.dtype, chunkStates.device).view(1, -1, 1, 1);
        var state = chunkStates.select(2, 0).clone();
        for (long i = 1; i < chunks; i++)
        {
            using var step = NewDisposeScope();
            if (i > 1) state.mul_(chunkDecay).add_(chunkStates.select(2, i - 1));
            output.select(2, i).addcmul_(qc.select(2, i).matmul(state.to(qc.dtype)), queryDecay, 1);
        }
    }

    private static bool Tracking(Tensor q, Tensor k, Tensor v) => is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);

    /// <inheritdoc cref="Recurrent(Tensor, Tensor, Tensor, Tensor)"/>
    internal static Tensor Recurrent(Tensor q, Tensor k, Tensor v, RetentionDecay decay)
    {
        var shape = CheckTokens(q, k, v, rank: 4);
        CheckHeads(decay, shape);

        using var scope = NewDisposeScope();
        // One state carries every token, so the whole form runs in StateType (float32 for bfloat16 or half inputs).
        var type = StateType(q);
        var gamma = decay.Gamma(type, q.device).view(1, -1, 1, 1);
        var (qs, ks, vs) = (q.to(type), k.to(type), v.to(type));
        var output = Tracking(q, k, v) ? RecurrentWithAutograd(qs, ks, vs, gamma, Scale(shape[3])) : RecurrentInPlace(qs, ks, vs, gamma, Scale(shape[3]));
        return output.to(q.dtype).MoveToOuterDisposeScope();
    }

    // Without autograd: one state updated in place and one preallocated output, so the memory beyond the
    // output is one D×D state per head, whatever N is.
    private static Tensor RecurrentInPlace(Tensor q, Tensor k, Tensor v, Tensor gamma, double scale)
    {
        long b = q.shape[0], h = q.shape[1], n = q.shape[2], d = q.shape[3];
        var result = empty(new[] { b, h, n, d }, q.dtype, q.device);
        var state = zeros(new[] { b, h, d, d }, q.dtype, q.device);
        for (long t = 0; t < n; t++)
        {
            using var step = NewDisposeScope();
            state.mul_(gamma).addcmul_(k.select(2, t).unsqueeze(-1), v.select(2, t).unsqueeze(-2), 1);
            result.select(2, t).copy_(q.select(2, t).unsqueeze(-2).matmul(state).squeeze(-2).mul_(scale));
        }
        return result;
    }

    // With autograd: every step's state stays alive for the backward pass.
    private static Tensor RecurrentWithAutograd(Tensor q, Tensor k, Tensor v, Tensor gamma, double scale)
    {
        long b = q.shape[0], h = q.shape[1], n = q.shape[2], d = q.shape[3];
        var outputs = new Tensor[n];
        var state = zeros(new[] { b, h, d, d }, q.dtype, q.device);
        for (long t = 0; t < n; t++)
        {
            using var step = NewDisposeScope();
            var (output, next) = Step(state, q.select(2, t), k.select(2, t), v.select(2, t), gamma, scale);
            outputs[t] = output.MoveToOuterDisposeScope();
            var previous = state;
            state = next.MoveToOuterDisposeScope();
            previous.Dispose(); // autograd holds its own reference
        }
        return stack(outputs, 2);
    }

    private static (Tensor Output, Tensor State) Step(Tensor state, Tensor q, Tensor k, Tensor v, Tensor gamma, double scale)
    {
        var next = gamma * state + k.unsqueeze(-1) * v.unsqueeze(-2);
        var output = (q * scale).unsqueeze(-2).matmul(next).squeeze(-2);
        return (output, next);
    }

    internal static double Scale(Tensor q) => Scale(q.shape[^1]);

    private static double Scale(long d) => 1.0 / Math.Sqrt(d);

    /// <summary>The type recurrent states accumulate in: float32 for bfloat16 or half tokens, else the tokens' own.</summary>
    internal static ScalarType StateType(Tensor q) => q.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : q.dtype;

    private static RetentionDecay DecayFor(Tensor gamma, Tensor q)
    {
        ArgumentNullException.ThrowIfNull(q, nameof(q));
        return RetentionDecay.FromTensor(gamma);
    }

    /// <summary>Checks q, k and v and returns q's shape (every tensor's shape is read once: each read is a native call).</summary>
    internal static long[] CheckTokens(Tensor q, Tensor k, Tensor v, int rank)
    {
        string layout = rank == 4 ? "[B, H, N, D]" : "[B, H, D]";
        var shapes = new long[3][];
        int i = 0;
        foreach (var (tensor, name) in new[] { (q, nameof(q)), (k, nameof(k)), (v, nameof(v)) })
        {
            ArgumentNullException.ThrowIfNull(tensor, name);
            var shape = shapes[i++] = tensor.shape;
            if (shape.Length != rank)
                throw new ArgumentException($"{name} must have shape {layout}, but its shape is {ShapeOf(shape)}.", name);
            if (!tensor.is_floating_point())
                throw new ArgumentException($"{name} must be a floating-point tensor, but its dtype is {tensor.dtype}.", name);
        }
        if (!shapes[1].SequenceEqual(shapes[0]))
            throw new ArgumentException($"k must have the shape of q, {ShapeOf(shapes[0])}, but its shape is {ShapeOf(shapes[1])}.", nameof(k));
        if (!shapes[2].SequenceEqual(shapes[0]))
            throw new ArgumentException($"v must have the shape of q, {ShapeOf(shapes[0])}, but its shape is {ShapeOf(shapes[2])}.", nameof(v));
        if (k.dtype != q.dtype || v.dtype != q.dtype)
            throw new ArgumentException($"q, k and v must share one dtype, but they are {q.dtype}, {k.dtype} and {v.dtype}.", nameof(k));
        var (device, kDevice, vDevice) = (q.device, k.device, v.device);
        if (kDevice.type != device.type || kDevice.index != device.index || vDevice.type != device.type || vDevice.index != device.index)
            throw new ArgumentException($"q, k and v must be on one device, but they are on {device}, {kDevice} and {vDevice}.", nameof(k));
        return shapes[0];
    }

    private static void CheckHeads(RetentionDecay decay, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(decay, nameof(decay));
        if (decay.Heads != shape[1])
            throw new ArgumentException($"gamma must have one decay per head, shape [{shape[1]}], but it has {decay.Heads}.", "gamma");
    }

    // tokens: the shape of q, [B, H, D] or [B, H, N, D]; the state must be [B, H, D, D].
    private static void CheckState(Tensor state, long[] tokens)
    {
        ArgumentNullException.ThrowIfNull(state, nameof(state));
        long[] expected = { tokens[0], tokens[1], tokens[^1], tokens[^1] };
        if (!state.shape.SequenceEqual(expected))
            throw new ArgumentException($"state must have shape [{string.Join(", ", expected)}], but its shape is {ShapeOf(state)}.", nameof(state));
    }

    internal static string ShapeOf(Tensor t) => ShapeOf(t.shape);

    private static string ShapeOf(long[] shape) => $"[{string.Join(", ", shape)}]";
}
