using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using SkiaSharp;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// An image column of file paths: trained on and scored as LoadImages would read it, and, in the recurrent form,
/// streamed from each file band by band at the file's own size, through Transform and a PredictionEngine alike.
/// </summary>
[TestClass]
public sealed class ImagePathColumnTests
{
    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
    }

    private static List<PathRow> Rows(string split, int perClass) =>
        FashionMnist.Interleaved(FashionMnist.Rows(split, perClass))
            .Select(r => new PathRow { ImagePath = Path.Combine(FashionMnist.Root, r.ImagePath), Label = r.Label }).ToList();

    private static double MaxDifference(IEnumerable<float[]> a, IEnumerable<float[]> b) =>
        a.Zip(b).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));

    [TestMethod]
    public void APathColumnTrainsAndScoresAsLoadedImagesAndTheRecurrentFormStreamsEachFile()
    {
        var ml = new MLContext(seed: 1);
        var training = ml.Data.LoadFromEnumerable(Rows("train", 4));
        using var model = ml.MulticlassClassification.Trainers.ViR(TinyFit.Options("ImagePath"))
            .Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(training).Transform(training));

        var testRows = Rows("test", 1);
        var test = ml.Data.LoadFromEnumerable(testRows);
        var fromPaths = model.Transform(test).GetColumn<float[]>("Score").ToList();

        // The same files through LoadImages (an image column under the same name) score the same.
        var loaded = ml.Transforms.LoadImages("ImagePath", null, "ImagePath").Fit(test).Transform(test);
        double asImages = MaxDifference(fromPaths, model.Transform(loaded).GetColumn<float[]>("Score"));

        // At the model's resolution every form agrees; the recurrent one streams each file.
        using var recurrent = model.WithRetentionMode(RetentionMode.Recurrent);
        var streamed = recurrent.Transform(test).GetColumn<float[]>("Score").ToList();
        double forms = MaxDifference(fromPaths, streamed);
        using var engine = ml.Model.CreatePredictionEngine<PathRow, Prediction>(recurrent);
        double engineDifference = MaxDifference(streamed, testRows.Select(r => engine.Predict(r).Score));
        Console.WriteLine($"{testRows.Count} files: path column ÷ LoadImages {asImages:G3}, streamed (recurrent) ÷ parallel {forms:G3}, engine ÷ Transform {engineDifference:G3}");
        Assert.IsTrue(asImages < 1e-6, $"path column against LoadImages: {asImages:G3}");
        Assert.IsTrue(forms < 1e-4, $"streamed against parallel: {forms:G3}");
        Assert.IsTrue(engineDifference < 1e-6, $"engine against Transform: {engineDifference:G3}");

        string folder = Path.Combine(Path.GetTempPath(), $"vir-paths-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            // A larger image: streamed at its own 112×84 pixels (as PredictStreaming scores it); the parallel form resizes it to 28².
            string large = Path.Combine(folder, "tiles.png");
            using (var surface = SKSurface.Create(new SKImageInfo(112, 84, SKColorType.Bgra8888, SKAlphaType.Opaque)))
            {
                for (int i = 0; i < 12; i++)
                    using (var tile = SKBitmap.Decode(testRows[i % testRows.Count].ImagePath))
                        surface.Canvas.DrawBitmap(tile, 28 * (i % 4), 28 * (i / 4));
                using var png = surface.Snapshot().Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(large, png.ToArray());
            }
            var one = new[] { new PathRow { ImagePath = large, Label = testRows[0].Label } };
            var expected = recurrent.PredictStreaming(large).Score;
            var streamedLarge = recurrent.Transform(ml.Data.LoadFromEnumerable(one)).GetColumn<float[]>("Score").Single();
            var resized = model.Transform(ml.Data.LoadFromEnumerable(one)).GetColumn<float[]>("Score").Single();
            double sameAsStreaming = expected.Zip(streamedLarge).Max(p => Math.Abs(p.First - p.Second));
            double fromResized = resized.Zip(streamedLarge).Max(p => Math.Abs(p.First - p.Second));
            Console.WriteLine($"112×84: recurrent column ÷ PredictStreaming {sameAsStreaming:G3}; ÷ parallel at 28² {fromResized:G3}");
            Assert.IsTrue(sameAsStreaming < 1e-6, $"{sameAsStreaming:G3}");
            Assert.IsTrue(fromResized > 1e-3, $"the recurrent form read the file at its own size, not resized ({fromResized:G3})");

            // Bad files are named by column, row and file, in every form.
            string truncated = Path.Combine(folder, "truncated.png");
            var bytes = File.ReadAllBytes(large);
            File.WriteAllBytes(truncated, bytes.AsSpan(0, bytes.Length / 2).ToArray());
            string missing = Path.Combine(folder, "missing.png");
            foreach (var (transformer, file, says) in new (ITransformer, string, string)[]
            {
                (recurrent, truncated, "pixel row"), (model, truncated, "truncated"), (recurrent, missing, "could not be opened"), (model, missing, "could not be opened"),
            })
            {
                var rows = ml.Data.LoadFromEnumerable(new[] { testRows[0], new PathRow { ImagePath = file, Label = testRows[0].Label } });
                var e = Assert.ThrowsExactly<InvalidDataException>(() => transformer.Transform(rows).GetColumn<float[]>("Score").ToList());
                Console.WriteLine(e.Message);
                StringAssert.Contains(e.Message, "Column 'ImagePath', row 1");
                StringAssert.Contains(e.Message, file);
                StringAssert.Contains(e.Message, says);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
