using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>A ViR with a 2-D decay (ViRConfig.SpatialDecay): every form the same model, saved and loaded with it.</summary>
[TestClass]
public sealed class SpatialViRTests
{
    private static ViRConfig Config(SpatialDecayShape shape) =>
        ViRConfig.Mini with { Depth = 2, DropPath = 0, LayerScaleInit = 1, SpatialDecay = shape, DecaySchedule = DecaySchedule.LogSpaced };

    private static ViRModel NewModel(ViRConfig config)
    {
        manual_seed(5);
        var model = new ViRModel(config);
        model.eval();
        return model;
    }

    [TestMethod]
    [DataRow(SpatialDecayShape.Bidirectional, 28, 28, 4)]
    [DataRow(SpatialDecayShape.Bidirectional, 36, 20, 9)]
    [DataRow(SpatialDecayShape.CausalQuadrant, 28, 28, 4)]
    [DataRow(SpatialDecayShape.CausalQuadrant, 20, 44, 16)]
    public void EveryFormGivesTheParallelFormsLogits(SpatialDecayShape shape, int height, int width, int chunk)
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(Config(shape));
        model.to(float64);
        using var noGrad = no_grad();
        var images = randn(new long[] { 2, 1, height, width }, float64, generator: new Generator(3));

        var parallel = model.forward(images, new RetentionSettings(RetentionMode.Parallel));
        foreach (var form in new[] { new RetentionSettings(RetentionMode.Chunkwise, chunk), new RetentionSettings(RetentionMode.Chunkwise), new RetentionSettings(RetentionMode.Recurrent) })
            TensorAssert.AreClose(parallel, model.forward(images, form), 1e-10, $"{shape} {height}×{width}, {form}");
    }

    [TestMethod]
    public void TheDecayShapeChangesTheModelAndTheClassTokenSeesTheFirstPatch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = randn(new long[] { 1, 1, 28, 28 }, generator: new Generator(4));
        var changed = images.clone();
        changed.narrow(2, 0, 4).narrow(3, 0, 4).add_(3); // the first patch, the farthest from the [class] token
        using var raster = NewModel(Config(SpatialDecayShape.Bidirectional) with { SpatialDecay = null });
        foreach (var shape in Enum.GetValues<SpatialDecayShape>())
        {
            using var model = NewModel(Config(shape));
            var logits = model.forward(images);
            Assert.IsTrue((logits - raster.forward(images)).abs().max().ToDouble() > 1e-3, $"{shape}: the same weights decay by another distance");
            double delta = (logits - model.forward(changed)).abs().max().ToDouble();
            Assert.IsTrue(delta > 1e-3, $"{shape}: changing the first patch moved the logits by only {delta:g3}");
        }
    }

    [TestMethod]
    public void TheClassTokenReadsTheGridAsTheNextPatchOfAWiderGridWould()
    {
        // [class] at (rows − 1, columns): the last token of a rows × (columns + 1) grid's causal quadrant, whose extra column
        // is empty but for it.
        using var scope = NewDisposeScope();
        long rows = 3, columns = 4, d = 5;
        var gen = new Generator(9);
        var gamma = tensor(new[] { 0.9, 0.6 });
        var (q, k, v) = (randn(new[] { 1L, 2, rows * columns + 1, d }, float64, generator: gen), randn(new[] { 1L, 2, rows * columns + 1, d }, float64, generator: gen),
            randn(new[] { 1L, 2, rows * columns + 1, d }, float64, generator: gen));
        Tensor Wider(Tensor t)
        {
            var grid = zeros(new[] { 1L, 2, rows, columns + 1, d }, float64);
            grid.narrow(3, 0, columns).copy_(t.narrow(2, 0, rows * columns).view(1, 2, rows, columns, d));
            grid.select(2, rows - 1).select(2, columns).copy_(t.select(2, rows * columns));
            return grid.view(1, 2, rows * (columns + 1), d);
        }
        var expected = SpatialRetention.Parallel(Wider(q), Wider(k), Wider(v), gamma, rows, columns + 1, SpatialDecayShape.CausalQuadrant).narrow(2, rows * (columns + 1) - 1, 1);
        var actual = SpatialRetention.ReadPastLast(q.narrow(2, rows * columns, 1), k, v, gamma, rows, columns);
        TensorAssert.AreClose(expected, actual, 1e-14, "[class] read");
    }

    [TestMethod]
    public void AModelWithA2DDecayRefusesStreamingByName()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(Config(SpatialDecayShape.CausalQuadrant));
        var error = Assert.ThrowsExactly<NotSupportedException>(() => model.EmbedStreaming((first, count) => zeros(1, 1, count, 28), 1, 28, 28));
        StringAssert.Contains(error.Message, "SpatialDecay CausalQuadrant");
    }

    [TestMethod]
    public void AViTRefusesTheRetentionFieldsItWouldIgnore()
    {
        var error = Assert.ThrowsExactly<ArgumentException>(() => new ViTModel(ViRConfig.Mini with { SpatialDecay = SpatialDecayShape.Bidirectional }));
        StringAssert.Contains(error.Message, "SpatialDecay and RetentionGroupNorm must be unset, but they are Bidirectional and False");
    }

    [TestMethod]
    public void RetNetsGroupNormIsPerTokenSoStreamingStillEqualsTheWholeImage()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(ViRConfig.Mini with { Depth = 2, DropPath = 0, LayerScaleInit = 1, RetentionGroupNorm = true });
        using var noGrad = no_grad();
        var images = randn(new long[] { 2, 1, 28, 28 }, generator: new Generator(6));
        var whole = model.Embed(images, new RetentionSettings(RetentionMode.Chunkwise));
        TensorAssert.AreClose(whole, model.Embed(images, new RetentionSettings(RetentionMode.Parallel)), 1e-4, "parallel");
        TensorAssert.AreClose(whole, model.EmbedStreaming(images, bandTokens: 7, ChunkSizes.Auto), 1e-4, "streamed in bands of a patch row");
    }

    [TestMethod]
    public void ConfigsWithoutTheFieldsLoadWithTheRasterDecay()
    {
        var json = ViRConfig.Mini.ToJson();
        StringAssert.Contains(json, "\"SpatialDecay\":null");
        var old = json.Replace("\"SpatialDecay\":null,", "").Replace("\"RetentionGroupNorm\":false,", "");
        Assert.IsFalse(old.Contains("SpatialDecay") || old.Contains("RetentionGroupNorm"), old);
        Assert.AreEqual(ViRConfig.Mini, ViRConfig.FromJson(old));
        var spatial = ViRConfig.Mini with { SpatialDecay = SpatialDecayShape.CausalQuadrant, RetentionGroupNorm = true };
        Assert.AreEqual(spatial, ViRConfig.FromJson(spatial.ToJson()));
        var bad = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (ViRConfig.Mini with { SpatialDecay = (SpatialDecayShape)7 }).Validate());
        StringAssert.Contains(bad.Message, "ViRConfig.SpatialDecay must be null, Bidirectional or CausalQuadrant, but it is 7");
    }

    [TestMethod]
    [DataRow(SpatialDecayShape.Bidirectional)]
    [DataRow(SpatialDecayShape.CausalQuadrant)]
    public void TheTrainerTrainsItAndModelZipKeepsItForEveryForm(SpatialDecayShape shape)
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var model = TinyFit.Fit(ml, data, o => o.Architecture = ((ViRConfig)o.Architecture) with { SpatialDecay = shape, RetentionGroupNorm = true });
        string path = Path.Combine(Path.GetTempPath(), $"vir-spatial-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            using var loaded = (ViRImageClassificationTransformer)ml.Model.Load(path, out _);
            Assert.AreEqual(model.Architecture, loaded.Architecture);
            Assert.AreEqual(shape, ((ViRConfig)loaded.Architecture).SpatialDecay);
            var scores = model.Transform(data).GetColumn<float[]>("Score").ToArray();
            foreach (var form in new[] { RetentionMode.Parallel, RetentionMode.Chunkwise, RetentionMode.Recurrent })
            {
                using var reformed = loaded.WithRetentionMode(form, 4);
                var again = reformed.Transform(data).GetColumn<float[]>("Score").ToArray();
                double diff = scores.Zip(again).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
                Assert.IsTrue(diff <= 1e-5, $"{shape} {form}: scores moved by {diff:g3} after the round trip");
            }
            // Readers of 0x00010005 would ignore the field, so the file says it needs 0x00010006.
            StringAssert.Contains(ModelHeaderReadable(path), "00010006");
        }
        finally
        {
            File.Delete(path);
        }
    }

    // ML.NET's model header (ModelHeader): the model signature at 0x40, the version it needs a reader of at 0x4C.
    private static string ModelHeaderReadable(string zipPath)
    {
        using var zip = System.IO.Compression.ZipFile.OpenRead(zipPath);
        foreach (var entry in zip.Entries.Where(e => e.Name == "Model.key"))
        {
            using var reader = new BinaryReader(entry.Open());
            var header = reader.ReadBytes(0x50);
            if (System.Text.Encoding.ASCII.GetString(header, 0x40, 8) is "VIRIMGCL" or "LCGMIRIV") return $"{BitConverter.ToUInt32(header, 0x4C):X8}";
        }
        throw new AssertFailedException("No ViR model entry in " + zipPath);
    }
}
