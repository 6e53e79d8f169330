using System.Reflection;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Models written by earlier versions load and score as they did; damaged weights are caught by their checksum.</summary>
[TestClass]
public sealed class ModelFormatTests
{
    /// <summary>
    /// TestData/format-XXXXXXXX holds a tiny model.zip written by that format's version of the library and the
    /// scores it gave then, on the first two training images of each class (TinyFit.Images(ml, 2)).
    /// </summary>
    [TestMethod]
    [DataRow("00010001")]
    [DataRow("00010002")]
    [DataRow("00010003")]
    [DataRow("00010004")]
    [DataRow("00010005")]
    public void ModelsOfEarlierFormatsLoadAndScoreAsBefore(string format)
    {
        string folder = Path.Combine(AppContext.BaseDirectory, "TestData", $"format-{format}");
        var expected = JsonSerializer.Deserialize<float[][]>(File.ReadAllText(Path.Combine(folder, "scores.json")))!;
        var ml = new MLContext(seed: 1);
        var model = ml.Model.Load(Path.Combine(folder, "model.zip"), out _);
        var scores = model.Transform(TinyFit.Images(ml, 2)).GetColumn<float[]>("Score").ToArray();

        Assert.AreEqual(expected.Length, scores.Length);
        double maxDiff = expected.Zip(scores).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Assert.IsTrue(maxDiff <= 1e-6, $"format 0x{format}: scores moved by {maxDiff:g3}");
        ((IDisposable)model).Dispose();
    }

    [TestMethod]
    public void WeightsChangedInsideAValidZipAreCaughtByTheirChecksum()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var model = TinyFit.Fit(ml, data);
        string path = Path.Combine(Path.GetTempPath(), $"vir-checksum-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            // 64 inverted bytes in the middle of the weights; the zip is rewritten, so its own CRC is valid.
            ModelZip.RewriteEntry(path, "ViRWeights", bytes =>
            {
                for (int i = bytes.Length / 2; i < bytes.Length / 2 + 64; i++) bytes[i] = (byte)~bytes[i];
                return bytes;
            });
            var wrapper = Assert.ThrowsExactly<TargetInvocationException>(() => ml.Model.Load(path, out _));
            var reason = wrapper.GetModelLoadError();
            Assert.IsInstanceOfType<InvalidDataException>(reason);
            StringAssert.Contains(reason.Message, "does not match the checksum saved with it");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void TheLoadErrorOfASavedChainIsFoundUnderML_NETsWrapping()
    {
        var ml = new MLContext(seed: 1);
        var preprocess = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 2));
        using var vir = TinyFit.Fit(ml, preprocess.Transform(FashionMnist.Load(ml, "train", 2)));
        string path = Path.Combine(Path.GetTempPath(), $"vir-chain-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(preprocess.Append(vir), FashionMnist.Load(ml, "train", 2).Schema, path);
            ModelZip.RewriteEntry(path, "ViRWeights", bytes => bytes.AsSpan(0, bytes.Length / 2).ToArray());
            var wrapper = Assert.ThrowsExactly<TargetInvocationException>(() => ml.Model.Load(path, out _));
            Assert.IsInstanceOfType<TargetInvocationException>(wrapper.InnerException, "a chain's loader is called through reflection too");
            var reason = wrapper.GetModelLoadError();
            Assert.IsInstanceOfType<InvalidDataException>(reason);
            StringAssert.Contains(reason.Message, "but the 'ViRWeights' entry holds"); // half the weights: refused before the model is built
        }
        finally
        {
            File.Delete(path);
        }
    }
}
