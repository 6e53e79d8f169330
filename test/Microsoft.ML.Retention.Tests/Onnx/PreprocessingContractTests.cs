using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using ViRImageClassification.Onnx;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// One preprocessing contract: the documented ONNX path (the ONNX sample's classifier, which the README shows) scores
/// photos of any size and shape, colour or gray, as the library does.
/// </summary>
[TestClass]
public sealed class PreprocessingContractTests
{
    // Non-square, larger and smaller than the model's 28×28, and one downscaled by 14.
    private static readonly (int Width, int Height)[] Sizes = { (70, 40), (53, 97), (300, 201), (28, 28), (20, 33), (400, 250) };

    /// <summary>Photo-like PNGs: smooth shading, fine stripes that alias without a filter, and noise.</summary>
    private static List<string> MakePhotos(string folder, bool gray)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(gray ? 2 : 1);
        var files = new List<string>();
        foreach (var (width, height) in Sizes)
        {
            var pixels = new byte[width * height * 4];
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    double shade = 0.5 + 0.3 * Math.Sin(x * 0.05 + y * 0.03), stripes = 0.15 * Math.Sin(x * 1.9 + y * 0.7);
                    int i = (y * width + x) * 4;
                    for (int c = 0; c < 3; c++)
                    {
                        double tint = gray ? 0 : 0.2 * Math.Cos((x + 2 * y) * 0.02 + c * 2.1);
                        pixels[i + c] = (byte)Math.Clamp(255 * (shade + stripes + tint) + random.Next(-12, 13), 0, 255);
                    }
                    if (gray) pixels[i + 1] = pixels[i + 2] = pixels[i];
                    pixels[i + 3] = 255;
                }
            string file = Path.Combine(folder, $"{(gray ? "gray" : "colour")}-{width}x{height}.png");
            using (var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, pixels)) image.Save(file);
            files.Add(file);
        }
        return files;
    }

    [TestMethod]
    [DataRow(1, "ViR")]
    [DataRow(3, "ViR")]
    [DataRow(1, "RMT")]
    [DataRow(3, "RMT")]
    public void TheOnnxSampleScoresPhotosOfAnySizeAsTheLibrary(int channels, string backbone)
    {
        string folder = Path.Combine(Path.GetTempPath(), $"vir-photos-{Guid.NewGuid():N}");
        try
        {
            var photos = MakePhotos(folder, gray: false).Concat(MakePhotos(folder, gray: true)).ToList();
            var ml = new MLContext(seed: 1);
            var training = TinyFit.Images(ml, 10);
            var rmt = RmtTrainerTests.Options();
            rmt.Architecture = RmtTrainerTests.Tiny with { Channels = channels };
            rmt.MaxEpoch = 2;
            using var trained = backbone == "RMT" ? ml.MulticlassClassification.Trainers.Rmt(rmt).Fit(training)
                : TinyFit.Fit(ml, training, o => { o.Architecture = ViRConfig.Mini with { Depth = 2, Channels = channels }; o.MaxEpoch = 2; });
            var rows = ml.Data.LoadFromEnumerable(photos.Select(p => new FashionMnist.ImageRow { ImagePath = p }));
            var expected = trained.Transform(ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(rows).Transform(rows))
                .GetColumn<float[]>("Score").ToArray();

            string onnx = Path.Combine(folder, "model.onnx");
            trained.ExportToOnnx(onnx);
            using var classifier = new OnnxImageClassifier(new MLContext(), onnx);
            double worst = 0;
            for (int i = 0; i < photos.Count; i++)
            {
                var scores = classifier.Probabilities(photos[i]);
                double difference = expected[i].Zip(scores).Max(p => Math.Abs(p.First - p.Second));
                Console.WriteLine($"{backbone}, {channels} channel(s), {Path.GetFileName(photos[i])}: max |Δprobability| {difference:G3}");
                worst = Math.Max(worst, difference);
                Assert.IsTrue(difference < 1e-4, $"{Path.GetFileName(photos[i])}: the ONNX path differs from the library by {difference:G3}");
            }
            // The photos are not all the same to the model, or the comparison above would prove little.
            Assert.IsTrue(expected.Select(e => e.Max()).Distinct().Count() > photos.Count / 2, "the model scores every photo alike");
            Console.WriteLine($"{backbone}, {channels} channel(s): worst {worst:G3} over {photos.Count} photos");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void AnotherPreprocessingIsTrainedWithKeptInModelZipAndExportedAsData(int channels)
    {
        string folder = Path.Combine(Path.GetTempPath(), $"vir-photos-{Guid.NewGuid():N}");
        try
        {
            var photos = MakePhotos(folder, gray: false);
            var custom = new ImagePreprocessing { LumaRed = 0.2126, LumaGreen = 0.7152, LumaBlue = 0.0722, Mean = new[] { 0.45 }, Std = new[] { 0.25 } }; // BT.709
            var ml = new MLContext(seed: 1);
            var train = TinyFit.Images(ml, 4);
            if (channels == 3) custom = ImagePreprocessing.ImageNet; // per channel
            using var trained = TinyFit.Fit(ml, train, o => o.Architecture = o.Architecture with { Channels = channels, Preprocessing = custom });
            using var same = TinyFit.Fit(ml, train, o => o.Architecture = o.Architecture with { Channels = channels, Preprocessing = custom });
            using var usual = TinyFit.Fit(ml, train, o => o.Architecture = o.Architecture with { Channels = channels });
            var rows = ml.Data.LoadFromEnumerable(photos.Select(p => new FashionMnist.ImageRow { ImagePath = p }));
            var images = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(rows).Transform(rows);
            float[] Scores(ITransformer model) => model.Transform(images).GetColumn<float[]>("Score").SelectMany(s => s).ToArray();
            CollectionAssert.AreEqual(Scores(same), Scores(trained), "training is repeatable");
            CollectionAssert.AreNotEqual(Scores(usual), Scores(trained), "the preprocessing changes what the model sees");

            string zip = Path.Combine(folder, "model.zip");
            ml.Model.Save(trained, images.Schema, zip);
            var loaded = ml.Model.Load(zip, out _);
            Assert.AreEqual(custom, ((ViRImageClassificationTransformer)loaded).Config.Preprocessing);
            CollectionAssert.AreEqual(Scores(trained), Scores(loaded));
            ((IDisposable)loaded).Dispose();

            string onnx = Path.Combine(folder, "model.onnx");
            trained.ExportToOnnx(onnx);
            using var classifier = new OnnxImageClassifier(new MLContext(), onnx);
            Assert.AreEqual(custom, System.Text.Json.JsonSerializer.Deserialize<ImagePreprocessing>(classifier.Preprocessing.GetRawText()));
            var expected = trained.Transform(images).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < photos.Count; i++)
            {
                double difference = expected[i].Zip(classifier.Probabilities(photos[i])).Max(p => Math.Abs(p.First - p.Second));
                Assert.IsTrue(difference < 1e-4, $"{Path.GetFileName(photos[i])}: {difference:G3}");
            }
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
