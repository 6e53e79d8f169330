namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// How retention is computed: the form, and for <see cref="RetentionMode.Chunkwise"/> the chunk size. Every form gives
/// the same result. It is checked once, here, and passed as it is down to every retention layer.
/// The default value is <see cref="RetentionMode.Parallel"/> with <see cref="ChunkSizes.Auto"/>.
/// </summary>
public readonly record struct RetentionSettings
{
    /// <summary>The settings; throws <see cref="ArgumentOutOfRangeException"/> naming a mode or chunk size out of range.</summary>
    /// <param name="mode">The form retention is computed in.</param>
    /// <param name="chunkSize">Tokens per chunk in chunkwise form; <see cref="ChunkSizes.Auto"/> (0) picks it from the token count.</param>
    public RetentionSettings(RetentionMode mode, int chunkSize = ChunkSizes.Auto)
    {
        if (!Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"mode must be Parallel, Recurrent or Chunkwise, but it is {mode}.");
        Mode = mode;
        ChunkSize = ChunkSizes.Check(chunkSize, nameof(chunkSize));
    }

    /// <summary>The form retention is computed in.</summary>
    public RetentionMode Mode { get; }

    /// <summary>Tokens per chunk in chunkwise form; <see cref="ChunkSizes.Auto"/> (0) picks it from the token count.</summary>
    public int ChunkSize { get; }

    /// <summary>The patch grid the tokens came from (the model sets it), for a 2-D decay; the [class] token is not on it.</summary>
    internal (long Rows, long Columns) Grid { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Mode == RetentionMode.Chunkwise
        ? $"Chunkwise (chunk size {(ChunkSize == ChunkSizes.Auto ? "automatic" : ChunkSize)})"
        : Mode.ToString();
}
