using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// Image files that ML.NET's own loaders (LoadImages, LoadRawImageBytes) can't read: at Fit and at prediction the
/// failure names the column, the row and the path; with SkipBadImages the row is skipped, counted and logged.
/// </summary>
[TestClass]
public sealed class UnreadableImageTests
{
    private const int BadRow = 7;
    private static string _folder = "";

    [ClassInitialize]
    public static void MakeImageFolder(TestContext _)
    {
        _folder = Path.Combine(Path.GetTempPath(), $"vir-unreadable-{Guid.NewGuid():N}");
        foreach (var row in FashionMnist.Rows("train", 2))
        {
            string target = Path.Combine(_folder, row.ImagePath);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(Path.Combine(FashionMnist.Root, row.ImagePath), target);
        }
        File.WriteAllBytes(Path.Combine(_folder, "undecodable.png"), new byte[] { 0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5 });
        File.WriteAllBytes(Path.Combine(_folder, "empty.png"), Array.Empty<byte>());
    }

    [ClassCleanup]
    public static void DeleteImageFolder()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    /// <summary>The training rows with row <see cref="BadRow"/> pointing at <paramref name="badFile"/>.</summary>
    private static List<FashionMnist.ImageRow> Rows(string badFile)
    {
        var rows = FashionMnist.Interleaved(FashionMnist.Rows("train", 2));
        rows[BadRow] = new FashionMnist.ImageRow { ImagePath = badFile, Label = rows[BadRow].Label };
        return rows;
    }

    private static ITransformer Loader(MLContext ml, string loader, IDataView rows)
    {
        var load = loader == "LoadImages"
            ? ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.LoadImages("Image", _folder, "ImagePath"))
            : ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.LoadRawImageBytes("Image", _folder, "ImagePath"));
        return load.Fit(rows);
    }

    [TestMethod]
    [DataRow("LoadImages", "undecodable.png")]
    [DataRow("LoadImages", "empty.png")]
    [DataRow("LoadImages", "missing.png")]
    [DataRow("LoadRawImageBytes", "undecodable.png")]
    [DataRow("LoadRawImageBytes", "empty.png")]
    [DataRow("LoadRawImageBytes", "missing.png")]
    public void FitNamesTheColumnRowAndPathOrSkipsTheRow(string loader, string badFile)
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.LoadFromEnumerable(Rows(badFile));
        var data = Loader(ml, loader, rows).Transform(rows);

        var e = Assert.ThrowsExactly<InvalidDataException>(() => TinyFit.Fit(ml, data));
        StringAssert.Contains(e.Message, $"Column 'Image', row {BadRow} (ImagePath: '{badFile}')");

        var log = new List<string>();
        ml.Log += (_, entry) => { lock (log) log.Add(entry.Message); };
        using var model = TinyFit.Fit(ml, data, o => o.SkipBadImages = true);
        Assert.IsTrue(log.Any(l => l.Contains("Skipping a bad image") && l.Contains(badFile)), $"no warning naming {badFile}");
        Assert.IsTrue(log.Any(l => l.Contains("1 training rows were skipped")), "no count of skipped rows");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void SkippedRowsAreCountedOnceWhetherTheImagesAreInMemoryOrStreamed(bool streamed)
    {
        // One bad row in the first batch and one after it: a count that restarts with each pass over the data (the
        // check after training reads the first batch again) would say 1, or nothing.
        var ml = new MLContext(seed: 1);
        var rows = Rows("undecodable.png");
        rows[18] = new FashionMnist.ImageRow { ImagePath = "missing.png", Label = rows[18].Label };
        var view = ml.Data.LoadFromEnumerable(rows);
        var data = Loader(ml, "LoadImages", view).Transform(view);
        var log = new List<string>();
        ml.Log += (_, entry) => { lock (log) log.Add(entry.Message); };
        using var model = TinyFit.Fit(ml, data, o =>
        {
            o.SkipBadImages = true;
            o.MaxEpoch = 3;
            if (streamed) o.InMemoryBudgetBytes = 0;
        });
        Assert.IsTrue(log.Any(l => l.Contains(streamed ? "Streaming 20 training images" : "Decoding 20 training images")), string.Join("\n", log));
        Assert.AreEqual(1, log.Count(l => l.Contains("2 training rows were skipped")), string.Join("\n", log.Where(l => l.Contains("skipped"))));
        Assert.AreEqual(1, log.Count(l => l.Contains("Skipping a bad image") && l.Contains("missing.png")), "each bad row is named once, not once per epoch");
    }

    [TestMethod]
    [DataRow("LoadImages", "undecodable.png")]
    [DataRow("LoadImages", "missing.png")]
    [DataRow("LoadRawImageBytes", "empty.png")]
    [DataRow("LoadRawImageBytes", "missing.png")]
    public void PredictionNamesTheRowAndPath(string loader, string badFile)
    {
        var ml = new MLContext(seed: 1);
        var good = ml.Data.LoadFromEnumerable(FashionMnist.Rows("train", 2));
        var load = Loader(ml, loader, good);
        var model = load.Append(TinyFit.Fit(ml, load.Transform(good)));
        var rows = Rows(badFile);

        var batch = Assert.ThrowsExactly<InvalidDataException>(() => model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToList());
        StringAssert.Contains(batch.Message, $"Column 'Image', row {BadRow} (ImagePath: '{badFile}')");

        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model);
        Assert.AreEqual(10, engine.Predict(rows[0]).Score.Length);
        var single = Assert.ThrowsExactly<InvalidDataException>(() => engine.Predict(rows[BadRow]));
        StringAssert.Contains(single.Message, $"(ImagePath: '{badFile}')");
        Assert.AreEqual(10, engine.Predict(rows[1]).Score.Length, "the engine keeps working after a bad row");
    }
}
