using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Training;

namespace Retention.Benchmarks;

/// <summary>Random 28×28 grayscale images with keys as labels, and a ViR-Mini fitted on them: what the ML.NET suites measure with.</summary>
public static class SyntheticPixels
{
    public sealed class PixelRow
    {
        [VectorType(1, 28, 28)]
        public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    public sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    public static List<PixelRow> Rows(int count, int seed = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => new PixelRow
        {
            Pixels = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray(),
            Label = (uint)(i % 10),
        }).ToList();
    }

    /// <summary>The rows with their label as a key, ready for the trainer.</summary>
    public static IDataView Keyed(MLContext ml, List<PixelRow> rows)
    {
        var view = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(view).Transform(view);
    }

    /// <summary>Fits ViR-Mini on the rows; <paramref name="metrics"/> hears every epoch.</summary>
    public static ViRImageClassificationTransformer Fit(MLContext ml, IDataView keyed, int epochs, int batch, Action<ViREpochMetrics>? metrics = null,
        ViRPrecision precision = ViRPrecision.Float32) =>
        ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options
        {
            FeatureColumnName = "Pixels", Architecture = ViRConfig.Mini, MaxEpoch = epochs, BatchSize = batch, Device = ViRDevice.Cpu,
            MetricsCallback = metrics, TrainingPrecision = precision,
        }).Fit(keyed);
}
