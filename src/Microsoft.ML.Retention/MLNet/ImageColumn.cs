using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>The kinds of input column the ViR trainer and transformer accept.</summary>
internal enum ImageColumnKind
{
    /// <summary>An <see cref="MLImage"/> column, from LoadImages.</summary>
    Image,

    /// <summary>Encoded image bytes (PNG, JPEG, ...), from LoadRawImageBytes or a byte[] field.</summary>
    EncodedBytes,

    /// <summary>A float vector of known size laid out as [C, H, W], from ExtractPixels.</summary>
    Pixels,

    /// <summary>Image file paths (text): read as LoadImages reads them, or streamed from the file in the recurrent form.</summary>
    Path,
}

/// <summary>
/// Reads one input column as model-ready image tensors [C, H, W] at the model's resolution: images go through the
/// model's <see cref="ImagePreprocessing"/>; pixel vectors are taken as given and only resized.
/// </summary>
internal sealed class ImageColumn
{
    private readonly IVisionBackboneConfig _config;
    private readonly long[] _pixelShape;
    private readonly ImagePlanes _planes;

    private ImageColumn(string name, int index, ImageColumnKind kind, IVisionBackboneConfig config, long[] pixelShape, IReadOnlyList<DataViewSchema.Column> context)
    {
        Name = name;
        Index = index;
        Kind = kind;
        _config = config;
        _pixelShape = pixelShape;
        _planes = new ImagePlanes(config);
        Context = context;
    }

    public string Name { get; }

    public int Index { get; }

    public ImageColumnKind Kind { get; }

    /// <summary>
    /// The visible text columns beside the images (an image path, typically), quoted when a row's image can't be read.
    /// Cursors that read images activate them too.
    /// </summary>
    public IReadOnlyList<DataViewSchema.Column> Context { get; }

    /// <summary>The image column and its context columns, for opening a cursor.</summary>
    public IEnumerable<DataViewSchema.Column> ColumnsToRead(DataViewSchema schema) => Context.Prepend(schema[Index]);

    /// <summary>Classifies a column type, or explains why it is not an image column.</summary>
    public static ImageColumnKind KindOf(string name, DataViewType type)
    {
        if (type is ImageDataViewType) return ImageColumnKind.Image;
        if (type is TextDataViewType) return ImageColumnKind.Path;
        if (type is VectorDataViewType { ItemType: var item } vector)
        {
            if (item == NumberDataViewType.Byte) return ImageColumnKind.EncodedBytes;
            if (item == NumberDataViewType.Single && vector.IsKnownSize) return ImageColumnKind.Pixels;
        }
        throw new ArgumentOutOfRangeException(nameof(name), type,
            $"Column '{name}' must hold images: an image (LoadImages), encoded image bytes (LoadRawImageBytes or byte[]), " +
            $"a float vector of known size [C, H, W] (ExtractPixels), or image file paths (text); but its type is {type}.");
    }

