using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Inputs that used to give a silent wrong answer or a native error: each now fails up front, naming what is wrong.</summary>
[TestClass]
public sealed class SilentFailureTests
{
    private const int BadRow = 3;

    /// <summary>Real Fashion-MNIST images as [1, 28, 28] pixel vectors in [0, 1].</summary>
    private static List<PixelRow> PixelRows(MLContext ml)
    {
        var pixels = FashionMnist.Preprocess(ml)
            .Append(ml.Transforms.ResizeImages("Image", 28, 28, "Image"))
            .Append(ml.Transforms.ConvertToGrayscale("Gray", "Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Gray", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1 / 255f))
            .Fit(FashionMnist.Load(ml, "train", 2)).Transform(FashionMnist.Load(ml, "train", 2));
        return pixels.GetColumn<float[]>("Pixels").Zip(FashionMnist.Interleaved(FashionMnist.Rows("train", 2)))
            .Select(p => new PixelRow { Pixels = p.First, Label = p.Second.Label }).ToList();
    }

    private static IDataView Keyed(MLContext ml, List<PixelRow> rows) =>
        ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));

    [TestMethod]
    [DataRow(float.NaN)]
    [DataRow(float.PositiveInfinity)]
    [DataRow(float.NegativeInfinity)]
    public void NonFinitePixelsAreNamedAtFitAndAtPrediction(float bad)
    {
        var ml = new MLContext(seed: 1);
        var clean = PixelRows(ml);
        var dirty = PixelRows(ml);
        dirty[BadRow].Pixels[100] = bad;

        var e = Assert.ThrowsExactly<InvalidDataException>(() => TinyFit.Fit(ml, Keyed(ml, dirty), featureColumn: "Pixels"));
        StringAssert.Contains(e.Message, $"Column 'Pixels', row {BadRow}");
        StringAssert.Contains(e.Message, $"pixel value 100 is {bad}");
        Assert.IsFalse(e.Message.Contains("LearningRate", StringComparison.Ordinal), "bad input is not a learning-rate problem");
        using (TinyFit.Fit(ml, Keyed(ml, dirty), o => o.SkipBadImages = true, featureColumn: "Pixels")) { }

        using var model = TinyFit.Fit(ml, Keyed(ml, clean), featureColumn: "Pixels");
        var batch = Assert.ThrowsExactly<InvalidDataException>(() => model.Transform(Keyed(ml, dirty)).GetColumn<float[]>("Score").ToList());
        StringAssert.Contains(batch.Message, $"Column 'Pixels', row {BadRow}");
        using var engine = ml.Model.CreatePredictionEngine<PixelRow, FashionMnist.ScoreRow>(model);
        Assert.IsTrue(engine.Predict(clean[0]).Score.All(float.IsFinite));
        var single = Assert.ThrowsExactly<InvalidDataException>(() => engine.Predict(dirty[BadRow]));
        StringAssert.Contains(single.Message, $"pixel value 100 is {bad}");
    }

    [TestMethod]
    public void OneStepWithAnAbsurdLearningRateThrowsInsteadOfReturningANonFiniteModel()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TinyFit.Fit(ml, data, o =>
        {
            o.LearningRate = 1e30; // the one update leaves finite weights that score NaN
            o.BatchSize = 64;      // 40 images: one step, so the loss is never computed after the update
            o.GradientClipNorm = 0;
            o.WarmupEpochs = 0;
        }));
        StringAssert.Contains(e.Message, "Training diverged: after the last step (1 steps, 1 epochs)");
        StringAssert.Contains(e.Message, "outputs on the training images are not finite");

        // Beyond what libtorch's float32 optimizer step can take, the option itself is refused (before: a native overflow error).
        var option = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.LearningRate = 1e39));
        StringAssert.Contains(option.Message, "LearningRate must be a positive number no larger than 1e30, but it is 1E+39");
    }

    [TestMethod]
    public void InterleavedPixelsAreRejectedWithTheFix()
    {
        var ml = new MLContext(seed: 1);
        IDataView Pixels(bool interleave) => FashionMnist.Preprocess(ml)
            .Append(ml.Transforms.ResizeImages("Image", 28, 28, "Image"))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: interleave, scaleImage: 1 / 255f))
            .Fit(FashionMnist.Load(ml, "train", 2)).Transform(FashionMnist.Load(ml, "train", 2));
        var interleaved = Pixels(interleave: true);
        CollectionAssert.AreEqual(new[] { 28, 28, 3 }, ((VectorDataViewType)interleaved.Schema["Pixels"].Type).Dimensions.ToArray());

        var fit = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, interleaved, featureColumn: "Pixels"));
        StringAssert.Contains(fit.Message, "[28, 28, 3]");
        StringAssert.Contains(fit.Message, "interleavePixelColors: false");
        StringAssert.Contains(fit.Message, "with { Channels = 28 }");
        // The way out the message names: a vector of 28 planes, read as planar.
        using (TinyFit.Fit(ml, interleaved, o => o.Architecture = o.Architecture with { Channels = 28 }, featureColumn: "Pixels")) { }

        using var model = TinyFit.Fit(ml, Pixels(interleave: false), featureColumn: "Pixels");
        Assert.AreEqual(3, model.Config.Channels);
        var predict = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(interleaved));
        StringAssert.Contains(predict.Message, "interleavePixelColors: false");
    }

    [TestMethod]
    [DataRow(9)]
    [DataRow(11)]
    public void AValidationSetWithOtherClassesIsRejectedUpFront(int validationClasses)
    {
        var ml = new MLContext(seed: 1);
        var train = TinyFit.Images(ml, 2);
        var rows = FashionMnist.Rows("train", 2);
        var classes = rows.Select(r => r.Label).Distinct().Order(StringComparer.Ordinal).ToList();
        var keyRows = validationClasses < 10
            ? rows.Where(r => r.Label != classes[^1]).ToList()
            : rows.Append(new FashionMnist.ImageRow { ImagePath = rows[0].ImagePath, Label = "Zebra" }).ToList();
        var validation = FashionMnist.Preprocess(ml).Fit(ml.Data.LoadFromEnumerable(keyRows)).Transform(ml.Data.LoadFromEnumerable(keyRows));

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, train, o => o.ValidationSet = validation));
        StringAssert.Contains(e.Message, $"the training data has 10 (");
        StringAssert.Contains(e.Message, $"the ValidationSet has {validationClasses} (");
        StringAssert.Contains(e.Message, "Fit one MapValueToKey on the training data and apply it to both");
    }

    [TestMethod]
    public void AKeyBeyondTheKeyTypesCountIsNamedAndNeverReachesLibtorch()
    {
        var ml = new MLContext(seed: 1);
        var rows = PixelRows(ml).Select((r, i) => new KeyedPixelRow { Pixels = r.Pixels, Label = (uint)(i % 10 + 1) }).ToList();
        rows[BadRow].Label = 11; // ML.NET reads a key beyond its type's count as missing (0)
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TinyFit.Fit(ml, ml.Data.LoadFromEnumerable(rows), featureColumn: "Pixels"));
        StringAssert.Contains(e.Message, $"Column 'Label', row {BadRow}: the label is missing (key value 0)");
    }

    [TestMethod]
    public void OptionsChangedAfterTheTrainerWasMadeAreCheckedAtFit()
    {
        var ml = new MLContext(seed: 1);
        var options = TinyFit.Options();
        var trainer = ml.MulticlassClassification.Trainers.ViR(options);
        options.BatchSize = 0;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(TinyFit.Images(ml, 2)));
        StringAssert.Contains(e.Message, "BatchSize must be from 1 to 65536 (ViRLimits.MaxBatchSize), but it is 0");
    }

    [TestMethod]
    public void MissingColumnMessagesListOnlyVisibleColumns()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2); // MapValueToKey("Label") hides the text Label behind the key Label
        Assert.AreEqual(2, data.Schema.Count(c => c.Name == "Label"));
        var image = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, featureColumn: "Picture"));
        var label = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TinyFit.Fit(ml, data, o => o.LabelColumnName = "Class"));
        foreach (var e in new[] { image, label })
            Assert.AreEqual(1, e.Message.Split("'Label'").Length - 1, e.Message);
    }

    private sealed class KeyedPixelRow
    {
        [VectorType(1, 28, 28)]
        public float[] Pixels { get; set; } = [];
        [KeyType(10)]
        public uint Label { get; set; }
    }

    private sealed class PixelRow
    {
        [VectorType(1, 28, 28)]
        public float[] Pixels { get; set; } = [];
        public string Label { get; set; } = "";
    }
}
