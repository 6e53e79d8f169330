using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

/// <summary>RMT through the one ML.NET layer: the same trainer, transformer, model.zip and checkpoints as ViR.</summary>
[TestClass]
public sealed class RmtTrainerTests
{
    /// <summary>An RMT small enough to fit in seconds: grids 7, 4, 2, 1 as <see cref="RmtConfig.Mini"/>, narrower.</summary>
    internal static readonly RmtConfig Tiny = RmtConfig.Mini with
    {
        Stages = new RmtStage[] { new(16, 1, 2, 3, 4, Decomposed: true), new(32, 1, 2, 3, 4, Decomposed: false), new(32, 1, 4, 3, 4, Decomposed: false), new(64, 1, 4, 3, 4, Decomposed: false) },
        Projection = 32,
    };

    internal static ViRImageClassificationTrainer.RmtOptions Options() => new()
    {
        FeatureColumnName = "Image",
        Architecture = Tiny,
        MaxEpoch = 1,
        BatchSize = 16,
        Seed = 3,
        Device = ViRDevice.Cpu,
    };

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
        public float[] Embedding { get; set; } = [];
    }

    [TestMethod]
    public void AnRmtFitsScoresAndRoundTripsThroughModelZipLikeAViR()
    {
        var ml = new MLContext(seed: 1);
        var raw = FashionMnist.Load(ml, "train", 8);
        var preprocess = FashionMnist.Preprocess(ml).Fit(raw);
        var epochs = new List<ViREpochMetrics>();
        var options = Options();
        options.EmbeddingColumnName = "Embedding";
        options.MaxEpoch = 2;
        options.ValidationSetFraction = 0.25;
        options.EarlyStopping = new EarlyStoppingOptions { Patience = 1 };
        options.MetricsCallback = epochs.Add;
        using var rmt = ml.MulticlassClassification.Trainers.Rmt(options).Fit(preprocess.Transform(raw));

        Assert.IsInstanceOfType<RmtConfig>(rmt.Architecture);
        Assert.AreEqual("RMT", rmt.Architecture.Backbone);
        Assert.AreEqual(Tiny with { NumClasses = 10 }, rmt.Architecture);
        var notViR = Assert.ThrowsExactly<InvalidOperationException>(() => rmt.Config);
        StringAssert.Contains(notViR.Message, "RmtConfig");
        Assert.IsTrue(epochs.Count >= 1 && epochs.All(e => e.ValidationAccuracy is not null), "validation ran every epoch");

        var rows = FashionMnist.Interleaved(FashionMnist.Rows("test", 2));
        var pipeline = preprocess.Append(rmt);
        var batched = pipeline.Transform(ml.Data.LoadFromEnumerable(rows));
        var scores = batched.GetColumn<float[]>("Score").ToArray();
        var embeddings = batched.GetColumn<float[]>("Embedding").ToArray();
        Assert.IsTrue(embeddings.All(e => e.Length == 32 && e.All(float.IsFinite)), "the embedding is the pooled features, Projection values");
        using (var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, Prediction>(pipeline, new PredictionEngineOptions { OwnsTransformer = false }))
            for (int i = 0; i < rows.Count; i++)
            {
                var single = engine.Predict(rows[i]).Score;
                for (int k = 0; k < 10; k++) Assert.AreEqual(scores[i][k], single[k], 1e-5, $"row {i}, class {k}: PredictionEngine against Transform");
            }

        string path = Path.Combine(Path.GetTempPath(), $"rmt-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(pipeline, raw.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            var again = loaded.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < rows.Count; i++) CollectionAssert.AreEqual(scores[i], again[i], $"row {i} after model.zip");
            var loadedRmt = ((TransformerChain<ITransformer>)loaded).OfType<ViRImageClassificationTransformer>().Single();
            Assert.AreEqual(rmt.Architecture, loadedRmt.Architecture);
            loadedRmt.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AnRmtSavedAsSafetensorsLoadsBack()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var rmt = ml.MulticlassClassification.Trainers.Rmt(Options()).Fit(data);
        var scores = rmt.Transform(data).GetColumn<float[]>("Score").ToArray();
        string path = Path.Combine(Path.GetTempPath(), $"rmt-{Guid.NewGuid():N}.safetensors");
        try
        {
            rmt.SaveWeights(path);
            using var loaded = ml.Model.LoadRmtWeights(path, featureColumnName: "Image");
            CollectionAssert.AreEqual(rmt.LabelNames.ToArray(), loaded.LabelNames.ToArray());
            var again = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
            for (int i = 0; i < scores.Length; i++) CollectionAssert.AreEqual(scores[i], again[i], $"row {i}");

            var wrongLoader = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadViRWeights(path));
            StringAssert.Contains(wrongLoader.Message, path);

        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void InitialWeightsOfAnotherClassCountLoadEverythingButTheHeadAndSaySo()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var data = TinyFit.Images(ml, 2);
        string path = Path.Combine(Path.GetTempPath(), $"rmt-initial-{Guid.NewGuid():N}.safetensors");
        try
        {
            Dictionary<string, float[]> pretrained;
            manual_seed(11);
            using (var source = new RmtModel(Tiny with { NumClasses = 1000 }))
            {
                RmtCheckpoint.Save(source, path);
                pretrained = source.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
            }
            var options = Options();
            options.InitialWeights = path;
            options.LearningRate = 1e-30; // a step too small to move a weight: what is left is what was loaded
            options.WeightDecay = 0;
            using var rmt = ml.MulticlassClassification.Trainers.Rmt(options).Fit(data);

            Assert.IsTrue(log.Any(m => m.Contains($"Starting from the weights in '{path}', with a new head for 10 classes.")), string.Join("\n", log));
            var fitted = rmt.Model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
            foreach (var (name, values) in fitted.Where(p => !p.Key.StartsWith("head.", StringComparison.Ordinal)))
            {
                // A step of 1e-30 moves a weight of 0 (a BatchNorm bias) to about 1e-30, and no other.
                double moved = pretrained[name].Zip(values).Max(p => Math.Abs(p.First - p.Second));
                Assert.IsTrue(moved < 1e-20, $"{name} was not loaded: it differs from the file by {moved:G3}");
            }
            Assert.AreEqual(10 * 32, fitted["head.weight"].Length);

            var vir = Path.Combine(Path.GetTempPath(), $"vir-{Guid.NewGuid():N}.safetensors");
            try
            {
                using (var virModel = TinyFit.Fit(ml, data)) virModel.SaveWeights(vir);
                options.InitialWeights = vir;
                var wrong = Assert.ThrowsExactly<InvalidDataException>(() => ml.MulticlassClassification.Trainers.Rmt(options).Fit(data));
                StringAssert.Contains(wrong.Message, "nothing was loaded");
                StringAssert.Contains(wrong.Message, "Missing: patch_embed.proj.0.weight");
            }
            finally
            {
                File.Delete(vir);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void OptionsWithoutAnArchitectureAreRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var options = Options();
        options.Architecture = null!;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.Rmt(options));
        StringAssert.Contains(e.Message, "Architecture must be an RmtConfig");
    }
}
