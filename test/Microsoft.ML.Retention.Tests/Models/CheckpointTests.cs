using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>safetensors checkpoints with timm's names: written, read back, and refused when they do not fit.</summary>
[TestClass]
public sealed class CheckpointTests
{
    private static string TempFile() => Path.Combine(Path.GetTempPath(), $"vir-{Guid.NewGuid():N}.safetensors");

    [TestMethod]
    [DataRow(PatchStem.Convolutional)]
    [DataRow(PatchStem.Patchify)]
    public void ACheckpointRoundTripsWithTimmNamesAndTheSameLogits(PatchStem stem)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var config = ViRConfig.Mini with { Stem = stem, Depth = 2, LayerScaleInit = 0.1 };
        using var model = new ViRModel(config);
        model.eval();
        string path = TempFile();
        try
        {
            ViRCheckpoint.Save(model, path, new[] { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" });
            var (tensors, metadata) = SafeTensors.Read(path);
            var names = tensors.Keys.ToHashSet();
            foreach (var t in tensors.Values) t.Dispose();
            foreach (var name in new[] { "pos_embed", "cls_token", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias",
                         "blocks.1.attn.decay", "blocks.0.ls1.gamma", "blocks.1.ls2.gamma", "blocks.0.mlp.fc1.weight", "blocks.1.mlp.fc2.bias",
                         "norm.weight", "head.weight", "patch_embed.proj.weight" })
                Assert.IsTrue(names.Contains(name), $"{stem}: no tensor {name} among {string.Join(", ", names.Order())}");
            if (stem == PatchStem.Convolutional)
                foreach (var name in new[] { "patch_embed.stem.0.conv.weight", "patch_embed.stem.1.bn.running_var", "patch_embed.stem.0.bn.bias" })
                    Assert.IsTrue(names.Contains(name), $"no tensor {name} among {string.Join(", ", names.Order())}");
            Assert.IsFalse(names.Any(n => n.Contains("mixer") || n.Contains("pointwise") || n.Contains("num_batches")), string.Join(", ", names.Order()));
            Assert.AreEqual(config with { }, ViRConfig.FromJson(metadata[ViRCheckpoint.ConfigKey]));

            using var loaded = ViRCheckpoint.Load(path, out var labels);
            loaded.eval();
            CollectionAssert.AreEqual(new[] { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j" }, labels!.ToArray());
            var images = randn(3, 1, 28, 28);
            foreach (var mode in new[] { RetentionMode.Parallel, RetentionMode.Chunkwise, RetentionMode.Recurrent })
                Assert.IsTrue(model.forward(images, new RetentionSettings(mode)).equal(loaded.forward(images, new RetentionSettings(mode))).all().ToBoolean(), $"{stem} {mode}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void LoadViRWeightsReadsTheTrainersDefaultImageColumn()
    {
        var ml = new Microsoft.ML.MLContext(seed: 1);
        using var trained = TinyFit.Fit(ml, TinyFit.Images(ml, 2));
        string path = TempFile();
        try
        {
            trained.SaveWeights(path);
            using var loaded = ml.Model.LoadViRWeights(path);
            Assert.AreEqual(new ViRImageClassificationTrainer.Options().FeatureColumnName, loaded.Columns.Features);
            Assert.AreEqual("Features", loaded.Columns.Features, "ML.NET's default feature column");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AWrongShapeOrAMissingTensorIsNamedAndNothingIsLoaded()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var config = ViRConfig.Mini with { Depth = 2 };
        using var source = new ViRModel(config);
        string good = TempFile(), bad = TempFile();
        try
        {
            ViRCheckpoint.Save(source, good);
            var (tensors, metadata) = SafeTensors.Read(good);
            tensors["blocks.1.attn.qkv.weight"] = zeros(3 * 96, 64);
            tensors.Remove("blocks.0.mlp.fc2.bias");
            tensors["blocks.0.attn.gate.weight"] = zeros(96, 96);
            SafeTensors.Write(bad, tensors, metadata);

            var e = Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.Load(bad, out _));
            StringAssert.Contains(e.Message, "blocks.1.attn.qkv.weight: expected [288, 96], actual [288, 64]");
            StringAssert.Contains(e.Message, "Missing: blocks.0.mlp.fc2.bias [96]");
            StringAssert.Contains(e.Message, "Unexpected: blocks.0.attn.gate.weight");
            StringAssert.Contains(e.Message, "nothing was loaded");

            // Into an existing model (a trainer's InitialWeights): it keeps its own weights.
            using var target = new ViRModel(config);
            var before = target.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
            Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.LoadInto(target, bad));
            foreach (var (name, value) in target.state_dict())
                Assert.IsTrue(value.equal(before[name]).all().ToBoolean(), $"{name} changed although loading failed");

            // Another decay schedule than the config's.
            tensors = SafeTensors.Read(good).Tensors;
            tensors["blocks.0.attn.decay"] = tensor(new[] { 0.5f, 0.6f, 0.7f });
            SafeTensors.Write(bad, tensors, metadata);
            e = Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.Load(bad, out _));
            StringAssert.Contains(e.Message, "blocks.0.attn.decay is [0.5, 0.6, 0.7], but the config's DecaySchedule RetNet gives");
        }
        finally
        {
            File.Delete(good);
            File.Delete(bad);
        }
    }

    [TestMethod]
    public void ATruncatedOrForeignFileIsRefusedWithItsCause()
    {
        string path = TempFile();
        try
        {
            File.WriteAllBytes(path, new byte[] { 1, 2, 3 });
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.Load(path, out _)).Message, "fewer than the 8 of the header size");
            File.WriteAllBytes(path, BitConverter.GetBytes(1000L).Concat(new byte[10]).ToArray());
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.Load(path, out _)).Message, "the header size is 1000 bytes, but only 10 follow");

            using var scope = NewDisposeScope();
            using var model = new ViRModel(ViRConfig.Mini with { Depth = 1 });
            ViRCheckpoint.Save(model, path);
            byte[] bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^100]);
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => ViRCheckpoint.Load(path, out _)).Message, "byte range");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
