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
    public void AnEngineThatOwnsTheModelCanBeDisposedWhileOtherEnginesServe()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        var expected = SingleThreadScores(ml, model);
        // ML.NET's default: every engine owns the model, so disposing one disposes the model.
        var engines = Enumerable.Range(0, 4).Select(_ => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model)).ToArray();
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<string>();

        Parallel.For(1, engines.Length, new ParallelOptions { MaxDegreeOfParallelism = engines.Length }, thread =>
        {
            for (int n = 0; n < 150; n++)
            {
                if (thread == 1 && n == 30) engines[0].Dispose();
                int i = n % Rows.Count;
                try
                {
                    var score = engines[thread].Predict(Rows[i]).Score;
                    outcomes.Add(score.SequenceEqual(expected[i]) ? "right scores" : $"wrong scores at row {i}");
                }
                catch (Exception e)
                {
                    outcomes.Add($"{e.GetType().Name}: {e.Message}");
                }
            }
        });

        CollectionAssert.AreEqual(new[] { "right scores" }, outcomes.Distinct().ToList(), string.Join("; ", outcomes.Distinct()));
        using (var late = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model))
            CollectionAssert.AreEqual(expected[0], late.Predict(Rows[0]).Score, "an engine made after the model was disposed by another one");
        foreach (var engine in engines) engine.Dispose();
    }

    /// <summary>Makes and uses engines in a frame of its own, so that none is reachable once it returns.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void PredictAndDropEngines(MLContext ml, ITransformer model, int count, PredictionEngineOptions? options = null)
    {
        for (int i = 0; i < count; i++)
        {
            var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model, options ?? new PredictionEngineOptions());
            engine.Predict(Rows[i % Rows.Count]);
        }
    }

    private static void CollectGarbage()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    private static bool WeightsFreed(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<ViRImageClassificationTransformer>().Single().WeightsFreed;

    [TestMethod]
    public void APoolThatDisposesSurplusEnginesServesEveryRequest()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        var expected = SingleThreadScores(ml, model);
        // Microsoft.Extensions.ObjectPool disposes IDisposable items it does not keep; the engines own the model (ML.NET's default).
        var pool = new Microsoft.Extensions.ObjectPool.DefaultObjectPoolProvider { MaximumRetained = 2 }
            .Create(new EnginePolicy(ml, model));
        int wrong = 0, predictions = 0;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, thread =>
        {
            for (int n = 0; n < 200; n++)
            {
                var engine = pool.Get();
                try
                {
                    int i = (n + thread) % Rows.Count;
                    if (!engine.Predict(Rows[i]).Score.SequenceEqual(expected[i])) Interlocked.Increment(ref wrong);
                    Interlocked.Increment(ref predictions);
                }
                catch (Exception e)
                {
                    failures.Add($"{e.GetType().Name}: {e.Message}");
                }
                finally
                {
                    pool.Return(engine);
                }
            }
        });
        Assert.IsEmpty(failures, string.Join("; ", failures.Distinct().Take(3)));
        Assert.AreEqual(800, predictions);
        Assert.AreEqual(0, wrong);
        Assert.AreEqual(10, SingleThreadScores(ml, model)[0].Length, "the model still serves");
        (pool as IDisposable)?.Dispose();
    }

    private sealed class EnginePolicy(MLContext ml, ITransformer model) : Microsoft.Extensions.ObjectPool.IPooledObjectPolicy<PredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>>
    {
        public PredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow> Create() => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model);

        public bool Return(PredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow> engine) => true;
    }

    [TestMethod]
    public void RequestsRentedBeforeAReloadFinishOnTheOldModel()
    {
        var ml = new MLContext(seed: 1);
        var old = TrainedChain(ml);
        var expected = SingleThreadScores(ml, old);
        // As a pool that reloads does: engines rented from the old model, the old model disposed, the requests go on.
        var rented = Enumerable.Range(0, 3).Select(_ => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(old)).ToArray();
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var reloaded = new ManualResetEventSlim();
        var requests = rented.Select((engine, r) => Task.Run(() =>
        {
            for (int n = 0; n < 60; n++)
            {
                if (n == 10) reloaded.Wait();
                int i = (n + r) % Rows.Count;
                try
                {
                    outcomes.Add(engine.Predict(Rows[i]).Score.SequenceEqual(expected[i]) ? "right scores" : "wrong scores");
                }
                catch (Exception e)
                {
                    outcomes.Add($"{e.GetType().Name}: {e.Message}");
                }
            }
        })).ToArray();
        ((IDisposable)old).Dispose();
        reloaded.Set();
        Task.WaitAll(requests);
        CollectionAssert.AreEqual(new[] { "right scores" }, outcomes.Distinct().ToList(), string.Join("; ", outcomes.Distinct()));
        Assert.IsFalse(WeightsFreed(old), "the rented engines still hold the weights");
        foreach (var engine in rented) engine.Dispose();
    }

    [TestMethod]
    public void TheWeightsAreFreedOnceTheModelIsDisposedAndItsEnginesAreGone()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        PredictAndDropEngines(ml, model, 3);
        PredictAndDropEngines(ml, model, 3, new PredictionEngineOptions { OwnsTransformer = false });
        CollectGarbage();
        Assert.IsFalse(WeightsFreed(model), "engines owning the model disposed none of it, so the model holds its weights");
        Assert.AreEqual(10, SingleThreadScores(ml, model)[0].Length);
        ((IDisposable)model).Dispose();
        CollectGarbage();
        Assert.IsTrue(WeightsFreed(model), "the model was disposed and no engine is left");
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model));
        StringAssert.Contains(e.Message, "weights were freed");
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
    public void DisposeIsIdempotentAndTheWeightsGoWithTheLastHolder()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFit.Images(ml, 2);
        var original = TinyFit.Fit(ml, data);
        var copy = original.WithRetentionMode(RetentionMode.Recurrent);
        copy.Dispose();
        copy.Dispose(); // a second call must not release the original's weights

        Assert.AreEqual(data.GetRowCount(), original.Transform(data).GetColumn<float[]>("Score").Count());
        Assert.AreEqual(data.GetRowCount(), copy.Transform(data).GetColumn<float[]>("Score").Count(), "the weights live while the original does");
        original.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => copy.Transform(data));
        Assert.ThrowsExactly<ObjectDisposedException>(() => copy.GetRowToRowMapper(data.Schema));
        Assert.ThrowsExactly<ObjectDisposedException>(() => original.WithRetentionMode(RetentionMode.Parallel));
        Assert.ThrowsExactly<ObjectDisposedException>(() => ml.Model.Save(copy, data.Schema, Path.Combine(Path.GetTempPath(), $"vir-disposed-{Guid.NewGuid():N}.zip")));
    }

    [TestMethod]
    public void AnEngineKeepsItsModelAliveAndAViewOfAFreedModelThrowsInsteadOfReadingFreedWeights()
    {
        var ml = new MLContext(seed: 1);
        var model = TrainedChain(ml);
        var scored = model.Transform(ml.Data.LoadFromEnumerable(Rows));
        DisposeTheModelUnderALiveEngine(ml, model, scored);
        CollectGarbage();
        Assert.ThrowsExactly<ObjectDisposedException>(() => scored.GetColumn<float[]>("Score").ToList());
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void DisposeTheModelUnderALiveEngine(MLContext ml, ITransformer model, IDataView scored)
    {
        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(model, new PredictionEngineOptions { OwnsTransformer = false });
        engine.Predict(Rows[0]);
        ((IDisposable)model).Dispose();
        Assert.AreEqual(10, engine.Predict(Rows[1]).Score.Length, "a live engine keeps the weights");
        Assert.AreEqual(Rows.Count, scored.GetColumn<float[]>("Score").Count());
    }
}
