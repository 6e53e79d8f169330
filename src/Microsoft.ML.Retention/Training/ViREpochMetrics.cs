namespace Microsoft.ML.Retention.Training;

/// <summary>What the trainer reports after each epoch (through <c>Options.MetricsCallback</c>).</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Step">Optimizer steps taken so far.</param>
/// <param name="TrainLoss">Mean training loss over the epoch (with label smoothing, as optimized).</param>
/// <param name="TrainAccuracy">Training accuracy over the epoch (on augmented images, if augmentation is on).</param>
/// <param name="ValidationLoss">Mean loss over the whole validation set, or null without one.</param>
/// <param name="ValidationAccuracy">Accuracy over the whole validation set, or null without one.</param>
/// <param name="LearningRate">Learning rate at the epoch's last step.</param>
/// <param name="ImagesPerSecond">Training throughput of the epoch.</param>
public sealed record ViREpochMetrics(
    int Epoch, long Step, double TrainLoss, double TrainAccuracy,
    double? ValidationLoss, double? ValidationAccuracy, double LearningRate, double ImagesPerSecond);
