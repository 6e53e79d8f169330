using Microsoft.ML.Retention.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>
/// An encoded image (JPEG, PNG, or another format <see cref="ImageRowDecoder"/> reads row by row) read top to bottom, a
/// few pixel rows at a time, as model input at its own resolution: the decoded image is never held whole. Rows past the
/// last multiple of the patch size, and columns past the last multiple in width, are left out. The rows just read stay
/// until the next read starts below them, so a band can be read again with a margin above it.
/// </summary>
internal sealed class StreamingImageSource : IDisposable
{
    private readonly string _name;
    private readonly ImageRowDecoder _decoder;
    private readonly ImagePlanes _planes;
    private readonly byte[] _rows; // rows [_keptFirst, _decoder.RowsRead) as decoded, 4 bytes a pixel, from its start; allocated once
    private readonly int _rowBytes;
    private long _keptFirst;

    /// <param name="stream">The encoded image.</param>
    /// <param name="name">What errors call it.</param>
    /// <param name="config">The model's input and preprocessing.</param>
    /// <param name="patchSize">The model's patch size.</param>
    /// <param name="bandTokens">The most tokens a band holds: with the width, how many pixel rows one read asks for, checked against <see cref="ViRLimits.MaxImagePixels"/>.</param>
    public StreamingImageSource(Stream stream, string name, IVisionBackboneConfig config, int patchSize, int bandTokens)
    {
        _name = name;
        _planes = new ImagePlanes(config);
        _decoder = ImageRowDecoder.Open(stream, name);
        try
        {
            var info = _decoder.Target;
            // A band of rows is read with up to one patch row more on each side (the convolutional stem's margin).
            long bandPixelRows = (VisionTransformerBase.StreamingBandRows(info.Width / patchSize, bandTokens) + 2) * patchSize;
            if ((long)info.Width * bandPixelRows > ViRLimits.MaxImagePixels)
                throw new InvalidDataException($"'{name}' is {info.Width} pixels wide: a band of {bandPixelRows} rows would hold {(long)info.Width * bandPixelRows:N0} pixels, " +
                    $"more than ViRLimits.MaxImagePixels ({ViRLimits.MaxImagePixels:N0}). Stream it in fewer tokens per band, or raise the limit.");
            Height = info.Height / patchSize * patchSize;
            Width = info.Width / patchSize * patchSize;
            if (Height == 0 || Width == 0)
                throw new InvalidDataException($"'{name}' is {info.Width}×{info.Height}, smaller than one {patchSize}×{patchSize} patch.");
            _rowBytes = info.RowBytes;
            _rows = new byte[checked((int)(Math.Min(bandPixelRows, info.Height) * _rowBytes))];
        }
        catch
        {
            _decoder.Dispose();
            throw;
        }
    }

    /// <summary>The rows read, a multiple of the patch size.</summary>
    public long Height { get; }

    /// <summary>The columns read, a multiple of the patch size.</summary>
    public long Width { get; }

    /// <summary>
    /// Pixel rows [first, first + count) and columns [column, column + columns) as model input [1, C, count, columns];
    /// reads go down the image. Rows are kept as decoded (4 bytes a pixel) in one buffer made for a band, and only the
    /// window asked for becomes model input, so a band of a very wide image costs its own pixels, not its rows'.
    /// </summary>
    public Tensor Window(long first, long count, long column, long columns)
    {
        if (first < _keptFirst || first + count > Height)
            throw new InvalidOperationException($"Rows {first} to {first + count - 1} of '{_name}' were asked for, but rows before {_keptFirst} are gone and the image has {Height}.");
        long decoded = _decoder.RowsRead;
        if (decoded < first + count)
        {
            if (decoded < first) // reads never skip rows
                throw new InvalidOperationException($"Rows {first} to {first + count - 1} of '{_name}' were asked for past rows never read (from {decoded}).");
            if (count * _rowBytes > _rows.Length)
                throw new InvalidOperationException($"Rows {first} to {first + count - 1} of '{_name}' are more than a band holds ({_rows.Length / _rowBytes} rows).");
            // Rows above `first` are never asked for again: the ones still needed move to the buffer's start.
            long keep = decoded - first;
            Buffer.BlockCopy(_rows, (int)((first - _keptFirst) * _rowBytes), _rows, 0, (int)(keep * _rowBytes));
            _keptFirst = first;
            _decoder.Read(_rows, (int)(keep * _rowBytes), (int)(first + count - decoded));
        }
        var window = new byte[count * columns * 4];
        for (long r = 0; r < count; r++)
            Buffer.BlockCopy(_rows, (int)((first - _keptFirst + r) * _rowBytes + column * 4), window, (int)(r * columns * 4), (int)(columns * 4));
        using var scope = NewDisposeScope();
        return _planes.From(tensor(window, new[] { count, columns, 4L }), bgra: true).unsqueeze(0).MoveToOuterDisposeScope();
    }

    public void Dispose() => _decoder.Dispose();
}
