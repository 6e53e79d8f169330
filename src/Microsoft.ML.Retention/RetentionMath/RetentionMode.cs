namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>The three exact, interchangeable ways to compute retention.</summary>
public enum RetentionMode
{
    /// <summary>All tokens at once, <c>(Q Kᵀ ⊙ D) V</c>: quadratic in tokens; best for short sequences and training.</summary>
    Parallel,

    /// <summary>One token at a time through a D×D state per head: constant memory per step.</summary>
    Recurrent,

    /// <summary>Parallel inside chunks, recurrent across chunks: linear in tokens.</summary>
    Chunkwise,
}
