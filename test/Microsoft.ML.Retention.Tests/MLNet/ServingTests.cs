using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// Serving one model from many PredictionEngines on many threads, and disposal: a prediction gets the right
/// scores or an ObjectDisposedException, never freed memory.
/// </summary>
[TestClass]
public sealed class ServingTests
{
    private static readonly List<FashionMnist.ImageRow> Rows = FashionMnist.Interleaved(FashionMnist.Rows("test", 2));

    /// <summary>LoadImages, then a tiny trained ViR: a model whose engines take image paths.</summary>
    private static ITransformer TrainedChain(MLContext ml)
    {
        var preprocess = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 2));
        var vir = TinyFit.Fit(ml, preprocess.Transform(FashionMnist.Load(ml, "train", 2)));
        return preprocess.Append(vir);
    }

    private static float[][] SingleThreadScores(MLContext ml, ITransformer model)
    {
        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
        return Rows.Select(r => engine.Predict(r).Score).ToArray();
    }

    [TestMethod]
    public void FourThreadsCreatingUsingAndDisposingEnginesOverOneModelMatchOneThread()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        var expected = SingleThreadScores(ml, model);
        const int threads = 4, enginesPerThread = 25;
        int predictions = 0;
        var mismatches = new System.Collections.Concurrent.ConcurrentBag<string>();

        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, thread =>
        {
            for (int e = 0; e < enginesPerThread; e++)
            {
                using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
                for (int i = (thread + e) % Rows.Count, n = 0; n < Rows.Count; n++, i = (i + 1) % Rows.Count)
                {
                    var score = engine.Predict(Rows[i]).Score;
                    if (!score.SequenceEqual(expected[i])) mismatches.Add($"thread {thread}, engine {e}, row {i}");
                    Interlocked.Increment(ref predictions);
                }
            }
        });

        Assert.IsTrue(predictions >= 2000, $"only {predictions} predictions");
        Assert.IsEmpty(mismatches, string.Join("; ", mismatches.Take(5)));
        ((IDisposable)model).Dispose();
    }

    [TestMethod]
    public void AnEngineThatOwnsTheModelDisposesItSafelyUnderOtherThreads()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        var expected = SingleThreadScores(ml, model);
        // ML.NET's default: every engine owns the model, so the first one disposed disposes it for all.
        var engines = Enumerable.Range(0, 4).Select(_ => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model)).ToArray();
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<string>();

        Parallel.For(0, engines.Length, new ParallelOptions { MaxDegreeOfParallelism = engines.Length }, thread =>
        {
            for (int n = 0; n < 150; n++)
            {
                if (thread == 0 && n == 30) engines[0].Dispose();
                int i = n % Rows.Count;
                try
                {
                    var score = engines[thread].Predict(Rows[i]).Score;
                    outcomes.Add(score.SequenceEqual(expected[i]) ? "right scores" : $"wrong scores at row {i}");
                }
                catch (ObjectDisposedException e)
                {
                    outcomes.Add(e.Message.Contains("OwnsTransformer = false", StringComparison.Ordinal) ? "disposed" : $"unexplained: {e.Message}");
                }
            }
        });

        CollectionAssert.IsSubsetOf(outcomes.Distinct().ToList(), new[] { "right scores", "disposed" }, string.Join("; ", outcomes.Distinct()));
        Assert.Contains("disposed", outcomes);
        var late = Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model));
        StringAssert.Contains(late.Message, "OwnsTransformer = false");
        foreach (var engine in engines) engine.Dispose();
    }

    [TestMethod]
    public void ASingleRowPredictionLeavesTheThreadsIntraOpThreadCountAsItWas()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model);
        int before = get_num_threads();
        var expected = engine.Predict(Rows[0]).Score;
        Assert.AreEqual(before, get_num_threads(), "the single-row thread count applies during the prediction only");
        set_num_threads(1);
        try
        {
            CollectionAssert.AreEqual(expected, engine.Predict(Rows[0]).Score, "one intra-op thread computes the same scores");
            Assert.AreEqual(1, get_num_threads());
        }
        finally
        {
            set_num_threads(before);
        }
    }

    [TestMethod]
    public void DisposeIsIdempotentAndADisposedCopyCannotBeUsed()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        using var original = TinyFit.Fit(ml, data);
        var copy = original.WithRetentionMode(RetentionMode.Recurrent);
        copy.Dispose();
        copy.Dispose(); // a second call must not release the original's weights

        Assert.AreEqual(data.GetRowCount(), original.Transform(data).GetColumn<float[]>("Score").Count());
        Assert.ThrowsExactly<ObjectDisposedException>(() => copy.Transform(data));
        Assert.ThrowsExactly<ObjectDisposedException>(() => copy.GetRowToRowMapper(data.Schema));
        Assert.ThrowsExactly<ObjectDisposedException>(() => copy.WithRetentionMode(RetentionMode.Parallel));
        Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.Save(copy, data.Schema, Path.Combine(Path.GetTempPath(), $"vir-disposed-{Guid.NewGuid():N}.zip")));
    }

    [TestMethod]
    public void AScoringViewOrEngineWhoseModelWasDisposedThrowsInsteadOfReadingFreedWeights()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
        var scored = model.Transform(ml.Data.LoadFromEnumerable(Rows));
        engine.Predict(Rows[0]);
        ((IDisposable)model).Dispose();

        Assert.ThrowsExactly<ObjectDisposedException>(() => engine.Predict(Rows[1]));
        Assert.ThrowsExactly<ObjectDisposedException>(() => scored.GetColumn<float[]>("Score").ToList());
    }
}
