using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// The decays of the causal quadrant's tiled form (<see cref="SpatialRetention.Tiled"/>) for one grid and tile size,
/// float64 with heads first, each built from ln γ in one step so no power is rounded twice. Row i and column j are
/// positions inside a tile; a row band holds <see cref="TileRows"/> patch rows, a column band <see cref="TileColumns"/>
/// columns. The library's form and the ONNX export read the same tensors; <see cref="For"/> keeps them per grid.
/// </summary>
internal sealed class TileDecays
{
    private const int MaxCached = 64;
    private static readonly ConcurrentDictionary<string, TileDecays> Cached = new();

    /// <summary>
    /// The decays for these γ, grid and tiles in <paramref name="type"/> on <paramref name="device"/>, built once and kept
    /// (outside every dispose scope; at most 64 sets, then the cache starts over).
    /// </summary>
    public static TileDecays For(IReadOnlyList<double> gammas, long rows, long columns, long tileRows, long tileColumns, ScalarType type, Device device)
    {
        string key = $"{string.Join(",", gammas.Select(BitConverter.DoubleToInt64Bits))}|{rows}x{columns}|{tileRows}x{tileColumns}|{type}|{device}";
        if (Cached.TryGetValue(key, out var hit)) return hit;
        TileDecays built;
        using (NewDisposeScope())
        using (no_grad())
        using (inference_mode(false))
            built = new TileDecays(tensor(gammas.ToArray()).log(), rows, columns, tileRows, tileColumns, t => t.to(type, device).contiguous().DetachFromDisposeScope());
        if (Cached.Count >= MaxCached) Cached.Clear(); // dropped sets are finalized by the GC: a caller may still hold one
        return Cached.GetOrAdd(key, built);
    }

    /// <summary>Builds the decays for a rows × columns grid in tiles of at most <paramref name="tileRows"/> × <paramref name="tileColumns"/> patches.</summary>
    /// <param name="logGamma">ln γ of each head, [H].</param>
    /// <param name="rows">Patch rows of the grid.</param>
    /// <param name="columns">Patch columns of the grid.</param>
    /// <param name="tileRows">Patch rows of a tile (the grid's, if fewer).</param>
    /// <param name="tileColumns">Patch columns of a tile (the grid's, if fewer).</param>
    /// <param name="keep">Applied to each tensor kept.</param>
    private TileDecays(Tensor logGamma, long rows, long columns, long tileRows, long tileColumns, Func<Tensor, Tensor> keep)
    {
        var lg = logGamma.to(ScalarType.Float64);
        long h = lg.shape[0];
        TileRows = Math.Min(tileRows, rows);
        TileColumns = Math.Min(tileColumns, columns);
        RowBands = (rows + TileRows - 1) / TileRows;
        ColumnBands = (columns + TileColumns - 1) / TileColumns;
        Tensor Powers(long from, long count) => (lg.unsqueeze(1) * arange(from, from + count, ScalarType.Float64, lg.device).unsqueeze(0)).exp_(); // [H, count]
        var (down, across) = (Causal(lg, TileRows, 1, 0), Causal(lg, TileColumns, 1, 0));
        var (fromRowStart, fromColumnStart) = (Powers(1, TileRows), Powers(1, TileColumns));
        Down = keep(down);
        Across = keep(across);
        Inside = keep((down.view(h, TileRows, 1, TileRows, 1) * across.view(h, 1, TileColumns, 1, TileColumns)).reshape(h, TileRows * TileColumns, TileRows * TileColumns));
        ToColumnEnd = keep(Powers(0, TileColumns).flip(1));
        ToRowEnd = keep(Powers(0, TileRows).flip(1));
        FromColumnStart = keep(fromColumnStart);
        FromRowStart = keep(fromRowStart);
        FromCorner = keep(fromRowStart.view(h, TileRows, 1) * fromColumnStart.view(h, 1, TileColumns));
        AcrossBands = keep(Causal(lg, ColumnBands, TileColumns, 1));
        DownBands = keep(Causal(lg, RowBands, TileRows, 1));
    }

    public long TileRows { get; }
    public long TileColumns { get; }
    public long RowBands { get; }
    public long ColumnBands { get; }

    /// <summary>[H, tr, tr]: γ^(i − i') for i' ≤ i: down a tile's rows.</summary>
    public Tensor Down { get; }

    /// <summary>[H, tc, tc]: γ^(j − j') for j' ≤ j: along a tile's columns.</summary>
    public Tensor Across { get; }

    /// <summary>[H, tr·tc, tr·tc]: the quadrant decay between the patches of one tile.</summary>
    public Tensor Inside { get; }

    /// <summary>[H, tc]: γ^(tc − 1 − j), from column j to the band's last column.</summary>
    public Tensor ToColumnEnd { get; }

    /// <summary>[H, tr]: γ^(tr − 1 − i), from row i to the band's last row.</summary>
    public Tensor ToRowEnd { get; }

    /// <summary>[H, tc]: γ^(j + 1), from the previous band's last column to column j.</summary>
    public Tensor FromColumnStart { get; }

    /// <summary>[H, tr]: γ^(i + 1), from the previous band's last row to row i.</summary>
    public Tensor FromRowStart { get; }

    /// <summary>[H, tr, tc]: γ^(i + 1 + j + 1), from the previous tiles' corner to patch (i, j).</summary>
    public Tensor FromCorner { get; }

    /// <summary>[H, nk, nk]: γ^(tc·(K − 1 − K')) for K' &lt; K: how column band K' reaches the last column before band K.</summary>
    public Tensor AcrossBands { get; }

    /// <summary>[H, ni, ni]: γ^(tr·(I − 1 − I')) for I' &lt; I: how row band I' reaches the last row before band I.</summary>
    public Tensor DownBands { get; }

    // [H, n, n]: γ^(step·(i − i' − offset)) where i' ≤ i − offset, else 0.
    private static Tensor Causal(Tensor logGamma, long n, long step, long offset)
    {
        var i = arange(n, ScalarType.Float64, logGamma.device);
        var distance = i.unsqueeze(1) - i.unsqueeze(0) - offset;
        return (distance.clamp_min(0).mul(step).unsqueeze(0) * logGamma.view(-1, 1, 1)).exp_().mul_(distance.ge(0).to(ScalarType.Float64));
    }
}
