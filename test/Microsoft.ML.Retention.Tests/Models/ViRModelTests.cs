using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class ViRModelTests
{
    // Mini without drop-path, LayerScale at 1 so every retention layer moves the output.
    private static readonly ViRConfig Config = ViRConfig.Mini with { Depth = 3, DropPath = 0, LayerScaleInit = 1 };

    private static ViRModel NewModel(ViRConfig? config = null, int seed = 7)
    {
        manual_seed(seed);
        var model = new ViRModel(config ?? Config);
        model.eval();
        return model;
    }

    private static Tensor Images(long batch, long channels, long height, long width, int seed = 11) =>
        randn(new[] { batch, channels, height, width }, generator: new Generator((ulong)seed));

    [TestMethod]
    public void ShapesOfLogitsAndEmbedding()
    {
        using var scope = NewDisposeScope();
        using var vir = NewModel();
        using var vit = new ViTModel(Config);
        var images = Images(3, 1, 28, 28);
        CollectionAssert.AreEqual(new long[] { 3, 10 }, vir.forward(images).shape);
        CollectionAssert.AreEqual(new long[] { 3, 96 }, vir.Embed(images).shape);
        CollectionAssert.AreEqual(new long[] { 3, 10 }, vit.forward(images).shape);
        CollectionAssert.AreEqual(new long[] { 3, 96 }, vit.Embed(images).shape);
    }

    [TestMethod]
    [DataRow(28, 1)] [DataRow(28, 7)] [DataRow(28, 16)] [DataRow(28, 64)] [DataRow(56, 13)] [DataRow(56, 50)]
    public void WholeModelAgreesAcrossModes(int size, int chunk)
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        using var noGrad = no_grad();
        var images = Images(2, 1, size, size);

        var parallel = model.forward(images);
        TensorAssert.AreClose(parallel, model.forward(images, new RetentionSettings(RetentionMode.Chunkwise, chunk)), 1e-4, $"chunkwise {size}² C={chunk}");
        TensorAssert.AreClose(parallel, model.forward(images, new RetentionSettings(RetentionMode.Recurrent)), 1e-4, $"recurrent {size}²");
    }

    [TestMethod]
    public void EveryBlockSharesOneDecayCache()
    {
        using var scope = NewDisposeScope();
        using var model = new ViRModel(ViRConfig.Mini with { Depth = 4 });
        var decays = model.modules().OfType<MultiScaleRetention>().Select(m => m.Decay).ToList();
        Assert.AreEqual(4, decays.Count);
        Assert.AreEqual(1, decays.Distinct(ReferenceEqualityComparer.Instance).Count(), "one mask cache (and one budget) per model, not per block");
        using var other = new ViRModel(ViRConfig.Mini with { Depth = 1 });
        Assert.AreSame(decays[0], other.modules().OfType<MultiScaleRetention>().Single().Decay, "the same decays are shared by value");

        // The parallel form's mask is built once for all four blocks.
        var mask = decays[0].CausalMask(50, 0.125, ScalarType.Float32, CPU);
        model.forward(randn(1, 1, 28, 28), new RetentionSettings(RetentionMode.Parallel));
        Assert.AreSame(mask, decays[0].CausalMask(50, 0.125, ScalarType.Float32, CPU));
    }

    [TestMethod]
    public void ClassTokenIsLastSoTheFirstPatchReachesTheLogits()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        using var noGrad = no_grad();
        var images = Images(1, 1, 28, 28);
        var changed = images.clone();
        changed.narrow(2, 0, 4).narrow(3, 0, 4).add_(3); // the first 4×4 patch only
        Assert.AreEqual(16 * 3.0, (changed - images).sum().ToDouble(), 1e-3);

        double delta = (model.forward(images) - model.forward(changed)).abs().max().ToDouble();
        Assert.IsTrue(delta > 1e-3, $"changing the first patch moved the logits by only {delta:g3}");
    }

    [TestMethod]
    public void SavedWeightsLoadWithBitIdenticalOutput()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(seed: 1);
        // One training-mode pass moves the stem's BatchNorm running statistics away from their initial values.
        model.train();
        using (no_grad()) model.forward(Images(8, 1, 28, 28, seed: 5));
        model.eval();
        var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) model.save(writer);

        using var loaded = NewModel(seed: 2);
        stream.Position = 0;
        using (var reader = new BinaryReader(stream)) loaded.load(reader);

        var images = Images(2, 1, 28, 28);
        using var noGrad = no_grad();
        CollectionAssert.AreEqual(model.forward(images).data<float>().ToArray(), loaded.forward(images).data<float>().ToArray());
    }

    [TestMethod]
    public void PositionEmbeddingIsInterpolatedForAnotherResolution()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();
        using var noGrad = no_grad();
        // 28² has a 7×7 grid; 56×40 has 14×10.
        var logits = model.forward(Images(2, 1, 56, 40));
        CollectionAssert.AreEqual(new long[] { 2, 10 }, logits.shape);
        Assert.IsTrue(logits.isfinite().all().ToBoolean());


        // At the configured grid the learned embedding is used as is.
        Assert.IsTrue(model.PositionEmbedding(7, 7).equal(model.named_parameters().Single(p => p.name == "pos_embed").parameter).all().ToBoolean());

        // Resampling keeps a constant embedding constant and a left-to-right ramp increasing.
        var posEmbed = model.named_parameters().Single(p => p.name == "pos_embed").parameter;
        posEmbed.copy_(arange(7f).repeat(7).view(1, 49, 1).expand(1, 49, 96));
        var resampled = model.PositionEmbedding(14, 10).view(14, 10, 96);
        Assert.AreEqual(0.0, (resampled - resampled.select(0, 0)).abs().max().ToDouble(), 1e-5, "rows differ");
        var firstRow = resampled[0, .., 0].data<float>().ToArray();
        for (int i = 1; i < firstRow.Length; i++) Assert.IsTrue(firstRow[i] > firstRow[i - 1], $"ramp not increasing at column {i}");
    }

    [TestMethod]
    public void ModelBuiltInsideADisposeScopeOutlivesIt()
    {
        ViRModel model;
        using (var scope = NewDisposeScope()) model = new ViRModel(Config with { LayerScaleInit = 0.1 });
        using var noGrad = no_grad();
        using var images = Images(1, 1, 28, 28);
        Assert.IsTrue(model.forward(images).isfinite().all().ToBoolean());
        model.Dispose();
    }

    [TestMethod]
    public void ParameterNamesFollowTheModules()
    {
        using var model = NewModel(Config with { Stem = PatchStem.Patchify });
        var names = model.named_parameters().Select(p => p.name).ToList();
        CollectionAssert.Contains(names, "pos_embed");
        CollectionAssert.Contains(names, "cls_token");
        CollectionAssert.Contains(names, "patch_embed.proj.weight");
        CollectionAssert.Contains(names, "blocks.2.mixer.qkv.weight");
        CollectionAssert.Contains(names, "head.weight");

        // Linear weights start as N(0, 0.02²), not as a constant.
        var qkv = model.named_parameters().Single(p => p.name == "blocks.0.mixer.qkv.weight").parameter;
        Assert.AreEqual(0.02, qkv.std().ToDouble(), 0.002);
    }

    [TestMethod]
    [DataRow(28, 4, 49)] [DataRow(64, 16, 16)] [DataRow(32, 2, 256)]
    public void ConvolutionalStemMakesOneTokenPerPatch(int size, int patch, int patches)
    {
        using var scope = NewDisposeScope();
        var config = Config with { ImageSize = size, PatchSize = patch, Stem = PatchStem.Convolutional, Dim = 48, Depth = 1 };
        using var model = NewModel(config);
        Assert.AreEqual(patches, config.PatchCount);
        int convolutions = model.named_parameters().Count(p => p.name.StartsWith("patch_embed.", StringComparison.Ordinal) && p.parameter.dim() == 4);
        Assert.AreEqual((int)Math.Log2(patch), convolutions, "one stride-2 3×3 convolution per halving");
        Assert.IsTrue(model.named_parameters().Any(p => p.name == "patch_embed.pointwise.weight"), "the 1×1 projection to dim");

        using var noGrad = no_grad();
        var images = Images(2, 1, size, size);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, model.forward(images).shape);
        // The stem works on local neighbourhoods: every mode still agrees through it.
        TensorAssert.AreClose(model.forward(images, new RetentionSettings(RetentionMode.Parallel)), model.forward(images, new RetentionSettings(RetentionMode.Recurrent)), 1e-4, $"conv stem {size}² patch {patch}");
    }

    [TestMethod]
    [DataRow(28)] [DataRow(27)] [DataRow(7)]
    public void StridedConvolutionMatchesConv2d(int size)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var convolution = new StridedConvolution3x3(5, 8);
        var weight = convolution.parameters().Single();
        var images = Images(2, 5, size, size);
        using var noGrad = no_grad();
        var expected = nn.functional.conv2d(images, weight, strides: new long[] { 2, 2 }, padding: new long[] { 1, 1 });
        TensorAssert.AreClose(expected, convolution.forward(images), 1e-5, $"3×3/2 convolution of {size}×{size}");
    }

    [TestMethod]
    public void BadArgumentsThrowArgumentExceptionsNamingThem()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel();

        var e = Assert.ThrowsExactly<ArgumentException>(() => model.forward(Images(1, 1, 30, 28)));
        StringAssert.Contains(e.Message, "30×28"); StringAssert.Contains(e.Message, "patch size 4");

        e = Assert.ThrowsExactly<ArgumentException>(() => model.forward(Images(1, 3, 28, 28)));
        StringAssert.Contains(e.Message, "1 channels"); StringAssert.Contains(e.Message, "have 3");

        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RetentionSettings(RetentionMode.Chunkwise, -1));
        Assert.AreEqual("chunkSize", e.ParamName);

        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ViRModel(Config with { ImageSize = 30 }));
        Assert.AreEqual("ImageHeight", e.ParamName); StringAssert.Contains(e.Message, "30");

        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ViRModel(Config with { Dim = 100 }));
        Assert.AreEqual("Dim", e.ParamName); StringAssert.Contains(e.Message, "100");

        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ViRModel(Config with { ImageSize = 42, PatchSize = 6, Stem = PatchStem.Convolutional }));
        Assert.AreEqual("PatchSize", e.ParamName); StringAssert.Contains(e.Message, "power of two"); StringAssert.Contains(e.Message, "6");
    }
}
