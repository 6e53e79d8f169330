using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class TrainerBehaviourTests
{
    private static float[] Weights(ViRImageClassificationTransformer model) =>
        model.Model.Module.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();

    [TestMethod]
    public void FixedSeedWithoutAugmentationGivesBitIdenticalWeights()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var first = TinyFit.Fit(ml, data, o => o.MaxEpoch = 2);
        using var second = TinyFit.Fit(new MLContext(seed: 1), data, o => o.MaxEpoch = 2);
        using var otherSeed = TinyFit.Fit(ml, data, o => { o.MaxEpoch = 2; o.Seed = 4; });
        CollectionAssert.AreEqual(Weights(first), Weights(second));
        CollectionAssert.AreNotEqual(Weights(first), Weights(otherSeed));
    }

    [TestMethod]
    public void StreamingTrainingWorksWhenImagesExceedTheMemoryBudget()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var epochs = new List<ViREpochMetrics>();
        using var streamed = TinyFit.Fit(ml, data, o => { o.InMemoryBudgetBytes = 0; o.MaxEpoch = 2; o.MetricsCallback = epochs.Add; });
        using var streamedAgain = TinyFit.Fit(ml, data, o => { o.InMemoryBudgetBytes = 0; o.MaxEpoch = 2; });
        Assert.IsTrue(log.Any(l => l.Contains("Streaming 40 training images")), "the streaming path was not taken");
        Assert.AreEqual(2, epochs.Count);
        Assert.IsTrue(epochs.All(e => double.IsFinite(e.TrainLoss) && e.Step == 3 * e.Epoch));
        CollectionAssert.AreEqual(Weights(streamed), Weights(streamedAgain));
        InputColumnTests.AssertScores(ml, streamed.Transform(data), 40);
    }

    [TestMethod]
    public void CancelExecutionStopsTrainingBetweenSteps()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        int steps = 0;
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains(", step ") && ++steps == 2) ml.CancelExecution();
        };
        Assert.ThrowsExactly<OperationCanceledException>(() => TinyFit.Fit(ml, data, o => { o.MaxEpoch = 50; o.BatchSize = 4; }));
        Assert.IsTrue(steps < 10, $"training went on for {steps} logged steps after cancellation");
    }

    [TestMethod]
    public void ValidationFractionReportsWholeSetMetricsAndEarlyStoppingRestoresTheBest()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, perClass: 6);
        var epochs = new List<ViREpochMetrics>();
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var model = TinyFit.Fit(ml, data, o =>
        {
            o.MaxEpoch = 30;
            o.LearningRate = 3e-2; // high on purpose, so validation loss turns up early
            o.ValidationSetFraction = 0.25;
            o.EarlyStopping = new EarlyStoppingOptions { Patience = 2 };
            o.MetricsCallback = epochs.Add;
        });
        Assert.IsTrue(epochs.Count < 30, "early stopping never stopped");
        Assert.IsTrue(epochs.All(e => e.ValidationLoss is > 0 && e.ValidationAccuracy is >= 0 and <= 1));
        // Whole-set accuracy over the held-out rows is a multiple of 1/count, not a last-batch figure.
        Assert.IsTrue(log.Any(l => l.Contains("Early stopping after epoch")));
        int best = epochs.OrderBy(e => e.ValidationLoss).First().Epoch;
        if (best != epochs.Count) Assert.IsTrue(log.Any(l => l.Contains($"Restoring the weights of epoch {best}")), $"best epoch {best} not restored");
    }

    [TestMethod]
    public void ValidationSetIsScoredEveryEpoch()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var validation = TinyFit.Images(ml, perClass: 2);
        var epochs = new List<ViREpochMetrics>();
        using var model = TinyFit.Fit(ml, data, o => { o.MaxEpoch = 2; o.ValidationSet = validation; o.MetricsCallback = epochs.Add; });
        Assert.AreEqual(2, epochs.Count);
        // 20 validation images: accuracy is a multiple of 1/20.
        foreach (var e in epochs) Assert.AreEqual(0, Math.Round(e.ValidationAccuracy!.Value * 20, 6) % 1, 1e-6);
    }

    [TestMethod]
    public void SavedTransformerCarriesItsWeightsInsideTheZip()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        using var model = TinyFit.Fit(ml, data);
        string path = Path.Combine(Path.GetTempPath(), $"vir-zip-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            long parameterBytes = model.Model.Module.parameters().Sum(p => p.NumberOfElements * 4);
            using (var zip = ZipFile.OpenRead(path))
            {
                var weights = zip.Entries.Single(e => e.Name == "ViRWeights");
                Assert.IsTrue(weights.Length >= parameterBytes, $"weights entry has {weights.Length} bytes, parameters need {parameterBytes}");
            }

            var loaded = new MLContext().Model.Load(path, out _);
            var vir = (ViRImageClassificationTransformer)loaded;
            CollectionAssert.AreEqual(Weights(model), Weights(vir));
            CollectionAssert.AreEqual(model.LabelNames.ToList(), vir.LabelNames.ToList());
            Assert.AreEqual(model.Config, vir.Config);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ModeSwitchedTransformersShareWeightsUntilTheLastIsDisposed()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var model = TinyFit.Fit(ml, data);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.WithRetentionMode(RetentionMode.Chunkwise, -1));
        var chunkwise = model.WithRetentionMode(RetentionMode.Chunkwise, 5);
        Assert.AreEqual(RetentionMode.Parallel, model.Retention.Mode);
        model.Dispose();
        InputColumnTests.AssertScores(ml, chunkwise.Transform(data), 40);
        chunkwise.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => chunkwise.Transform(data));
    }
}
