using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class InputColumnTests
{
    [TestMethod]
    public void TrainsAndScoresFromMLImages()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var model = TinyFit.Fit(ml, data);
        AssertScores(ml, model.Transform(data), 40);
    }

    [TestMethod]
    public void TrainsAndScoresFromLoadRawImageBytes()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.LoadRawImageBytes("Image", FashionMnist.Root, "ImagePath"))
            .Fit(FashionMnist.Load(ml, "train", 4)).Transform(FashionMnist.Load(ml, "train", 4));
        using var model = TinyFit.Fit(ml, data);
        AssertScores(ml, model.Transform(data), 40);
    }

    [TestMethod]
    public void TrainsAndScoresFromByteArraysInAPoco()
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Interleaved(FashionMnist.Rows("train", 4))
            .Select(r => new FashionMnist.BytesRow { Image = File.ReadAllBytes(Path.Combine(FashionMnist.Root, r.ImagePath)), Label = r.Label });
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        using var model = TinyFit.Fit(ml, data);
        AssertScores(ml, model.Transform(data), 40);

        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.BytesRow, FashionMnist.ScoreRow>(model);
        Assert.AreEqual(1.0, engine.Predict(rows.First()).Score.Sum(), 1e-4);
    }

    [TestMethod]
    public void TrainsAndScoresFromExtractPixelsVectors()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Preprocess(ml)
            .Append(ml.Transforms.ResizeImages("Image", 28, 28, "Image"))
            .Append(ml.Transforms.ConvertToGrayscale("Gray", "Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Gray", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1 / 255f))
            .Fit(FashionMnist.Load(ml, "train", 4)).Transform(FashionMnist.Load(ml, "train", 4));
        var pixels = (VectorDataViewType)data.Schema["Pixels"].Type;
        Assert.AreEqual(28 * 28, pixels.Size);

        using var model = TinyFit.Fit(ml, data, featureColumn: "Pixels");
        Assert.AreEqual(1, model.Config.Channels);
        AssertScores(ml, model.Transform(data), 40);
    }

    [TestMethod]
    public void ImagesOfAnySizeAreResizedToTheModel()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var larger = ml.Transforms.ResizeImages("Image", 40, 36, "Image").Fit(data).Transform(data);
        using var model = TinyFit.Fit(ml, data);
        AssertScores(ml, model.Transform(larger), 40);
    }

    [TestMethod]
    public void EmbeddingColumnHoldsTheClassRepresentation()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var model = TinyFit.Fit(ml, data, o => o.EmbeddingColumnName = "Embedding");
        var embeddings = model.Transform(data).GetColumn<float[]>("Embedding").ToArray();
        Assert.AreEqual(40, embeddings.Length);
        Assert.IsTrue(embeddings.All(e => e.Length == 24 && e.All(float.IsFinite)));
        Assert.IsTrue(embeddings[0].Zip(embeddings[1]).Any(p => p.First != p.Second), "different images gave the same embedding");
    }

    internal static void AssertScores(MLContext ml, IDataView scored, int rows)
    {
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        Assert.AreEqual(rows, scores.Length);
        foreach (var s in scores)
        {
            Assert.AreEqual(10, s.Length);
            Assert.AreEqual(1.0, s.Sum(), 1e-4);
        }
        var predicted = scored.GetColumn<uint>("PredictedLabel").ToArray();
        Assert.IsTrue(predicted.All(k => k is >= 1 and <= 10));
        for (int i = 0; i < rows; i++) Assert.AreEqual(Array.IndexOf(scores[i], scores[i].Max()) + 1, (int)predicted[i]);
    }
}
