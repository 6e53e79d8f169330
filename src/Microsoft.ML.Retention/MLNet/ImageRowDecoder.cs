using System.Runtime.InteropServices;
using Microsoft.ML.Retention.Native;
using SkiaSharp;

namespace Microsoft.ML.Retention;

/// <summary>
/// SkiaSharp's decoder for one encoded image, giving BGRA pixel rows top to bottom without ever holding the whole image.
/// JPEG (and any format SkiaSharp reads by scanlines, top down) is read a line at a time. PNG has no scanline decoder in
/// SkiaSharp; its incremental decoder is fed the file a little at a time and writes rows into a
/// <see cref="ForwardOnlyBuffer"/> whose rows are given back once read, so memory holds the rows in flight.
/// </summary>
internal abstract class ImageRowDecoder : IDisposable
{
    private readonly SKCodec _codec;

    private ImageRowDecoder(SKCodec codec, string name)
    {
        _codec = codec;
        Name = name;
        var info = codec.Info;
        Target = new SKImageInfo(info.Width, info.Height, SKColorType.Bgra8888,
            info.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Premul);
    }

    public string Name { get; }

    /// <summary>The decoded layout: the image's size, 4 bytes a pixel.</summary>
    public SKImageInfo Target { get; }

    /// <summary>Rows decoded so far.</summary>
    public long RowsRead { get; protected set; }

    protected SKCodec Codec => _codec;

    /// <summary>Opens <paramref name="stream"/>, which the decoder reads from its current position and does not dispose.</summary>
    public static ImageRowDecoder Open(Stream stream, string name)
    {
        var metered = new MeteredStream(stream);
        var codec = SKCodec.Create(metered, out var created)
            ?? throw new InvalidDataException($"'{name}' could not be decoded: it is in no format SkiaSharp reads ({created}).");
        try
        {
            if (codec.EncodedFormat == SKEncodedImageFormat.Png) return new IncrementalPng(codec, name, metered);
            return new Scanlines(codec, name);
        }
        catch
        {
            codec.Dispose();
            throw;
        }
    }

    /// <summary>Writes the next <paramref name="lines"/> rows into <paramref name="destination"/> from <paramref name="offset"/>, one row every <c>Target.RowBytes</c>.</summary>
    /// <exception cref="InvalidDataException">The image ends or is damaged first; the message names the row.</exception>
    public abstract void Read(byte[] destination, int offset, int lines);

    protected InvalidDataException Truncated(long row, SKCodecResult result) =>
        new($"'{Name}' is truncated or damaged: decoding stopped at pixel row {row} of {Target.Height} ({result}).");

    public virtual void Dispose() => _codec.Dispose();

    private sealed class Scanlines : ImageRowDecoder
    {
        public Scanlines(SKCodec codec, string name) : base(codec, name)
        {
            var started = codec.StartScanlineDecode(Target);
            if (started != SKCodecResult.Success || codec.ScanlineOrder != SKCodecScanlineOrder.TopDown)
                throw new InvalidDataException($"'{name}' ({codec.EncodedFormat}, {Target.Width}×{Target.Height}) cannot be decoded row by row " +
                    $"({started}, {codec.ScanlineOrder} order). JPEG and PNG can: convert the image, or score it through Transform.");
        }

        public override void Read(byte[] destination, int offset, int lines)
        {
            var pinned = GCHandle.Alloc(destination, GCHandleType.Pinned);
            int read;
            try
            {
                read = Codec.GetScanlines(pinned.AddrOfPinnedObject() + offset, lines, Target.RowBytes);
            }
            finally
            {
                pinned.Free();
            }
            if (read != lines) throw Truncated(RowsRead + Math.Max(read, 0), SKCodecResult.IncompleteInput);
            RowsRead += lines;
        }
    }

    private sealed class IncrementalPng : ImageRowDecoder
    {
        private const int FeedBytes = 16 << 10; // the file given per step; at zlib's 1032:1 at most about 16 MiB of rows
        private readonly MeteredStream _input;
        private readonly ForwardOnlyBuffer _rows;
        private long _ready; // rows decoded into _rows

        public IncrementalPng(SKCodec codec, string name, MeteredStream input) : base(codec, name)
        {
            // Adam7 rows are finished only by the last pass, so an interlaced image would be held whole.
            if (input.Header.Length > 28 && input.Header[28] != 0)
                throw new InvalidDataException($"'{name}' is an interlaced (Adam7) PNG, {Target.Width}×{Target.Height}: its rows are complete only " +
                    "at the end of the file, so it cannot be read row by row. Save it without interlacing, or score it through Transform.");
            _input = input;
            _rows = new ForwardOnlyBuffer((long)Target.RowBytes * Target.Height);
            try
            {
                _input.Limit = _input.Position;
                var started = codec.StartIncrementalDecode(Target, _rows.Pointer, Target.RowBytes, new SKCodecOptions());
                if (started != SKCodecResult.Success)
                    throw new InvalidDataException($"'{name}' (PNG, {Target.Width}×{Target.Height}) could not start decoding ({started}).");
            }
            catch
            {
                _rows.Dispose();
                throw;
            }
        }

        public override void Read(byte[] destination, int offset, int lines)
        {
            int rowBytes = Target.RowBytes;
            while (_ready < RowsRead + lines) Feed();
            for (int i = 0; i < lines; i++, RowsRead++)
                Marshal.Copy(_rows.Pointer + (nint)(RowsRead * rowBytes), destination, offset + i * rowBytes, rowBytes);
            _rows.ReleaseBefore(RowsRead * rowBytes);
        }

        private void Feed()
        {
            _input.Limit += FeedBytes;
            var result = Codec.IncrementalDecode(out int rows);
            if (result == SKCodecResult.Success) _ready = Target.Height;
            else if (result == SKCodecResult.IncompleteInput && !_input.Ended) _ready = Math.Max(_ready, rows);
            else throw Truncated(Math.Max(_ready, rows), result);
        }

        public override void Dispose()
        {
            base.Dispose();
            _rows.Dispose();
        }
    }

    /// <summary>
    /// The encoded image as the decoder sees it: no further than <see cref="Limit"/>, so the incremental decoder decodes
    /// a few rows per call; with its first bytes kept (the PNG header).
    /// </summary>
    private sealed class MeteredStream(Stream inner) : Stream
    {
        private readonly long _start = inner.CanSeek ? inner.Position : 0; // positions count from where the image starts
        private long _position;
        private readonly byte[] _header = new byte[64];
        private int _headerLength;

        public long Limit { get; set; } = long.MaxValue;

        /// <summary>True once the file ended while the decoder could read further.</summary>
        public bool Ended { get; private set; }

        public ReadOnlySpan<byte> Header => _header.AsSpan(0, _headerLength);

        public override int Read(byte[] buffer, int offset, int count)
        {
            long allowed = Math.Min(count, Limit - _position);
            if (allowed <= 0) return 0;
            int read = inner.Read(buffer, offset, (int)allowed);
            if (read == 0) Ended = true;
            int kept = (int)Math.Clamp(_header.Length - _position, 0, read);
            buffer.AsSpan(offset, kept).CopyTo(_header.AsSpan((int)Math.Min(_position, _header.Length)));
            _headerLength = Math.Max(_headerLength, (int)Math.Min(_position + kept, _header.Length));
            _position += read;
            return read;
        }

        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length - _start;

        public override long Position
        {
            get => _position;
            set => Seek(value, SeekOrigin.Begin);
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            _position = inner.Seek(origin == SeekOrigin.Begin ? _start + offset : offset, origin) - _start;
            return _position;
        }

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
