using Microsoft.ML;

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

    /// <summary>MapValueToKey on Label, then LoadImages into an "Image" column.</summary>
    public static IEstimator<ITransformer> Preprocess(MLContext ml) =>
        ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadImages("Image", Root, "ImagePath"));
}
