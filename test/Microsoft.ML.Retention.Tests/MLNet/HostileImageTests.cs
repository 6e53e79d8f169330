using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// Images from anyone, as encoded bytes the library decodes: a header's size is checked before anything is decoded,
/// a truncated file is unreadable rather than half blank, and decoding matches ML.NET's MLImage where both can read.
/// </summary>
[TestClass]
public sealed class HostileImageTests
{
    public sealed class BytesInput
    {
        public byte[] Image { get; set; } = Array.Empty<byte>();
    }

    /// <summary>A BMP of 54 header bytes and a few pixels whose header says <paramref name="width"/>×<paramref name="height"/>.</summary>
    private static byte[] BmpClaiming(int width, int height)
    {
        var bytes = new byte[54 + 64];
        using var w = new BinaryWriter(new MemoryStream(bytes));
        w.Write((byte)'B'); w.Write((byte)'M'); w.Write(bytes.Length); w.Write(0); w.Write(54); // file header
        w.Write(40); w.Write(width); w.Write(height); w.Write((short)1); w.Write((short)24);     // BITMAPINFOHEADER
        w.Write(0); w.Write(0); w.Write(2835); w.Write(2835); w.Write(0); w.Write(0);
        return bytes;
    }

    /// <summary>A noisy RGBA PNG, partly transparent, that compresses little (so a cut-off tail loses rows).</summary>
    private static byte[] NoisyPng(int width, int height, bool translucent)
    {
        var random = new Random(7);
        var pixels = new byte[width * height * 4];
        random.NextBytes(pixels);
        if (!translucent) for (int i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
        else for (int i = 0; i < pixels.Length; i += 4) (pixels[i], pixels[i + 1], pixels[i + 2]) = ((byte)(pixels[i] * pixels[i + 3] / 255), (byte)(pixels[i + 1] * pixels[i + 3] / 255), (byte)(pixels[i + 2] * pixels[i + 3] / 255));
        string path = Path.Combine(Path.GetTempPath(), $"vir-noise-{Guid.NewGuid():N}.png");
        try
        {
            using (var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, pixels)) image.Save(path);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static ViRImageClassificationTransformer Model(MLContext ml, int channels = 1) =>
        TinyFit.Fit(ml, TinyFit.Images(ml, 2), o => o.Architecture = o.Architecture with { Channels = channels });

    [TestMethod]
    public void AnImageWhoseHeaderClaims60000By60000IsRefusedBeforeItIsDecoded()
    {
        var ml = new MLContext(seed: 1);
        using var model = Model(ml);
        var input = new BytesInput { Image = BmpClaiming(60_000, 60_000) };
        var view = ml.Data.LoadFromEnumerable(new[] { input });
        Exception? batch = null;
        double rise = PeakMemory.RiseMiB(() =>
        {
            try { model.Transform(view).GetColumn<float[]>("Score").ToList(); }
            catch (Exception e) { batch = e; throw; }
        });
        Console.WriteLine($"peak rise {rise:F0} MiB: {batch?.Message}");
        Assert.IsInstanceOfType<InvalidDataException>(batch);
        StringAssert.Contains(batch!.Message, "Column 'Image', row 0");
        StringAssert.Contains(batch.Message, "60000×60000 = 3,600,000,000 pixels, more than ViRLimits.MaxImagePixels (100,000,000)");
        Assert.IsTrue(rise < 100, $"refusing it took {rise:F0} MiB");

        using var engine = ml.Model.CreatePredictionEngine<BytesInput, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => engine.Predict(input)).Message, "ViRLimits.MaxImagePixels");
    }

    [TestMethod]
    public void ATruncatedImageIsUnreadableAndSkippedWhenAskedTo()
    {
        var ml = new MLContext(seed: 1);
        using var model = Model(ml);
        byte[] whole = NoisyPng(64, 64, translucent: false);
        var cut = new BytesInput { Image = whole.AsSpan(0, whole.Length * 2 / 3).ToArray() };
        using var engine = ml.Model.CreatePredictionEngine<BytesInput, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
        Assert.AreEqual(10, engine.Predict(new BytesInput { Image = whole }).Score.Length);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => engine.Predict(cut));
        StringAssert.Contains(e.Message, "it is truncated");