    /// <summary>Finds and checks the column in <paramref name="schema"/> for a model of shape <paramref name="config"/>.</summary>
    public static ImageColumn Bind(DataViewSchema schema, string name, IVisionBackboneConfig config)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), name,
                $"Image column '{name}' was not found in the input; the columns are: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
        var kind = KindOf(name, column.Type);
        long[] pixelShape = kind == ImageColumnKind.Pixels ? PixelShape(name, (VectorDataViewType)column.Type, config) : Array.Empty<long>();
        var context = schema.Where(c => !c.IsHidden && c.Index != column.Index && c.Type is TextDataViewType).ToList();
        return new ImageColumn(name, column.Index, kind, config, pixelShape, context);
    }

    /// <summary>The [C, H, W] layout of a pixel-vector column: its own three dimensions, or the model's shape.</summary>
    public static long[] PixelShape(string name, VectorDataViewType type, IVisionBackboneConfig config)
    {
        long[] shape = type.Dimensions.Length == 3
            ? type.Dimensions.Select(d => (long)d).ToArray()
            : new long[] { config.Channels, config.ImageHeight, config.ImageWidth };
        if (shape[0] != config.Channels && LooksInterleaved(shape))
            throw InterleavedPixels(name, shape, config.Channels);
        if (shape.Aggregate(1L, (a, b) => a * b) != type.Size)
            throw new ArgumentOutOfRangeException(nameof(name), type.Size,
                $"Column '{name}' must be a float vector of {shape[0]}×{shape[1]}×{shape[2]} = {shape[0] * shape[1] * shape[2]} values " +
                $"([C, H, W] for this model), but it has {type.Size}.");
        if (shape[0] != config.Channels)
            throw new ArgumentOutOfRangeException(nameof(name), shape[0],
                $"Column '{name}' has {shape[0]} channels, but the model expects {config.Channels}.");
        return shape;
    }

    /// <summary>
    /// ExtractPixels(interleavePixelColors: true) writes [H, W, C]; read as [C, H, W] it would be an image of H channels.
    /// A first dimension that is no channel count (1, 3 or 4) over a last one that is marks that layout.
    /// </summary>
    public static bool LooksInterleaved(long[] shape) => shape[0] is not (1 or 3 or 4) && shape[2] is 1 or 3 or 4;

    public static ArgumentOutOfRangeException InterleavedPixels(string name, long[] shape, int? channels) =>
        new(nameof(name), $"[{string.Join(", ", shape)}]",
            $"Column '{name}' is a float vector of shape [{string.Join(", ", shape)}], which looks like interleaved [H, W, C] pixels, " +
            $"but the model reads planar [C, H, W] pixels{(channels is { } c ? $" with {c} channels" : " with 1, 3 or 4 channels")}. " +
            "Extract them with ExtractPixels(..., interleavePixelColors: false), which is the default" +
            (channels is null ? $", or set Options.Architecture's Channels to {shape[0]} (for example ViRConfig.Tiny or RmtConfig.Tiny with {{ Channels = {shape[0]} }}) if the vector really holds {shape[0]} planes." : "."));

    /// <summary>A reader for the current row of <paramref name="row"/>: returns [C, H, W] or throws <see cref="InvalidDataException"/> naming the row.</summary>
    public Func<Tensor> Reader(DataViewRow row)
    {
        switch (Kind)
        {
            case ImageColumnKind.Image:
            {
                var getter = row.GetGetter<MLImage>(row.Schema[Index]);
                return () =>
                {
                    MLImage image = null!;
                    Read(row, () => getter(ref image));
                    if (image is null) throw BadImage(row, "the image is missing");
                    CheckPixelCount(row, image.Width, image.Height);
                    return FromPixels(image.Pixels, image.Height, image.Width, image.PixelFormat == MLPixelFormat.Bgra32);
                };
            }
            case ImageColumnKind.Path:
            {
                var path = PathReader(row);
                return () =>
                {
                    string file = path();
                    using var stream = Open(row, file);
                    return Decode(row, SKCodec.Create(stream), $"file '{file}'");
                };
            }
            case ImageColumnKind.EncodedBytes:
            {
                var getter = row.GetGetter<VBuffer<byte>>(row.Schema[Index]);
                var bytes = default(VBuffer<byte>);
                return () =>
                {
                    Read(row, () => getter(ref bytes));
                    if (bytes.Length == 0) throw BadImage(row, "it has no bytes");
                    using var data = SKData.CreateCopy(bytes.DenseValues().ToArray());
                    return Decode(row, SKCodec.Create(data), $"{bytes.Length} bytes");
                };
            }
            default:
            {
                var getter = row.GetGetter<VBuffer<float>>(row.Schema[Index]);
                var values = default(VBuffer<float>);
                return () =>
                {
                    getter(ref values);
                    var dense = values.DenseValues().ToArray();
                    CheckFinite(row, dense);
                    return Resize(tensor(dense).view(_pixelShape));
                };
            }
        }
    }

    /// <summary>The current row's file path, for a <see cref="ImageColumnKind.Path"/> column.</summary>
    public Func<string> PathReader(DataViewRow row)
    {
        var getter = row.GetGetter<ReadOnlyMemory<char>>(row.Schema[Index]);
        var text = default(ReadOnlyMemory<char>);
        return () =>
        {
            getter(ref text);
            var path = text.ToString();
            if (string.IsNullOrWhiteSpace(path)) throw BadImage(row, "its image path is empty");
            return path;
        };
    }

    /// <summary>
    /// Streams the current row's file through <paramref name="score"/>; a file that fails to open or decode becomes a
    /// bad image of this row, naming the column and the row beside the file.
    /// </summary>
    public Func<T> FileStreamer<T>(DataViewRow row, Func<Stream, string, T> score)
    {
        var path = PathReader(row);
        return () =>
        {
            string file = path();
            using var stream = Open(row, file);
            try
            {
                return score(stream, file);
            }
            catch (InvalidDataException e)
            {
                throw BadImage(row, e.Message.TrimEnd('.'), e);
            }
        };
    }

    private Stream Open(DataViewRow row, string file)
    {
        try
        {
            return File.OpenRead(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw BadImage(row, $"file '{file}' could not be opened: {e.GetType().Name}: {e.Message.TrimEnd('.')}", e);
        }
    }

    /// <summary>Values per image when pixel vectors can be copied straight into a batch (no resize needed), else null.</summary>
    public int? DirectPixelCount =>
        Kind == ImageColumnKind.Pixels && _pixelShape[1] == _config.ImageHeight && _pixelShape[2] == _config.ImageWidth
            ? (int)(_pixelShape[0] * _pixelShape[1] * _pixelShape[2])
            : null;

    /// <summary>Copies the current row's pixel vector into a batch buffer at an offset (see <see cref="DirectPixelCount"/>).</summary>
    public Action<float[], int> PixelCopier(DataViewRow row)
    {
        var getter = row.GetGetter<VBuffer<float>>(row.Schema[Index]);
        var values = default(VBuffer<float>);
        return (buffer, offset) =>
        {
            getter(ref values);
            var image = buffer.AsSpan(offset, values.Length);
            values.CopyTo(image); // densifies sparse vectors
            CheckFinite(row, image);
        };
    }

    /// <summary>NaN or infinite pixels would make every score NaN: name the row instead.</summary>
    private void CheckFinite(DataViewRow row, ReadOnlySpan<float> pixels)
    {
        for (int i = 0; i < pixels.Length; i++)
            if (!float.IsFinite(pixels[i]))
                throw BadImage(row, $"pixel value {i} is {pixels[i]}; pixel values must be finite numbers");
    }

    /// <summary>Runs an upstream getter (an image loader, typically); its failure becomes a bad image of this row.</summary>
    private void Read(DataViewRow row, Action get)
    {
        try
        {
            get();
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException
                                      or NotSupportedException or FormatException)
        {
            throw BadImage(row, $"the image could not be read: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private InvalidDataException BadImage(DataViewRow row, string why, Exception? inner = null) =>
        new($"Column '{Name}', row {row.Position}{Describe(row)}: {why}.", inner);

    /// <summary>The row's context values, as " (ImagePath: 'a/b.png')", or nothing when the row has none.</summary>
    private string Describe(DataViewRow row)
    {
        var values = new List<string>();
        foreach (var column in Context.Where(row.IsColumnActive))
        {
            var text = default(ReadOnlyMemory<char>);
            row.GetGetter<ReadOnlyMemory<char>>(column)(ref text);
            values.Add($"{column.Name}: '{text}'");
        }
        return values.Count == 0 ? "" : $" ({string.Join(", ", values)})";
    }

    /// <summary>A decoded image larger than <see cref="ViRLimits.MaxImagePixels"/> is refused before its pixels are copied.</summary>
    private void CheckPixelCount(DataViewRow row, long width, long height)
    {
        if (width * height > ViRLimits.MaxImagePixels)
            throw BadImage(row, $"it is {width}×{height} = {width * height:N0} pixels, more than ViRLimits.MaxImagePixels ({ViRLimits.MaxImagePixels:N0})");
    }

    /// <summary>
    /// Decodes an encoded image as MLImage does (SkiaSharp, premultiplied where the image has alpha), but reads the
    /// header's size first, so an image over the pixel limit is refused before anything is decoded, and a decode
    /// that ran out of input (a truncated file) is an unreadable image, not one with a blank bottom.
    /// </summary>
    /// <param name="row">The row, for errors.</param>
    /// <param name="created">The decoder over the image, or null when SkiaSharp knows no such format; disposed here.</param>
    /// <param name="what">The encoded image, for errors: its size in bytes, or its file.</param>
    private Tensor Decode(DataViewRow row, SKCodec? created, string what)
    {
        using var codec = created ?? throw BadImage(row, $"it could not be decoded ({what} in no format SkiaSharp reads)");
        var info = codec.Info;
        CheckPixelCount(row, info.Width, info.Height);
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Bgra8888,
            info.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Premul);
        var result = codec.GetPixels(target, out byte[] pixels);
        if (result == SKCodecResult.IncompleteInput)
            throw BadImage(row, $"it is truncated: its data ({what}) ends before the {info.Width}×{info.Height} image does");
        if (result != SKCodecResult.Success)
            throw BadImage(row, $"it could not be decoded ({what}, {info.Width}×{info.Height}: {result})");
        return FromPixels(pixels, info.Height, info.Width, bgra: true);
    }

    private Tensor FromPixels(ReadOnlySpan<byte> pixels, int height, int width, bool bgra)
    {
        using var scope = NewDisposeScope();
        return Resize(_planes.From(pixels, height, width, bgra)).MoveToOuterDisposeScope();
    }

    private Tensor Resize(Tensor chw)
    {
        if (chw.shape[1] == _config.ImageHeight && chw.shape[2] == _config.ImageWidth) return chw;
        return nn.functional.interpolate(chw.unsqueeze(0), new long[] { _config.ImageHeight, _config.ImageWidth },
            mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).squeeze(0);
    }
}
