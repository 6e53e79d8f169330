using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using SkiaSharp;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// PredictStreaming: a JPEG or PNG file classified band by band at its own size, as the chunkwise form scores it whole; a
/// truncated file, an interlaced PNG and a non-image are refused by name.
/// </summary>
[TestClass]
public sealed class StreamingPredictionTests
{
    // A made photo with detail everywhere, so that every band matters; 4-byte BGRA pixels.
    private static byte[] Photo(int width, int height)
    {
        var pixels = new byte[width * height * 4];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 4;
                for (int c = 0; c < 3; c++)
                    pixels[i + c] = (byte)Math.Clamp(128 + 90 * Math.Sin(x * 0.07 + y * 0.05 + c) + 30 * Math.Sin(x * 0.9 - y * 0.6), 0, 255);
                pixels[i + 3] = 255;
            }
        return pixels;
    }

    [TestMethod]
    public void AnImageFileStreamedBandByBandScoresAsTheChunkwiseFormOverTheWholeImage()
    {
        var ml = new MLContext(seed: 1);
        using var vir = TinyFit.Fit(ml, TinyFit.Images(ml, 4), o =>
        {
            o.Architecture = ViRConfig.Mini with { Depth = 2 };
            o.PredictionRetention = new RetentionSettings(RetentionMode.Chunkwise, 16);
        });
        string folder = Path.Combine(Path.GetTempPath(), $"vir-stream-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            const int width = 130, height = 90; // neither a multiple of the patch (4): 128 columns and 88 rows are read
            string file = Path.Combine(folder, "photo.jpg");
            using (var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Bgra8888, SKAlphaType.Opaque)))
            {
                System.Runtime.InteropServices.Marshal.Copy(Photo(width, height), 0, bitmap.GetPixels(), width * height * 4);
                using var encoded = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
                File.WriteAllBytes(file, encoded.ToArray());
            }
            // The pixels as the whole-image decoder gives them (JPEG is lossy): the reference the streamed rows must match.
            byte[] pixels;
            using (var original = SKBitmap.Decode(file))
            using (var decoded = original.Copy(SKColorType.Bgra8888)) pixels = decoded.Bytes;

            // The whole image at its own size, preprocessed as the library does, scored in the chunkwise form.
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var whole = new ImagePlanes(vir.Config).From(pixels, height, width, bgra: true).narrow(1, 0, 88).narrow(2, 0, 128).unsqueeze(0);
            var model = (ViRModel)vir.Model;
            var expectedEmbedding = model.Embed(whole, new RetentionSettings(RetentionMode.Chunkwise, 16));
            var expected = nn.functional.softmax(model.Classify(expectedEmbedding), 1).data<float>().ToArray();

            // 32 patches a row, 22 rows: pieces of a row (1 token; 10, not dividing it), 3 rows, the whole image.
            foreach (int bandTokens in new[] { 1, 10, 96, 704 })
            {
                var reports = new List<double>();
                var streamed = vir.PredictStreaming(file, bandTokens, new SynchronousProgress(reports.Add));
                double difference = expected.Zip(streamed.Score).Max(p => Math.Abs(p.First - p.Second));
                double embedding = expectedEmbedding.data<float>().ToArray().Zip(streamed.Embedding).Max(p => Math.Abs(p.First - p.Second))
                    / expectedEmbedding.abs().max().ToDouble();
                Console.WriteLine($"bands of {bandTokens} tokens: max |Δprobability| {difference:G3}, embedding {embedding:G3} of its scale, {reports.Count} progress reports");
                Assert.IsTrue(difference < 1e-4 && embedding < 1e-4, $"bands of {bandTokens} tokens: {difference:G3}, {embedding:G3}");
                Assert.AreEqual((88L, 128L), (streamed.Height, streamed.Width));
                Assert.AreEqual(vir.LabelNames[Array.IndexOf(streamed.Score, streamed.Score.Max())], streamed.PredictedLabel);
                Assert.AreEqual(1.0, reports[^1], 1e-12, "the last report says the image is done");
                int bands = bandTokens < 32 ? 22 * ((32 + bandTokens - 1) / bandTokens) : (22 + bandTokens / 32 - 1) / (bandTokens / 32);
                Assert.AreEqual(bands, reports.Count, "one report per band");
            }

            // In bfloat16 (where the CPU has it; float32 elsewhere) the streamed scores stay near the float32 ones.
            using (var bfloat16 = vir.WithPrecision(ViRPrecision.BFloat16))
            {
                var streamed = bfloat16.PredictStreaming(file, bandTokens: 96);
                double difference = expected.Zip(streamed.Score).Max(p => Math.Abs(p.First - p.Second));
                Console.WriteLine($"{bfloat16.Precision}: max |Δprobability| {difference:G3} against float32 over the whole image");
                Assert.IsTrue(difference < 5e-3, $"{bfloat16.Precision}: {difference:G3}");
            }

            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.ThrowsExactly<OperationCanceledException>(() => vir.PredictStreaming(file, cancellation: cancelled.Token));

            // A PNG of the same pixels (lossless), from a file and from a stream that cannot seek.
            string png = Path.Combine(folder, "photo.png");
            using (var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, pixels)) image.Save(png);
            foreach (var (what, streamed) in new[]
            {
                ("PNG file", vir.PredictStreaming(png, bandTokens: 96)),
                ("PNG stream", vir.PredictStreaming(new ForwardOnlyStream(File.ReadAllBytes(png)), "photo.png", bandTokens: 10)),
            })
            {
                double difference = expected.Zip(streamed.Score).Max(p => Math.Abs(p.First - p.Second));
                Console.WriteLine($"{what}: max |Δprobability| {difference:G3}");
                Assert.IsTrue(difference < 1e-4, $"{what}: {difference:G3}");
            }
            string truncatedPng = Path.Combine(folder, "truncated.png");
            var pngBytes = File.ReadAllBytes(png);
            File.WriteAllBytes(truncatedPng, pngBytes.AsSpan(0, pngBytes.Length / 2).ToArray());
            var brokenPng = Assert.ThrowsExactly<InvalidDataException>(() => vir.PredictStreaming(truncatedPng));
            Console.WriteLine(brokenPng.Message);
            StringAssert.Contains(brokenPng.Message, truncatedPng);
            StringAssert.Matches(brokenPng.Message, new System.Text.RegularExpressions.Regex("pixel row [1-9][0-9]* of 90"));

            string interlaced = Path.Combine(folder, "interlaced.png");
            File.WriteAllBytes(interlaced, InterlacedPng.Grey(16, 16));
            var adam7 = Assert.ThrowsExactly<InvalidDataException>(() => vir.PredictStreaming(interlaced));
            StringAssert.Contains(adam7.Message, interlaced);
            StringAssert.Contains(adam7.Message, "interlaced");

            string truncated = Path.Combine(folder, "truncated.jpg");
            var bytes = File.ReadAllBytes(file);
            File.WriteAllBytes(truncated, bytes.AsSpan(0, bytes.Length * 6 / 10).ToArray());
            var broken = Assert.ThrowsExactly<InvalidDataException>(() => vir.PredictStreaming(truncated));
            Console.WriteLine(broken.Message);
            StringAssert.Contains(broken.Message, truncated);
            StringAssert.Contains(broken.Message, "row");

            const string limit = "Microsoft.ML.Retention.MaxImagePixels";
            try
            {
                AppContext.SetData(limit, 2000L); // a band of 4 patch rows (128 tokens; with its margin, 24 pixel rows) of 130 columns holds 3,120
                var wide = Assert.ThrowsExactly<InvalidDataException>(() => vir.PredictStreaming(file, bandTokens: 128));
                StringAssert.Contains(wide.Message, "a band of 24 rows would hold 3,120 pixels, more than ViRLimits.MaxImagePixels (2,000)");
                Assert.AreEqual(88, vir.PredictStreaming(file, bandTokens: 32).Height, "a band of 1 patch row (12 pixel rows, 1,560 pixels) fits");
            }
            finally
            {
                AppContext.SetData(limit, null);
            }

            string notAnImage = Path.Combine(folder, "notes.txt");
            File.WriteAllText(notAnImage, "not an image");
            var unreadable = Assert.ThrowsExactly<InvalidDataException>(() => vir.PredictStreaming(notAnImage));
            StringAssert.Contains(unreadable.Message, notAnImage);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    // A network stream, say: read once, front to back.
    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
        public override long Position { get => base.Position; set => throw new NotSupportedException(); }
        public override long Length => throw new NotSupportedException();
    }

    // Progress<T> reports on the thread pool; the test wants the reports in order, on this thread.
    private sealed class SynchronousProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
