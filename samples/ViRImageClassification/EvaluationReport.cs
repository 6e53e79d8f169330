using Microsoft.ML.Data;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>Prints ML.NET's multiclass metrics: summary, per-class table and confusion matrix.</summary>
internal static class EvaluationReport
{
    public static void Print(IAnsiConsole console, MulticlassClassificationMetrics metrics, string[] classNames, string split)
    {
        var summary = new Table().Title($"Evaluation on {split}").AddColumns("Metric", "Value");
        summary.AddRow("Micro accuracy", $"{metrics.MicroAccuracy:P2}");
        summary.AddRow("Macro accuracy", $"{metrics.MacroAccuracy:P2}");
        summary.AddRow("Log-loss", $"{metrics.LogLoss:F4}");
        summary.AddRow("Log-loss reduction", $"{metrics.LogLossReduction:F4}");
        console.Write(summary);

        var confusion = metrics.ConfusionMatrix;
        var perClass = new Table().Title("Per class").AddColumns("Class", "Images", "Precision", "Recall", "Log-loss");
        for (int i = 0; i < classNames.Length; i++)
        {
            double count = confusion.Counts[i].Sum();
            perClass.AddRow(Markup.Escape(classNames[i]), $"{count:0}", $"{confusion.PerClassPrecision[i]:P1}",
                $"{confusion.PerClassRecall[i]:P1}", $"{metrics.PerClassLogLoss[i]:F3}");
        }
        console.Write(perClass);

        var matrix = new Table().Title("Confusion matrix (rows: actual, columns: predicted)").AddColumn(new TableColumn("").NoWrap());
        foreach (var name in classNames) matrix.AddColumn(new TableColumn(Markup.Escape(Abbreviate(name))).RightAligned());
        for (int i = 0; i < classNames.Length; i++)
            matrix.AddRow(new[] { Markup.Escape(classNames[i]) }.Concat(confusion.Counts[i].Select((c, j) => i == j ? $"[green]{c:0}[/]" : $"{c:0}")).ToArray());
        console.Write(matrix);
    }

    private static string Abbreviate(string name) => name.Length <= 8 ? name : name[..7] + "…";
}
