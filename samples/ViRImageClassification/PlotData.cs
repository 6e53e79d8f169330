// Shared by the sample and its plotting helper (linked into both projects).
namespace ViRImageClassification;

/// <summary>What the plots show: per-epoch curves and the test confusion matrix.</summary>
public sealed record PlotData(
    int[] Epochs,
    double[] TrainLoss,
    double[] TrainAccuracy,
    double[]? ValidationLoss,
    double[]? ValidationAccuracy,
    string[] ClassNames,
    double[][] ConfusionCounts);
