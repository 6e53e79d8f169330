using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace ViRImageClassification.Consume;

/// <summary>
/// Predictions from a saved ViR model.zip, in the shape of Model Builder's generated <c>*.consumption.cs</c>:
/// <see cref="Predict"/> and <see cref="PredictAllLabels"/> are static and safe to call from any number of threads,
/// as an ASP.NET endpoint does. The model is loaded once, on first use. A <see cref="PredictionEngine{TSrc, TDst}"/>
/// serves one thread at a time, so each concurrent caller borrows an engine from a pool; every engine shares the one
/// loaded model (<c>ownsTransformer: false</c>), so returning or dropping an engine never frees the weights.
/// Copy this file into an app that references Microsoft.ML.Retention and one TorchSharp backend package.
/// </summary>
public static class ImageClassifier
{
    /// <summary>One image to classify: the input columns of a model trained on encoded image bytes (the sample's model.zip).</summary>
    public sealed class ModelInput
    {
        /// <summary>The true class, when known; the saved pipeline maps it to a key, so it must exist (empty is fine).</summary>
        [ColumnName("Label")]
        public string Label { get; set; } = "";

        /// <summary>The encoded image (PNG, JPEG, ...).</summary>
        [ColumnName("ImageSource")]
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    /// <summary>A prediction.</summary>
    public sealed class ModelOutput
    {
        /// <summary>The most probable class.</summary>
        [ColumnName("PredictedLabel")]
        public string PredictedLabel { get; set; } = "";

        /// <summary>The probability of every class, in the order of <see cref="ClassNames"/>.</summary>
        [ColumnName("Score")]
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    private static readonly MLContext Context = new();
    private static readonly Lazy<ITransformer> Model = new(() => Context.Model.Load(ModelPath, out _), LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly ConcurrentBag<PredictionEngine<ModelInput, ModelOutput>> Engines = new();
    private static readonly Lazy<string[]> Classes = new(ReadClassNames, LazyThreadSafetyMode.ExecutionAndPublication);
    private static string _modelPath = Path.GetFullPath("model.zip");

    /// <summary>The model.zip to load (default: model.zip in the current folder). Set it before the first prediction.</summary>
    public static string ModelPath
    {
        get => _modelPath;
        set
        {
            if (Model.IsValueCreated)
                throw new InvalidOperationException($"The model was already loaded from '{_modelPath}'; set ModelPath before the first prediction.");
            _modelPath = Path.GetFullPath(value);
        }
    }

    /// <summary>The class names, in the order of <see cref="ModelOutput.Score"/>.</summary>
    public static IReadOnlyList<string> ClassNames => Classes.Value;

    /// <summary>Classifies one image.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return WithEngine(engine => engine.Predict(input));
    }

    /// <summary>Every class with its probability, most probable first.</summary>
    public static IOrderedEnumerable<KeyValuePair<string, float>> PredictAllLabels(ModelInput input)
    {
        var scores = Predict(input).Score;
        return ClassNames.Zip(scores, (name, score) => new KeyValuePair<string, float>(name, score)).OrderByDescending(p => p.Value);
    }

    private static T WithEngine<T>(Func<PredictionEngine<ModelInput, ModelOutput>, T> use)
    {
        if (!Engines.TryTake(out var engine))
            engine = Context.Model.CreatePredictionEngine<ModelInput, ModelOutput>(Model.Value, new PredictionEngineOptions { OwnsTransformer = false });
        try
        {
            return use(engine);
        }
        finally
        {
            Engines.Add(engine);
        }
    }

    private static string[] ReadClassNames() => WithEngine(engine =>
    {
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        engine.OutputSchema["Score"].GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    });
}
