using System.Buffers.Binary;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// Files and options from anyone: every size is checked against the data present and a documented limit before
/// anything is allocated, the whole model entry is covered by its checksum, and writes leave nothing half-done.
/// </summary>
[TestClass]
public sealed class UntrustedInputTests
{
    private static string TempPath(string extension) => Path.Combine(Path.GetTempPath(), $"vir-untrusted-{Guid.NewGuid():N}{extension}");

    [TestMethod]
    [DataRow("Dim", 8192, 12, 1000, 4.0, 224)]
    [DataRow("Dim", 1_000_000, 12, 1000, 4.0, 224)]
    [DataRow("Depth", 384, 100_000, 1000, 4.0, 224)]
    [DataRow("NumClasses", 384, 12, 20_000_000, 4.0, 224)]
    [DataRow("NumClasses", 384, 12, 1_000_000_000, 4.0, 224)]
    [DataRow("MlpRatio", 384, 12, 1000, 1e9, 224)]
    [DataRow("ImageSize", 384, 12, 1000, 4.0, 1_000_000)]
    public void AConfigTooLargeIsRefusedBeforeAnythingIsBuilt(string field, int dim, int depth, int classes, double mlpRatio, int imageSize)
    {
        var config = new ViRConfig { Dim = dim, Heads = 8, Depth = depth, NumClasses = classes, MlpRatio = mlpRatio, ImageSize = imageSize };
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => config.Validate(), field);
        Console.WriteLine($"{field}: {e.Message}");
        StringAssert.Contains(e.Message, field == "MlpRatio" ? "MlpRatio" : "ViRLimits.MaxParameters");
        var built = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ViRModel(config));
        Assert.AreEqual(e.Message, built.Message);
    }

    [TestMethod]
    public void TheParameterCountFromTheConfigIsTheModelsOwn()
    {
        foreach (var config in new[] { ViRConfig.Mini, ViRConfig.Mini with { Stem = PatchStem.Patchify, LayerScaleInit = 0.1 }, ViRConfig.Tiny,
                     ViRConfig.Tiny with { NumClasses = 0, MlpRatio = 2.5, ImageHeight = 160 }, ViRConfig.Mini with { Channels = 3, PatchSize = 8, ImageSize = 32 } })
        {
            using var model = new ViRModel(config);
            Assert.AreEqual(model.parameters().Sum(p => p.numel()), config.ParameterCount, config.ToJson());
        }
        // timm's ViT-B/16 has 86,567,656; ViR-B has no position row for the class token (−768) and has LayerScale (+2·12·768).
        Assert.AreEqual(86_567_656L - 768 + 2 * 12 * 768, ViRConfig.Base.ParameterCount);
    }

    /// <summary>A small model saved as model.zip, with <paramref name="edit"/> applied to the UTF-16 text of its model entry.</summary>
    private static string SavedWithEditedEntry(MLContext ml, string find, string replace)
    {
        var data = TinyFit.Images(ml, 2);
        using var model = TinyFit.Fit(ml, data);
        string path = TempPath(".zip");
        ml.Model.Save(model, data.Schema, path);
        ModelZip.RewriteEntry(path, "Model.key", bytes =>
        {
            byte[] from = Encoding.Unicode.GetBytes(find), to = Encoding.Unicode.GetBytes(replace);
            int at = bytes.AsSpan().IndexOf(from);
            Assert.IsTrue(at >= 0, $"'{find}' is not in the model entry");
            to.CopyTo(bytes, at);
            return bytes;
        });
        return path;
    }

    private static Exception LoadError(MLContext ml, string path)
    {
        var wrapper = Assert.ThrowsExactly<TargetInvocationException>(() => ml.Model.Load(path, out _));
        var reason = wrapper.GetModelLoadError();
        Assert.IsInstanceOfType<InvalidDataException>(reason);
        Console.WriteLine(reason.Message);
        return reason;
    }

    [TestMethod]
    [DataRow("Bag", "Cag", "does not match the checksum saved with it")]                                    // a class name renamed
    [DataRow("\"NumClasses\":10", "\"NumClasses\":99", "stores 10 class names for a head of 99 outputs")]
    [DataRow("\"Depth\":1,", "\"Depth\":9,", "but the 'ViRWeights' entry holds")]                         // refused before the model is built
    public void AChangedModelEntryIsRefusedWithItsCause(string find, string replace, string expected)
    {
        var ml = new MLContext(seed: 1);
        string path = SavedWithEditedEntry(ml, find, replace);
        try
        {
            StringAssert.Contains(LoadError(ml, path).Message, expected);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A safetensors file of the given header entries over <paramref name="dataBytes"/> zero bytes.</summary>
    private static string SafeTensorsFile(string headerJson, int dataBytes)
    {
        string path = TempPath(".safetensors");
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        using var file = File.Create(path);
        var size = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)header.Length);
        file.Write(size);
        file.Write(header);
        file.Write(new byte[dataBytes]);
        return path;
    }

    [TestMethod]
    [DataRow("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "tensors 'a' and 'b' overlap")]
    [DataRow("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,-4],\"data_offsets\":[0,32]}}", "tensor 'a' has shape [-2, -4], with a negative dimension")]
    [DataRow("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}", "whose size overflows")]
    [DataRow("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "names a tensor twice")]
    public void AMalformedSafetensorsHeaderIsRefusedNamingTheFileAndTheTensor(string header, string expected)
    {
        string path = SafeTensorsFile(header, 32);
        try
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => SafeTensors.Read(path));
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, expected);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ASmallCheckpointWhoseConfigAsksForAHugeModelIsRefusedWithoutBuildingIt()
    {
        var ml = new MLContext(seed: 1);
        // 604 M parameters (2.4 GB as float32), under ViRLimits.MaxParameters, in a file of one small tensor.
        var config = ViRConfig.Tiny with { Dim = 2048, Heads = 16, Depth = 12 };
        var metadata = new Dictionary<string, string> { [ViRCheckpoint.FormatKey] = ViRCheckpoint.Format, [ViRCheckpoint.ConfigKey] = config.ToJson() };
        string header = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["__metadata__"] = metadata,
            ["head.bias"] = new { dtype = "F32", shape = new[] { 1000 }, data_offsets = new[] { 0, 4000 } },
        });
        string path = SafeTensorsFile(header, 4000);
        try
        {
            Exception? error = null;
            double rise = PeakMemory.RiseMiB(() =>
            {
                try { ml.Model.LoadViRWeights(path).Dispose(); }
                catch (Exception e) { error = e; throw; }
            });
            Console.WriteLine($"peak rise {rise:F0} MiB: {error?.Message}");
            Assert.IsInstanceOfType<InvalidDataException>(error);
            StringAssert.Contains(error!.Message, "holds 1,000 values, but its config needs");
            Assert.IsTrue(rise < 200, $"the refusal took {rise:F0} MiB");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ExportsToADirectoryOrFromManyThreadsLeaveWholeFilesAndNoTemporaries()
    {
        var ml = new MLContext(seed: 1);
        using var model = TinyFit.Fit(ml, TinyFit.Images(ml, 2));
        string folder = Path.Combine(Path.GetTempPath(), $"vir-exports-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string directory = Path.Combine(folder, "target");
            Directory.CreateDirectory(directory);
            StringAssert.Contains(Assert.ThrowsExactly<IOException>(() => model.SaveWeights(directory)).Message, "is a directory");
            StringAssert.Contains(Assert.ThrowsExactly<IOException>(() => model.ExportToOnnx(directory)).Message, "is a directory");

            string onnx = Path.Combine(folder, "model.onnx"), weights = Path.Combine(folder, "model.safetensors");
            model.ExportToOnnx(onnx);
            model.SaveWeights(weights);
            byte[] expectedOnnx = File.ReadAllBytes(onnx), expectedWeights = File.ReadAllBytes(weights);
            for (int round = 0; round < 10; round++)
            {
                Parallel.For(0, 4, i =>
                {
                    if (i % 2 == 0) model.ExportToOnnx(onnx);
                    else model.SaveWeights(weights);
                });
                CollectionAssert.AreEqual(expectedOnnx, File.ReadAllBytes(onnx), $"round {round}: the ONNX file is not one whole export");
                CollectionAssert.AreEqual(expectedWeights, File.ReadAllBytes(weights), $"round {round}: the weights file is not one whole save");
            }
            CollectionAssert.AreEquivalent(new[] { "model.onnx", "model.safetensors", "target" },
                Directory.GetFileSystemEntries(folder).Select(Path.GetFileName).ToArray(), "temporary files were left behind");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void OversizedOptionsAreRefusedNamingTheLimit()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        var batch = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.BatchSize = int.MaxValue));
        StringAssert.Contains(batch.Message, "BatchSize must be from 1 to 65536 (ViRLimits.MaxBatchSize)");
        var threads = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.ThreadCount = int.MaxValue));
        StringAssert.Contains(threads.Message, "ThreadCount must be null or from 1 to 1024");
        var size = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.Architecture = ViRConfig.Mini with { ImageSize = 1_000_000 }));
        StringAssert.Contains(size.Message, "ViRLimits.MaxParameters");
        using var model = TinyFit.Fit(ml, data);
        var onnx = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.ExportToOnnx(TempPath(".onnx"), imageSize: 2147483644));
        StringAssert.Contains(onnx.Message, "protobuf's limit");
    }

    [TestMethod]
    public void ALargeBatchSizeScoresAFewRowsWithoutAllocatingTheBatch()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Load(ml, "train", 2);
        var vectors = FashionMnist.Preprocess(ml).Append(ml.Transforms.ResizeImages("Image", 28, 28))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red))
            .Fit(rows).Transform(rows);
        using var model = TinyFit.Fit(ml, vectors, o => o.BatchSize = 65_536, featureColumn: "Pixels");
        double allocated = PeakMemory.AllocatedMiB(() => model.Transform(vectors).GetColumn<float[]>("Score").ToList());
        Console.WriteLine($"scoring 20 rows with BatchSize 65,536: {allocated:F1} MiB allocated (a full batch buffer would be {65_536 * 784 * 4 / (1 << 20)} MiB)");
        Assert.IsTrue(allocated < 20, $"{allocated:F1} MiB");
    }

    [TestMethod]
    public void OutputColumnsMustHaveNamesOfTheirOwn()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.EmbeddingColumnName = "Score"));
        StringAssert.Contains(e.Message, "EmbeddingColumnName must be a column name of its own, not also ScoreColumnName's");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options { PredictedLabelColumnName = "Score" }));
        StringAssert.Contains(e.Message, "PredictedLabelColumnName");
    }

    [TestMethod]
    [DataRow(typeof(byte))]
    [DataRow(typeof(ushort))]
    [DataRow(typeof(ulong))]
    public void LabelsKeyedWithAnyUnsignedTypeTrainAndEvaluate(Type keyType)
    {
        var ml = new MLContext(seed: 1);
        var kind = keyType == typeof(byte) ? DataKind.Byte : keyType == typeof(ushort) ? DataKind.UInt16 : DataKind.UInt64;
        var rows = FashionMnist.Load(ml, "train", 4);
        // MapValueToKey keys with uint; ConvertType re-keys the same classes with another unsigned type, as a loader may.
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.Transforms.Conversion.ConvertType("Label", outputKind: kind))
            .Fit(rows).Transform(rows);
        Assert.AreEqual(keyType, data.Schema["Label"].Type.RawType);
        var images = ml.Transforms.LoadImages("Image", FashionMnist.Root, "ImagePath").Fit(data).Transform(data);
        using var model = TinyFit.Fit(ml, images);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(images));
        Console.WriteLine($"{keyType.Name} keys: training accuracy {metrics.MicroAccuracy:P1}");
        Assert.AreEqual(10, model.LabelNames.Count);
        Assert.IsTrue(metrics.MicroAccuracy > 0);
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(-8)]
    [DataRow(int.MaxValue)]
    public void AStoredBatchSizeOutOfRangeIsRefusedAtLoad(int batchSize)
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var trained = TinyFit.Fit(ml, data);
        // A file as a writer with another idea of the batch size would make it: the checksum is valid, the value is not.
        var weights = new ViRModel(trained.Config);
        weights.load_state_dict(trained.Model.Module.state_dict());
        using var odd = new ViRImageClassificationTransformer(ml, weights, trained.LabelNames, trained.Columns, trained.Retention, ViRPrecision.Float32, batchSize);
        string path = TempPath(".zip");
        try
        {
            ml.Model.Save(odd, data.Schema, path);
            StringAssert.Contains(LoadError(ml, path).Message, $"its batch size is {batchSize}, but it must be from 1 to 65536");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AKeyCountBeyondTheLimitIsRefusedWithTheRealLimit()
    {
        var schema = new DataViewSchema.Builder();
        schema.AddColumn("Label", new KeyDataViewType(typeof(ulong), 1UL << 33));
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViRImageClassificationTrainer.LabelNames(schema.ToSchema(), "Label"));
        StringAssert.Contains(e.Message, "must have from 2 to 2,147,483,647 classes, but its key type has 8,589,934,592");
    }
}
