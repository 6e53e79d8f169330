namespace ViRImageClassification;

/// <summary>One image file and its class.</summary>
public sealed class ImageFile
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

/// <summary>
/// An ImageNet-style folder: <c>root/&lt;label&gt;/&lt;file&gt;</c>, optionally split into <c>train/</c> and
/// <c>val/</c> (or <c>test/</c>). Without a split, every fifth image of each class is held out for evaluation.
/// </summary>
public sealed record ImageFolderDataset(IReadOnlyList<ImageFile> Train, IReadOnlyList<ImageFile> Evaluation, string EvaluationName)
{
    private static readonly HashSet<string> ImageExtensions = new(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>
    /// Reads the folder; <paramref name="maxPerClass"/> caps the images per class and split (for quick runs). With
    /// <paramref name="tune"/>, every tenth training image of each class is the evaluation set and the test set is unread.
    /// </summary>
    public static ImageFolderDataset Load(string root, int maxPerClass = int.MaxValue, bool tune = false)
    {
        if (tune)
        {
            var seen = new Dictionary<string, int>();
            var tenth = Load(root, maxPerClass).Train.ToLookup(f => (seen[f.Label] = seen.GetValueOrDefault(f.Label) + 1) % 10 == 0);
            return new ImageFolderDataset(tenth[false].ToList(), tenth[true].ToList(), "tuning split (every tenth training image)");
        }
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"Data folder '{root}' does not exist.");
        string train = Path.Combine(root, "train");
        string? evaluation = new[] { "val", "test" }.Select(s => Path.Combine(root, s)).FirstOrDefault(Directory.Exists);
        if (Directory.Exists(train) && evaluation is not null)
            return new ImageFolderDataset(Images(train, maxPerClass), Images(evaluation, maxPerClass), Path.GetFileName(evaluation));

        var all = Images(Directory.Exists(train) ? train : root, int.MaxValue);
        var byClass = all.GroupBy(f => f.Label).ToList();
        var held = byClass.SelectMany(g => g.Where((_, i) => i % 5 == 4).Take(maxPerClass)).ToList();
        var kept = byClass.SelectMany(g => g.Where((_, i) => i % 5 != 4).Take(maxPerClass)).ToList();
        return new ImageFolderDataset(kept, held, "held-out 20%");
    }

    /// <summary>The classes, sorted.</summary>
    public IReadOnlyList<string> ClassNames => Train.Select(f => f.Label).Distinct().OrderBy(l => l, StringComparer.Ordinal).ToList();

    private static List<ImageFile> Images(string folder, int maxPerClass)
    {
        var images = Directory.GetDirectories(folder).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(dir => Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                .Where(f => ImageExtensions.Contains(Path.GetExtension(f)))
                .OrderBy(f => f, StringComparer.Ordinal).Take(maxPerClass)
                .Select(f => new ImageFile { ImagePath = f, Label = Path.GetFileName(dir) }))
            .ToList();
        if (images.Count == 0)
            throw new InvalidDataException($"No images in '{folder}': expected <label>/<file>.png or .jpg subfolders.");
        // Interleave the classes so that every batch and every prefix holds all of them.
        return images.GroupBy(f => f.Label).SelectMany(g => g.Select((f, i) => (f, i))).OrderBy(x => x.i).ThenBy(x => x.f.Label, StringComparer.Ordinal)
            .Select(x => x.f).ToList();
    }
}
