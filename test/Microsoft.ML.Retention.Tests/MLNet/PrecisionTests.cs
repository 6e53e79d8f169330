using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Scoring in bfloat16: the same predictions as float32, kept in model.zip, and a fallback where the device has none.</summary>
[TestClass]
public sealed class PrecisionTests
{
    private static ViRImageClassificationTransformer Trained(MLContext ml, IDataView data, ViRPrecision precision = ViRPrecision.Float32) =>
        TinyFit.Fit(ml, data, o => { o.Architecture = ViRConfig.Mini with { Depth = 2 }; o.MaxEpoch = 3; o.PredictionPrecision = precision; });

    [TestMethod]
    public void BFloat16ScoresMatchFloat32InEveryForm()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml);
        var test = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 4)).Transform(FashionMnist.Load(ml, "test", 10));
        using var model = Trained(ml, data);
        var float32 = model.Transform(test).GetColumn<float[]>("Score").ToArray();
        Assert.AreEqual(ViRPrecision.BFloat16, model.WithPrecision(ViRPrecision.BFloat16).Precision, "this machine has AVX512-BF16");

        foreach (var mode in new[] { RetentionMode.Parallel, RetentionMode.Chunkwise, RetentionMode.Recurrent })
        {
            using var bfloat16 = model.WithPrecision(ViRPrecision.BFloat16).WithRetentionMode(mode, chunkSize: 16);
            var scores = bfloat16.Transform(test).GetColumn<float[]>("Score").ToArray();
            double maxDiff = float32.Zip(scores).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
            int agree = float32.Zip(scores).Count(p => ArgMax(p.First) == ArgMax(p.Second));
            // When no probability moves by more than δ, the argmax can only change where float32's top two are within 2δ.
            var decisive = Enumerable.Range(0, scores.Length).Where(i => Margin(float32[i]) > 2 * maxDiff).ToList();
            Console.WriteLine($"bfloat16 {mode}: max |Δprobability| {maxDiff:G3}, argmax agreement {agree}/{scores.Length}, {decisive.Count} with a margin above 2·{maxDiff:G3}");
            Assert.IsTrue(scores.All(s => Math.Abs(s.Sum() - 1) < 1e-3), "probabilities sum to 1");
            // Measured: about 5e-4. This briefly trained model leaves a few predictions within 1e-3 of a tie; those may flip.
            Assert.IsTrue(maxDiff < 5e-3, $"{mode}: probabilities moved by {maxDiff:G3}");
            foreach (int i in decisive) Assert.AreEqual(ArgMax(float32[i]), ArgMax(scores[i]), $"{mode}, image {i}: a prediction with margin {Margin(float32[i]):G3} changed");
            Assert.IsTrue(decisive.Count >= scores.Length * 9 / 10, $"{mode}: only {decisive.Count} of {scores.Length} predictions are clear of ties");
        }
    }

    [TestMethod]
    public void ThePrecisionIsKeptInModelZip()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var model = Trained(ml, data, ViRPrecision.BFloat16);
        Assert.AreEqual(ViRPrecision.BFloat16, model.Precision);
        string path = Path.Combine(Path.GetTempPath(), $"vir-bf16-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = ml.Model.Load(path, out _);
            Assert.AreEqual(ViRPrecision.BFloat16, ViR(loaded).Precision);
            CollectionAssert.AreEqual(model.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray(),
                loaded.Transform(data).GetColumn<float[]>("Score").SelectMany(s => s).ToArray(), "the saved float32 weights give the same bfloat16 copy");
            var float32 = loaded.WithPrecision(ViRPrecision.Float32);
            Assert.AreEqual(ViRPrecision.Float32, ViR(float32).Precision);
            ((IDisposable)float32).Dispose();
            ((IDisposable)loaded).Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void FormAndPrecisionSwitchOnAFreshlyFittedPipeline()
    {
        var ml = new MLContext(seed: 1);
        // An estimator chain fits into TransformerChain<TLast>, not TransformerChain<ITransformer> as Model.Load returns.
        var model = FashionMnist.Preprocess(ml).Append(ml.MulticlassClassification.Trainers.ViR(TinyFit.Options())).Fit(FashionMnist.Load(ml, "train", 2));
        var recurrent = model.WithRetentionMode(RetentionMode.Recurrent);
        var bfloat16 = recurrent.WithPrecision(ViRPrecision.BFloat16);
        Assert.AreEqual(RetentionMode.Recurrent, ViR(bfloat16).Retention.Mode);
        Assert.AreEqual(ViRPrecision.BFloat16, ViR(bfloat16).Precision);
        foreach (var transformer in new ITransformer[] { bfloat16, recurrent, model }) ((IDisposable)transformer).Dispose();
    }

    [TestMethod]
    public void WithoutBFloat16OnTheDeviceScoringAndTrainingFallBackToFloat32WithOneWarningEach()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var host = ((IHostEnvironment)ml).Register("test");
        Assert.AreEqual(ViRPrecision.BFloat16, ViRImageClassificationTransformer.ResolveBFloat16(deviceHasBFloat16: true, host));
        Assert.AreEqual(ViRPrecision.Float32, ViRImageClassificationTransformer.ResolveBFloat16(deviceHasBFloat16: false, host));
        Assert.AreEqual(ViRPrecision.Float32, ViRImageClassificationTransformer.ResolveBFloat16(deviceHasBFloat16: false, host));
        Assert.AreEqual(1, log.Count(l => l.Contains("no native bfloat16")), string.Join("\n", log));
        Assert.AreEqual(ViRPrecision.Float32, ViRImageClassificationTransformer.ResolveBFloat16(deviceHasBFloat16: false, host, "training"));
        Assert.AreEqual(1, log.Count(l => l.Contains("BFloat16 training was asked for")), string.Join("\n", log));
    }

    private static ViRImageClassificationTransformer ViR(ITransformer model) =>
        model as ViRImageClassificationTransformer ?? ((IEnumerable<ITransformer>)model).OfType<ViRImageClassificationTransformer>().Single();

    private static int ArgMax(float[] scores) => Array.IndexOf(scores, scores.Max());

    private static double Margin(float[] scores)
    {
        var sorted = scores.OrderDescending().ToArray();
        return sorted[0] - sorted[1];
    }
}
