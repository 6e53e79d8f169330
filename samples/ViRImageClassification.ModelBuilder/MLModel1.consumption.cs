using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace ViRImageClassification.ModelBuilder;

/// <summary>
/// The consumption half of Model Builder's generated class, with its members and signatures. Inside, unlike Model
/// Builder's: <see cref="Predict"/> and <see cref="PredictAllLabels"/> borrow an engine from a pool over one loaded
/// model, so any number of threads may call them (a <see cref="PredictionEngine{TSrc, TDst}"/> serves one thread at a
/// time), and no engine owns the model, so none frees the weights the others use.
/// </summary>
public partial class MLModel1
{
    /// <summary>Model input class for MLModel1.</summary>
    public class ModelInput
    {
        [LoadColumn(0)]
        [ColumnName(@"Label")]
        public string Label { get; set; } = "";

        [LoadColumn(1)]
        [ColumnName(@"ImageSource")]
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    /// <summary>Model output class for MLModel1.</summary>
    public class ModelOutput
    {
        [ColumnName(@"Label")]
        public uint Label { get; set; }

        [ColumnName(@"ImageSource")]
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();

        [ColumnName(@"PredictedLabel")]
        public string PredictedLabel { get; set; } = "";

        [ColumnName(@"Score")]
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    private static string MLNetModelPath = Path.GetFullPath("MLModel1.mlnet");

    private static readonly MLContext Context = new();
    private static readonly Lazy<ITransformer> Model = new(() => Context.Model.Load(MLNetModelPath, out _), true);
    private static readonly ConcurrentBag<PredictionEngine<ModelInput, ModelOutput>> Engines = new();

    /// <summary>One engine, as Model Builder generates it: for one thread at a time. <see cref="Predict"/> is safe from any number.</summary>
    public static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> PredictEngine = new(() => CreatePredictEngine(), true);

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine() =>
        Context.Model.CreatePredictionEngine<ModelInput, ModelOutput>(Model.Value, new PredictionEngineOptions { OwnsTransformer = false });

    /// <summary>Predicts scores for every label, most probable first.</summary>
    public static IOrderedEnumerable<KeyValuePair<string, float>> PredictAllLabels(ModelInput input) => GetSortedScoresWithLabels(Predict(input));

    /// <summary>The scores of <paramref name="result"/> with their label names, most probable first.</summary>
    public static IOrderedEnumerable<KeyValuePair<string, float>> GetSortedScoresWithLabels(ModelOutput result)
    {
        var labelNames = GetLabels(result).ToList();
        if (labelNames.Count != result.Score.Length)
            throw new InvalidOperationException($"The model has {labelNames.Count} labels, but the prediction has {result.Score.Length} scores.");
        return labelNames.Zip(result.Score, (name, score) => new KeyValuePair<string, float>(name, score)).OrderByDescending(p => p.Value);
    }

    /// <summary>The label names in score order: the Label column's key values.</summary>
    private static IEnumerable<string> GetLabels(ModelOutput result)
    {
        var labelColumn = Model.Value.GetOutputSchema(InputSchema).GetColumnOrNull("Label")
            ?? throw new InvalidOperationException("Label column not found. Make sure the name searched for matches the name in the schema.");
        var keyNames = new VBuffer<ReadOnlyMemory<char>>();
        labelColumn.GetKeyValues(ref keyNames);
        return keyNames.DenseValues().Select(x => x.ToString());
    }

    private static DataViewSchema InputSchema => Context.Data.LoadFromEnumerable(Array.Empty<ModelInput>()).Schema;

    /// <summary>Predicts one input; safe to call from many threads at once.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (!Engines.TryTake(out var engine)) engine = CreatePredictEngine();
        try
        {
            return engine.Predict(input);
        }
        finally
        {
            Engines.Add(engine);
        }
    }
}
