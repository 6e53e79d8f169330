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
    private Tensor? _kept;      // rows [_keptFirst, _decoder.RowsRead) as [C, rows, Width]; null when there are none
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

    /// <summary>Pixel rows [first, first + count) as model input [1, C, count, Width]; reads go down the image.</summary>
    public Tensor Rows(long first, long count)
    {
        if (first < _keptFirst || first + count > Height)
            throw new InvalidOperationException($"Rows {first} to {first + count - 1} of '{_name}' were asked for, but rows before {_keptFirst} are gone and the image has {Height}.");
        using var scope = NewDisposeScope();
        long decoded = _decoder.RowsRead;
        var held = decoded < first + count
            ? (_kept is null ? Decode((int)(first + count - decoded)) : cat(new[] { _kept, Decode((int)(first + count - decoded)) }, 1))
            : _kept!;
        // Rows above `first` are never asked for again.
        var kept = held.narrow(1, first - _keptFirst, _decoder.RowsRead - first).contiguous().DetachFromDisposeScope();
        _kept?.Dispose();
        (_kept, _keptFirst) = (kept, first);
        return _kept.narrow(1, 0, count).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>The next <paramref name="lines"/> pixel rows as [C, lines, Width].</summary>
    private Tensor Decode(int lines)
    {
        var info = _decoder.Target;
        var pixels = new byte[(long)info.RowBytes * lines];
        _decoder.Read(pixels, lines);
        return _planes.From(pixels, lines, info.Width, bgra: true).narrow(2, 0, Width);
    }

    public void Dispose()
    {
        _kept?.Dispose();
        _decoder.Dispose();
    }
}
