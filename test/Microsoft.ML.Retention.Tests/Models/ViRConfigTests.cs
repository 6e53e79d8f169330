using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>The model's shape as data, and what the model knows about itself.</summary>
[TestClass]
public sealed class ViRConfigTests
{
    [TestMethod]
    public void ConfigRoundTripsThroughJsonAndAMissingFieldGetsItsDefault()
    {
        var config = ViRConfig.Mini with { Dim = 48, DecaySchedule = DecaySchedule.LogSpaced, MlpRatio = 3.5 };
        string json = config.ToJson();
        StringAssert.Contains(json, "\"Stem\":\"Convolutional\"");
        Assert.AreEqual(config, ViRConfig.FromJson(json));

        // A file written before Stem existed: the field takes its default.
        var older = ViRConfig.FromJson(json.Replace(",\"Stem\":\"Convolutional\"", ""));
        Assert.AreEqual(config with { Stem = PatchStem.Patchify }, older);

        Assert.ThrowsExactly<ArgumentException>(() => ViRConfig.FromJson("{ not json"));
        var invalid = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViRConfig.FromJson(json.Replace("\"Dim\":48", "\"Dim\":50")));
        StringAssert.Contains(invalid.Message, "ViRConfig.Dim must be a positive multiple of Heads (3), but it is 50");
    }

    [TestMethod]
    public void PresetsAreTheStaticConfigsByName()
    {
        CollectionAssert.AreEquivalent(new[] { "Mini", "Tiny", "Small", "Base", "Large" }, ViRConfig.Presets.Keys.ToArray());
        Assert.AreEqual(ViRConfig.Small, ViRConfig.Presets["small"]);
    }

    [TestMethod]
    public void TheModelNamesItsParametersWithoutWeightDecay()
    {
        using var model = new ViRModel(ViRConfig.Mini with { Depth = 1 });
        var noDecay = model.NoWeightDecay();
        Assert.IsTrue(noDecay.Contains("pos_embed") && noDecay.Contains("cls_token"));
        Assert.IsTrue(noDecay.Contains("blocks.0.norm1.weight") && noDecay.Contains("blocks.0.mixer.qkv.bias"), "norms and biases");
        Assert.IsFalse(noDecay.Contains("blocks.0.mixer.qkv.weight") || noDecay.Contains("head.weight"), "matrices decay");
        Assert.AreEqual(model.named_parameters().Count(p => p.parameter.dim() > 1 && p.name is not "pos_embed" and not "cls_token"),
            model.named_parameters().Count() - noDecay.Count);
    }

    [TestMethod]
    public void ForwardFlopsCountTheMatmulsByHand()
    {
        // 8×8 grayscale, 4×4 patches: n = 4 + 1 tokens, d = 8, MLP 16, 3 classes.
        var config = new ViRConfig { ImageSize = 8, Channels = 1, PatchSize = 4, Dim = 8, Heads = 2, Depth = 1, MlpRatio = 2, NumClasses = 3 };
        double patches = 2 * 4 * (1 * 4 * 4) * 8;                     // 4 patches of 16 pixels into 8 channels
        double block = 2 * 5 * 8 * 24 + 2 * 5 * 8 * 8                  // qkv, proj
                     + 2 * (2 * 5 * 8 * 16)                             // MLP, two layers
                     + 2 * 2 * 5 * 5 * 8;                               // Q·Kᵀ and scores·V
        double head = 2 * 8 * 3;
        using var vir = new ViRModel(config);
        using var vit = new ViTModel(config);
        Assert.AreEqual(patches + block + head, vir.ForwardFlopsPerImage());
        Assert.AreEqual(vir.ForwardFlopsPerImage(), vit.ForwardFlopsPerImage(), "the same counting for both");
    }

    [TestMethod]
    public void PerChannelPreprocessingMustNameEveryChannelOrOne()
    {
        (ViRConfig.Tiny with { Preprocessing = ImagePreprocessing.ImageNet }).Validate();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (ViRConfig.Mini with { Preprocessing = ImagePreprocessing.ImageNet }).Validate());
        StringAssert.Contains(e.Message, "ImagePreprocessing.Mean must hold one value for every channel or one per channel (1), but it holds 3");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (ViRConfig.Tiny with { Preprocessing = new ImagePreprocessing { Std = new[] { 0.2, 0.0, 0.2 } } }).Validate());
        StringAssert.Contains(e.Message, "ImagePreprocessing.Std must hold positive finite numbers, but it holds 0");
        var json = (ViRConfig.Tiny with { Preprocessing = ImagePreprocessing.ImageNet }).ToJson();
        Assert.AreEqual(ImagePreprocessing.ImageNet, ViRConfig.FromJson(json).Preprocessing);
        Assert.AreEqual((0 - 0.456) / 0.224, ImagePreprocessing.ImageNet.Range(1).Low, 1e-12);
    }
}
