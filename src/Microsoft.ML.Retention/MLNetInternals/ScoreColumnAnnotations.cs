using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Retention.MLNetInternals;

/// <summary>
/// The annotations that make a Score column and a PredictedLabel column look like any ML.NET
/// multiclass trainer's, so Evaluate and MapKeyToValue work on them.
/// </summary>
internal static class ScoreColumnAnnotations
{
    public static DataViewSchema.Annotations ForScore(IReadOnlyList<string> labelNames, DataViewSchema inputSchema)
    {
        var names = LabelNamesType(labelNames.Count);
        uint scoreSetId = checked(inputSchema.GetMaxAnnotationKind(out _, AnnotationUtils.Kinds.ScoreColumnSetId) + 1);
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(AnnotationUtils.Kinds.ScoreColumnSetId, AnnotationUtils.ScoreColumnSetIdType, (ref uint id) => id = scoreSetId);
        builder.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> kind) => kind = AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification.AsMemory());
        builder.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> kind) => kind = AnnotationUtils.Const.ScoreValueKind.Score.AsMemory());
        builder.Add(AnnotationUtils.Kinds.SlotNames, names, LabelNamesGetter(labelNames));
        builder.Add(AnnotationUtils.Kinds.TrainingLabelValues, names, LabelNamesGetter(labelNames));
        return builder.ToAnnotations();
    }

    public static DataViewSchema.Annotations ForPredictedLabel(IReadOnlyList<string> labelNames)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        builder.AddKeyValues(labelNames.Count, TextDataViewType.Instance, LabelNamesGetter(labelNames));
        return builder.ToAnnotations();
    }

    /// <summary>The Score and PredictedLabel columns an estimator promises in <c>GetOutputSchema(SchemaShape)</c>.</summary>
    public static (SchemaShape.Column Score, SchemaShape.Column PredictedLabel) Shapes(string scoreName, string predictedLabelName, SchemaShape.Column labelColumn)
    {
        var score = new SchemaShape.Column(scoreName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false,
            new SchemaShape(AnnotationUtils.AnnotationsForMulticlassScoreColumn(labelColumn)));
        var keyValues = new SchemaShape.Column(AnnotationUtils.Kinds.KeyValues, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false);
        var predicted = new SchemaShape.Column(predictedLabelName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true,
            new SchemaShape(new[] { keyValues }));
        return (score, predicted);
    }

    /// <summary>The embedding column an estimator promises: a float vector.</summary>
    public static SchemaShape.Column EmbeddingShape(string name) =>
        new(name, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);

    private static VectorDataViewType LabelNamesType(int count) => new(TextDataViewType.Instance, count);

    private static ValueGetter<VBuffer<ReadOnlyMemory<char>>> LabelNamesGetter(IReadOnlyList<string> labelNames) =>
        (ref VBuffer<ReadOnlyMemory<char>> value) =>
            value = new VBuffer<ReadOnlyMemory<char>>(labelNames.Count, labelNames.Select(n => n.AsMemory()).ToArray());
}
