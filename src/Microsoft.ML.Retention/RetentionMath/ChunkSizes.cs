namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>Chunk sizes for <see cref="RetentionMode.Chunkwise"/> retention.</summary>
public static class ChunkSizes
{
    /// <summary>Pass as a chunk size to pick one from the sequence length with <see cref="For"/>.</summary>
    public const int Auto = 0;

    /// <summary>
    /// The chunk size the chunk-size benchmark supports (docs/benchmarks.md): up to 256 tokens, one chunk
    /// (the parallel form costs no more there); beyond, 64-token chunks, which were fastest or within 5 % of
    /// the fastest from 577 to 16,385 tokens, and need less memory for chunk states than 32.
    /// </summary>
    public static int For(long tokens)
    {
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"tokens must be at least 1, but it is {tokens}.");
        return tokens <= SingleChunkLimit ? (int)tokens : LongSequenceChunk;
    }

    private const int SingleChunkLimit = 256, LongSequenceChunk = 64;

    /// <summary>The chunk size used for <paramref name="tokens"/> tokens: <paramref name="chunkSize"/>, or <see cref="For"/> the length when it is <see cref="Auto"/>.</summary>
    public static int Resolve(int chunkSize, long tokens) => chunkSize == Auto ? For(tokens) : chunkSize;

    /// <summary>Throws unless <paramref name="chunkSize"/> is <see cref="Auto"/> or positive.</summary>
    internal static int Check(int chunkSize, string name) => chunkSize >= 0 ? chunkSize
        : throw new ArgumentOutOfRangeException(name, chunkSize, $"{name} must be ChunkSizes.{nameof(Auto)} (0) or at least 1, but it is {chunkSize}.");
}
