namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>Which patches a query sees in <see cref="SpatialRetention"/>: D[n, m] = γ^(|Δrow| + |Δcolumn|) over them, 0 elsewhere.</summary>
public enum SpatialDecayShape
{
    /// <summary>Every patch of the grid.</summary>
    Bidirectional,

    /// <summary>The upper-left quadrant: patches in rows above and columns to the left, both inclusive. It streams in raster order.</summary>
    CausalQuadrant,
}