        // At Fit, SkipBadImages skips it like any unreadable image.
        var rows = FashionMnist.Interleaved(FashionMnist.Rows("train", 2))
            .Select(r => new FashionMnist.BytesRow { Image = File.ReadAllBytes(Path.Combine(FashionMnist.Root, r.ImagePath)), Label = r.Label }).ToList();
        rows[5] = new FashionMnist.BytesRow { Image = cut.Image, Label = rows[5].Label };
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        Assert.ThrowsExactly<InvalidDataException>(() => TinyFit.Fit(ml, data));
        var log = new List<string>();
        ml.Log += (_, entry) => { lock (log) log.Add(entry.Message); };
        using (TinyFit.Fit(ml, data, o => o.SkipBadImages = true)) { }
        Assert.IsTrue(log.Any(l => l.Contains("1 training rows were skipped")), "the truncated image was not skipped");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void EncodedBytesScoreAsTheSameImageLoadedByMLNet(bool translucent)
    {
        var ml = new MLContext(seed: 1);
        using var model = Model(ml, channels: 3);
        byte[] png = NoisyPng(50, 37, translucent);
        string path = Path.Combine(Path.GetTempPath(), $"vir-same-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, png);
        try
        {
            var fromBytes = model.Transform(ml.Data.LoadFromEnumerable(new[] { new BytesInput { Image = png } })).GetColumn<float[]>("Score").Single();
            var rows = ml.Data.LoadFromEnumerable(new[] { new FashionMnist.ImageRow { ImagePath = path } });
            var loaded = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(rows).Transform(rows);
            var fromImage = model.Transform(loaded).GetColumn<float[]>("Score").Single();
            CollectionAssert.AreEqual(fromImage, fromBytes);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ALoadedImageOverTheLimitIsRefusedAndTheLimitCanBeRaised()
    {
        var ml = new MLContext(seed: 1);
        using var model = Model(ml);
        var rows = ml.Data.LoadFromEnumerable(FashionMnist.Rows("test", 1));
        var images = ml.Transforms.LoadImages("Image", FashionMnist.Root, "ImagePath").Fit(rows).Transform(rows);
        const string setting = "Microsoft.ML.Retention.MaxImagePixels";
        try
        {
            AppContext.SetData(setting, 500L); // below 28×28
            var e = Assert.ThrowsExactly<InvalidDataException>(() => model.Transform(images).GetColumn<float[]>("Score").ToList());
            StringAssert.Contains(e.Message, "28×28 = 784 pixels, more than ViRLimits.MaxImagePixels (500)");
            StringAssert.Contains(e.Message, "(ImagePath: '");
        }
        finally
        {
            AppContext.SetData(setting, null);
        }
        Assert.AreEqual(10, model.Transform(images).GetColumn<float[]>("Score").Count());
    }

    // 16-bit gray, palette, gray with alpha, CMYK JPEG, animated GIF and WebP, written by PIL (python3-pil, which
    // build/get-python-torch.sh installs).
    private const string ImageKinds = """
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(1)
        rgb = Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8))
        Image.fromarray((rng.random((40, 50)) * 65535).astype(np.uint16), mode="I;16").save("gray16.png")
        rgb.convert("P", palette=Image.ADAPTIVE).save("palette.png")
        rgb.convert("LA").save("gray-alpha.png")
        rgb.convert("CMYK").save("cmyk.jpg")
        rgb.save("rgb.webp")
        frames = [Image.fromarray((rng.random((30, 30, 3)) * 255).astype(np.uint8)) for _ in range(3)]
        frames[0].save("animated.gif", save_all=True, append_images=frames[1:])
        """;

    [TestMethod]
    public void EveryImageKindDecodesAsMLImageDecodesIt()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"vir-kinds-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            File.WriteAllText(Path.Combine(folder, "kinds.py"), ImageKinds);
            TestProcess.Run("/usr/bin/python3", "kinds.py", folder).AssertSucceeded("writing images with PIL");
            var ml = new MLContext(seed: 1);
            using var model = Model(ml, channels: 3);
            var files = Directory.GetFiles(folder).Where(f => !f.EndsWith(".py", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            Assert.AreEqual(6, files.Count);
            foreach (var file in files)
            {
                var fromBytes = model.Transform(ml.Data.LoadFromEnumerable(new[] { new BytesInput { Image = File.ReadAllBytes(file) } })).GetColumn<float[]>("Score").Single();
                var rows = ml.Data.LoadFromEnumerable(new[] { new FashionMnist.ImageRow { ImagePath = file } });
                var fromImage = model.Transform(ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(rows).Transform(rows)).GetColumn<float[]>("Score").Single();
                CollectionAssert.AreEqual(fromImage, fromBytes, Path.GetFileName(file));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
