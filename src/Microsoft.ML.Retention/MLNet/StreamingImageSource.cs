using System.Runtime.InteropServices;
using Microsoft.ML.Retention.Models;
using SkiaSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>
/// An encoded image (JPEG, or another format SkiaSharp decodes line by line; not PNG) read top to bottom, a few pixel rows
/// at a time, as model input at its own resolution: the decoded image is never held whole. Rows past the last multiple
/// of the patch size, and columns past the last multiple in width, are left out. The rows just read stay until the
/// next read starts below them, so a band can be read again with a margin above it.
/// </summary>
internal sealed class StreamingImageSource : IDisposable
{
    private readonly string _name;
    private readonly SKCodec _codec;
    private readonly ImagePlanes _planes;
    private readonly byte[] _line;
    private GCHandle _pinned; // the decoder writes each line into _line
    private readonly int _fullWidth;
    private Tensor? _kept;      // rows [_keptFirst, _decoded) as [C, rows, Width]; null when there are none
    private long _keptFirst;
    private long _decoded;

    /// <param name="stream">The encoded image.</param>
    /// <param name="name">What errors call it.</param>
    /// <param name="config">The model's input and preprocessing.</param>
    /// <param name="patchSize">The model's patch size.</param>
    /// <param name="bandPixelRows">The most pixel rows one read asks for, checked against <see cref="ViRLimits.MaxImagePixels"/> with the width.</param>
    public StreamingImageSource(Stream stream, string name, IVisionBackboneConfig config, int patchSize, long bandPixelRows)
    {
        _name = name;
        _planes = new ImagePlanes(config);
        _codec = SKCodec.Create(stream, out var created)
            ?? throw new InvalidDataException($"'{name}' could not be decoded: it is in no format SkiaSharp reads ({created}).");
        try
        {
            var info = _codec.Info;
            if ((long)info.Width * bandPixelRows > ViRLimits.MaxImagePixels)
                throw new InvalidDataException($"'{name}' is {info.Width} pixels wide: a band of {bandPixelRows} rows would hold {(long)info.Width * bandPixelRows:N0} pixels, " +
                    $"more than ViRLimits.MaxImagePixels ({ViRLimits.MaxImagePixels:N0}). Stream it in fewer rows per band, or raise the limit.");
            _fullWidth = info.Width;
            Height = info.Height / patchSize * patchSize;
            Width = info.Width / patchSize * patchSize;
            if (Height == 0 || Width == 0)
                throw new InvalidDataException($"'{name}' is {info.Width}×{info.Height}, smaller than one {patchSize}×{patchSize} patch.");
            var target = new SKImageInfo(info.Width, info.Height, SKColorType.Bgra8888,
                info.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Premul);
            var started = _codec.StartScanlineDecode(target);
            if (started != SKCodecResult.Success || _codec.ScanlineOrder != SKCodecScanlineOrder.TopDown)
                throw new InvalidDataException($"'{name}' ({_codec.EncodedFormat}, {info.Width}×{info.Height}) cannot be decoded row by row ({started}, " +
                    $"{_codec.ScanlineOrder} order): SkiaSharp decodes JPEG that way, but not PNG. Convert the image to JPEG, or score it through Transform.");
            _line = new byte[info.Width * 4];
            _pinned = GCHandle.Alloc(_line, GCHandleType.Pinned);
        }
        catch
        {
            _codec.Dispose();
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
        var held = _decoded < first + count
            ? (_kept is null ? Decode(first + count - _decoded) : cat(new[] { _kept, Decode(first + count - _decoded) }, 1))
            : _kept!;
        // Rows above `first` are never asked for again.
        var kept = held.narrow(1, first - _keptFirst, _decoded - first).contiguous().DetachFromDisposeScope();
        _kept?.Dispose();
        (_kept, _keptFirst) = (kept, first);
        return _kept.narrow(1, 0, count).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>The next <paramref name="lines"/> pixel rows as [C, lines, Width].</summary>
    private Tensor Decode(long lines)
    {
        var pixels = new byte[_line.Length * lines];
        for (long i = 0; i < lines; i++, _decoded++)
        {
            if (_codec.GetScanlines(_pinned.AddrOfPinnedObject(), 1, _line.Length) != 1)
                throw new InvalidDataException($"'{_name}' is truncated or damaged: decoding stopped at pixel row {_decoded} of {_codec.Info.Height}.");
            Buffer.BlockCopy(_line, 0, pixels, (int)(i * _line.Length), _line.Length);
        }
        return _planes.From(pixels, (int)lines, _fullWidth, bgra: true).narrow(2, 0, Width);
    }

    public void Dispose()
    {
        _kept?.Dispose();
        _codec.Dispose();
        if (_pinned.IsAllocated) _pinned.Free();
    }
}
