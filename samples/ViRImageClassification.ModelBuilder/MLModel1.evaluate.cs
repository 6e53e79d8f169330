using Microsoft.ML;
using Microsoft.ML.Data;

namespace ViRImageClassification.ModelBuilder;

/// <summary>The evaluation half of Model Builder's generated class (newer versions): metrics on held-out data.</summary>
public partial class MLModel1
{
    /// <summary>Multiclass metrics of <paramref name="model"/> on <paramref name="testData"/> (accuracy, log-loss, the confusion matrix).</summary>
    public static MulticlassClassificationMetrics Evaluate(MLContext mlContext, ITransformer model, IDataView testData) =>
        mlContext.MulticlassClassification.Evaluate(model.Transform(testData), labelColumnName: @"Label", scoreColumnName: @"Score", predictedLabelColumnName: @"PredictedLabel");

    /// <summary>Per-class precision, recall and test count from <paramref name="metrics"/>'s confusion matrix, one line a class.</summary>
    public static IEnumerable<string> PerClassTable(MulticlassClassificationMetrics metrics, IReadOnlyList<string> labelNames)
    {
        var matrix = metrics.ConfusionMatrix;
        yield return $"{"class",-14} {"precision",9} {"recall",9} {"images",7}";
        for (int i = 0; i < labelNames.Count; i++)
        {
            double count = matrix.Counts[i].Sum();
            yield return $"{labelNames[i],-14} {matrix.PerClassPrecision[i],9:P1} {matrix.PerClassRecall[i],9:P1} {count,7}";
        }
    }
}
