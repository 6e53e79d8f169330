using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class BadInputTests
{
    private static T Throws<T>(Action action, params string[] fragments) where T : Exception
    {
        var e = Assert.ThrowsExactly<T>(action);
        foreach (var fragment in fragments) StringAssert.Contains(e.Message, fragment);
        return e;
    }

    // ML.NET calls a loader through reflection, so the loader's exception arrives wrapped once.
    private static void LoadThrows<T>(MLContext ml, string path, params string[] fragments) where T : Exception
    {
        var wrapper = Assert.ThrowsExactly<System.Reflection.TargetInvocationException>(() => ml.Model.Load(path, out _));
        Assert.IsInstanceOfType<T>(wrapper.InnerException);
        foreach (var fragment in fragments) StringAssert.Contains(wrapper.InnerException!.Message, fragment);
    }

    [TestMethod]
    public void MissingColumnsAreNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, featureColumn: "Picture"), "'Picture'", "not found", "'Image'");
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.LabelColumnName = "Class"), "'Class'", "not found");
    }

    [TestMethod]
    public void WrongFeatureTypeIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, featureColumn: "Label"), "'Label'", "must hold images", "Key");
    }

    [TestMethod]
    public void LabelThatIsNotAKeyIsRejected()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.LoadImages("Image", FashionMnist.Root, "ImagePath").Fit(FashionMnist.Load(ml, "train", 2)).Transform(FashionMnist.Load(ml, "train", 2));
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data), "'Label'", "key", "MapValueToKey", "String");
    }

    [TestMethod]
    public void OnlyOneClassPresentIsRejected()
    {
        var ml = new MLContext(seed: 1);
        var keys = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 2));
        var bags = ml.Data.LoadFromEnumerable(FashionMnist.Rows("train", 3).Where(r => r.Label == "Bag"));
        Throws<InvalidOperationException>(() => TinyFit.Fit(ml, keys.Transform(bags)), "Only one class", "'Label'", "'Bag'", "3 training rows");
    }

    [TestMethod]
    public void EmptyDataIsRejected()
    {
        var ml = new MLContext(seed: 1);
        var keys = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 2));
        var empty = ml.Data.LoadFromEnumerable(new List<FashionMnist.ImageRow>());
        Throws<InvalidOperationException>(() => TinyFit.Fit(ml, keys.Transform(empty)), "empty", "found 0");
    }

    [TestMethod]
    public void UndecodableImageIsReportedWithItsRowOrSkipped()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Interleaved(FashionMnist.Rows("train", 2))
            .Select(r => new FashionMnist.BytesRow { Image = File.ReadAllBytes(Path.Combine(FashionMnist.Root, r.ImagePath)), Label = r.Label }).ToList();
        rows[5].Image = new byte[] { 1, 2, 3, 4, 5 };
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));

        Throws<InvalidDataException>(() => TinyFit.Fit(ml, data), "Column 'Image', row 5", "could not be decoded", "5 bytes");

        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var model = TinyFit.Fit(ml, data, o => o.SkipBadImages = true);
        Assert.IsTrue(log.Any(l => l.Contains("Skipping a bad image") && l.Contains("row 5")), "no warning for the skipped row");
        Assert.IsTrue(log.Any(l => l.Contains("1 training rows were skipped")), "no count of skipped rows");

        // Scoring names the row too.
        Throws<InvalidDataException>(() => model.Transform(data).GetColumn<float[]>("Score").ToArray(), "Column 'Image', row 5");
    }

    [TestMethod]
    public void PixelVectorOfTheWrongSizeIsRejected()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 20).Select(i => new PixelRow { Pixels = new float[100], Label = (i % 2).ToString() });
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, featureColumn: "Pixels"), "'Pixels'", "784", "100");
    }

    [TestMethod]
    public void DivergingLossStopsWithEpochStepAndAdvice()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        Throws<InvalidOperationException>(() => TinyFit.Fit(ml, data, o => { o.LearningRate = 1e30; o.GradientClipNorm = 0; o.WarmupEpochs = 0; }),
            "Training diverged", "epoch 1, step", "lower LearningRate");
    }

    [TestMethod]
    public void CudaWithoutAGpuFailsUnlessFallbackIsSet()
    {
        Assert.IsFalse(cuda.is_available(), "this test expects a machine without CUDA");
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        Throws<InvalidOperationException>(() => TinyFit.Fit(ml, data, o => o.Device = ViRDevice.Cuda), "Cuda", "not available", "FallbackToCpu");

        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var model = TinyFit.Fit(ml, data, o => { o.Device = ViRDevice.Cuda; o.FallbackToCpu = true; });
        Assert.AreEqual(DeviceType.CPU, model.Device.type);
        Assert.IsTrue(log.Any(l => l.Contains("falling back to the CPU")));
    }

    [TestMethod]
    public void BadOptionsAreNamed()
    {
        var ml = new MLContext();
        var catalog = ml.MulticlassClassification.Trainers;
        Throws<ArgumentOutOfRangeException>(() => catalog.ViR(new ViRImageClassificationTrainer.Options { BatchSize = 0 }), "BatchSize", "from 1 to 65536", "0");
        Throws<ArgumentOutOfRangeException>(() => catalog.ViR(new ViRImageClassificationTrainer.Options { PredictionRetention = new(RetentionMode.Chunkwise, -2) }), "chunkSize", "ChunkSizes.Auto (0) or at least 1", "-2");
        Throws<ArgumentOutOfRangeException>(() => catalog.ViR(new ViRImageClassificationTrainer.Options { MaxTranslation = 0.5 }), "MaxTranslation", "[0, 0.5)", "0.5");
        Throws<ArgumentOutOfRangeException>(() => catalog.ViR(new ViRImageClassificationTrainer.Options { TrainingRetention = new(RetentionMode.Recurrent) }), "TrainingRetention", "Recurrent");
        Throws<ArgumentOutOfRangeException>(() => catalog.ViR(new ViRImageClassificationTrainer.Options { ValidationSetFraction = 1.5 }), "ValidationSetFraction", "1.5");
        var data = TinyFit.Images(ml);
        Throws<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.Architecture = o.Architecture with { Dim = 25 }), "ViRConfig.Dim", "25");
        Throws<ArgumentException>(() => TinyFit.Fit(ml, data, o => o.EarlyStopping = new EarlyStoppingOptions()), "EarlyStopping", "validation");
    }

    [TestMethod]
    public void TruncatedOrForeignModelFilesFailCleanly()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var model = TinyFit.Fit(ml, data);
        string path = Path.Combine(Path.GetTempPath(), $"vir-bad-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            byte[] good = File.ReadAllBytes(path);

            File.WriteAllBytes(path, good.AsSpan(0, good.Length / 2).ToArray());
            Assert.ThrowsExactly<FormatException>(() => ml.Model.Load(path, out _)); // ML.NET: "Failed to open a zip archive"

            File.WriteAllText(path, "not a model");
            Assert.ThrowsExactly<FormatException>(() => ml.Model.Load(path, out _));

            // A readable zip whose weights entry lost its tail: our loader names the problem, before building the model.
            File.WriteAllBytes(path, good);
            ModelZip.RewriteEntry(path, "ViRWeights", bytes => bytes.AsSpan(0, bytes.Length - 1000).ToArray());
            LoadThrows<InvalidDataException>(ml, path, "does not match the checksum saved with it", "'ViRWeights' entry");

            File.WriteAllBytes(path, good);
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Update)) zip.Entries.Single(e => e.Name == "ViRWeights").Delete();
            LoadThrows<InvalidDataException>(ml, path, "no 'ViRWeights' entry");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ModelFromANewerFormatVersionIsRefusedWithAReason()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var model = TinyFit.Fit(ml, data);
        string path = Path.Combine(Path.GetTempPath(), $"vir-newer-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            // The model header holds the 8-byte model signature, then the written and readable format versions.
            ModelZip.RewriteEntry(path, "Model.key", bytes =>
            {
                int at = bytes.AsSpan().IndexOf("VIRIMGCL"u8);
                Assert.IsTrue(at > 0, "signature not found in Model.key");
                BitConverter.TryWriteBytes(bytes.AsSpan(at + 8), 0x00020001u);
                BitConverter.TryWriteBytes(bytes.AsSpan(at + 12), 0x00020001u);
                return bytes;
            });
            LoadThrows<InvalidDataException>(ml, path, "newer Microsoft.ML.Retention", "0x00020001", $"0x{ViRImageClassificationTransformer.FormatVersion:X8}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class PixelRow
    {
        [VectorType(100)]
        public float[] Pixels { get; set; } = Array.Empty<float>();
        public string Label { get; set; } = "";
    }
}
