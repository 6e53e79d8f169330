using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class TrainerPipelineTests
{
    private static readonly string ModelPath = Path.Combine(Path.GetTempPath(), $"vir-pipeline-{Environment.ProcessId}.zip");
    private static double _accuracy;
    private static List<ViREpochMetrics> _history = new();
    private static List<string> _log = new();

    /// <summary>The options of the short fit every test here shares.</summary>
    internal static ViRImageClassificationTrainer.Options ShortFitOptions() => new()
    {
        FeatureColumnName = "Image",
        Architecture = ViRConfig.Mini with { Depth = 4 },
        MaxEpoch = 8,
        BatchSize = 32,
        Augment = false, // on 1,000 images and 8 epochs, crops cost more accuracy than they add
        LearningRate = 2e-3,
        WarmupEpochs = 0.5,
        Seed = 42,
        Device = ViRDevice.Cpu,
    };

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        var ml = new MLContext(seed: 1);
        ml.Log += (_, e) => { lock (_log) _log.Add(e.Message); };
        var options = ShortFitOptions();
        options.MetricsCallback = m => _history.Add(m);
        var pipeline = FashionMnist.Preprocess(ml)
            .Append(ml.MulticlassClassification.Trainers.ViR(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var train = FashionMnist.Load(ml, "train", perClass: 100);
        using var model = (IDisposable)pipeline.Fit(train);
        var trained = (ITransformer)model;

        var test = trained.Transform(FashionMnist.Load(ml, "test", perClass: 30));
        _accuracy = ml.MulticlassClassification.Evaluate(test).MicroAccuracy;
        ml.Model.Save(trained, train.Schema, ModelPath);
    }

    [ClassCleanup]
    public static void DeleteModel() => File.Delete(ModelPath);

    [TestMethod]
    public void ShortFitOnRealImagesBeatsChanceByFar()
    {
        Console.WriteLine($"test accuracy after {_history.Count} epochs: {_accuracy:P1}");
        foreach (var m in _history) Console.WriteLine(m);
        Assert.AreEqual(8, _history.Count);
        Assert.IsTrue(_accuracy >= 0.60, $"test micro-accuracy {_accuracy:P1} is below the 60% floor (chance is 10%)");
        Assert.IsTrue(_history[^1].TrainLoss < _history[0].TrainLoss, "training loss did not fall");
    }

    [TestMethod]
    public void ProgressIsLoggedThroughTheContext()
    {
        Assert.IsTrue(_log.Any(l => l.Contains("Epoch 1/8, step") && l.Contains("loss")), "no step progress in mlContext.Log");
        Assert.IsTrue(_log.Any(l => l.Contains("Epoch 8/8 done")), "no epoch summary in mlContext.Log");
    }

    [TestMethod]
    public void SavedModelLoadsInAFreshContextWithIdenticalScores()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Load(ml, "test", perClass: 5);
        var loaded = ml.Model.Load(ModelPath, out var inputSchema);
        var again = new MLContext().Model.Load(ModelPath, out _);

        float[][] first = Scores(ml, loaded.Transform(data));
        float[][] second = Scores(ml, again.Transform(data));
        Assert.AreEqual(50, first.Length);
        for (int i = 0; i < first.Length; i++) CollectionAssert.AreEqual(first[i], second[i], $"row {i}");

        var predicted = ml.Data.CreateEnumerable<Prediction>(loaded.Transform(data), reuseRowObject: false).ToList();
        CollectionAssert.IsSubsetOf(predicted.Select(p => p.PredictedLabel).Distinct().ToList(),
            Directory.GetDirectories(Path.Combine(FashionMnist.Root, "train")).Select(Path.GetFileName).ToList());
        Assert.IsTrue(inputSchema.GetColumnOrNull("ImagePath").HasValue);
    }

    [TestMethod]
    public void AllThreeModesGiveTheSameScoresFromALoadedModel()
    {
        var ml = new MLContext();
        var data = FashionMnist.Load(ml, "test", perClass: 3);
        var chain = (TransformerChain<ITransformer>)ml.Model.Load(ModelPath, out _);
        var vir = chain.OfType<ViRImageClassificationTransformer>().Single();
        Assert.AreEqual(RetentionMode.Parallel, vir.Retention.Mode);
        var prepared = chain.Take(2).Aggregate(data, (d, t) => t.Transform(d));

        var parallel = Scores(ml, vir.Transform(prepared));
        foreach (var (mode, chunk) in new[] { (RetentionMode.Recurrent, 64), (RetentionMode.Chunkwise, 7), (RetentionMode.Chunkwise, 64) })
        {
            using var switched = vir.WithRetentionMode(mode, chunk);
            Assert.AreEqual(new RetentionSettings(mode, chunk), switched.Retention);
            var scores = Scores(ml, switched.Transform(prepared));
            double maxDiff = parallel.Zip(scores).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
            Console.WriteLine($"{mode} C={chunk}: max |Δscore| = {maxDiff:g3}");
            Assert.IsTrue(maxDiff <= 1e-4, $"{mode} (C={chunk}) scores differ from parallel by {maxDiff:g3}");
        }
    }

    [TestMethod]
    public void PredictionEngineScoresSingleRowsLikeTransform()
    {
        var ml = new MLContext();
        var model = ml.Model.Load(ModelPath, out _);
        var rows = FashionMnist.Interleaved(FashionMnist.Rows("test", 2));
        var batched = Scores(ml, model.Transform(ml.Data.LoadFromEnumerable(rows)));

        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, Prediction>(model);
        for (int i = 0; i < rows.Count; i++)
        {
            var prediction = engine.Predict(rows[i]);
            Assert.AreEqual(10, prediction.Score.Length);
            Assert.AreEqual(1.0, prediction.Score.Sum(), 1e-4);
            for (int k = 0; k < 10; k++) Assert.AreEqual(batched[i][k], prediction.Score[k], 1e-5, $"row {i}, class {k}");
        }
    }

    internal static float[][] Scores(MLContext ml, IDataView scored) =>
        scored.GetColumn<float[]>("Score").ToArray();

    private sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
