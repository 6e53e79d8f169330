using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.Retention.Tests;

/// <summary>The sample's Fashion-MNIST PNG subset (750 train and 150 test images per class), copied beside the tests.</summary>
internal static class FashionMnist
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");

    public sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>The Score column of a prediction.</summary>
    public sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
    }

    public sealed class BytesRow
    {
        public byte[] Image { get; set; } = Array.Empty<byte>();
        public string Label { get; set; } = "";
    }

    /// <summary>Image paths (relative to <see cref="Root"/>) and labels from the folder names, sorted for a stable order.</summary>
    public static List<ImageRow> Rows(string split, int perClass = int.MaxValue) =>
        Directory.GetDirectories(Path.Combine(Root, split)).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(dir => Directory.GetFiles(dir, "*.png").OrderBy(f => f, StringComparer.Ordinal).Take(perClass)
                .Select(f => new ImageRow { ImagePath = Path.GetRelativePath(Root, f), Label = Path.GetFileName(dir) }))
            .ToList();

    /// <summary>Interleaves classes so that any prefix holds every class.</summary>
    public static List<ImageRow> Interleaved(List<ImageRow> rows) =>
        rows.Select((r, i) => (r, i)).GroupBy(x => x.r.Label).SelectMany(g => g.Select((x, k) => (x.r, k)))
            .OrderBy(x => x.k).ThenBy(x => x.r.Label, StringComparer.Ordinal).Select(x => x.r).ToList();

    /// <summary>ImagePath and Label rows as an IDataView.</summary>
    public static IDataView Load(MLContext ml, string split, int perClass = int.MaxValue) =>
        ml.Data.LoadFromEnumerable(Interleaved(Rows(split, perClass)));

    /// <summary>
    /// The first <paramref name="count"/> images of <paramref name="split"/> (classes interleaved) as a [count, 1, 28, 28]
    /// tensor in [-1, 1], the library's pixel range, and their class indices (0-based, in key order).
    /// </summary>
    public static (Tensor Images, Tensor Labels) Tensors(string split, int count)
    {
        var ml = new MLContext(seed: 1);
        var rows = Load(ml, split, (count + 9) / 10);
        var pixels = Preprocess(ml)
            .Append(ml.Transforms.ResizeImages("Image", 28, 28)) // ExtractPixels wants a known size; these are 28×28 already
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red,
                offsetImage: 127.5f, scaleImage: 1 / 127.5f))
            .Fit(rows).Transform(rows);
        var images = pixels.GetColumn<float[]>("Pixels").Take(count).SelectMany(p => p).ToArray();
        var labels = pixels.GetColumn<uint>("Label").Take(count).Select(k => (long)k - 1).ToArray();
        return (tensor(images, new long[] { count, 1, 28, 28 }), tensor(labels));
    }

    /// <summary>MapValueToKey on Label, then LoadImages into an "Image" column.</summary>
    public static IEstimator<ITransformer> Preprocess(MLContext ml) =>
        ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", Root, "ImagePath"));
}
