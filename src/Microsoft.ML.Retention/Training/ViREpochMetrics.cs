namespace Microsoft.ML.Retention;

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

/// <summary>What the trainer reports after each optimizer step (through <c>Options.ProgressCallback</c>).</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="MaxEpoch">Epochs planned.</param>
/// <param name="StepInEpoch">1-based step within the epoch.</param>
/// <param name="StepsPerEpoch">Steps in one epoch.</param>
/// <param name="Loss">This step's training loss.</param>
/// <param name="RunningLoss">Mean training loss of the epoch so far.</param>
/// <param name="RunningAccuracy">Training accuracy of the epoch so far.</param>
/// <param name="LearningRate">This step's learning rate.</param>
/// <param name="ImagesPerSecond">Throughput of the epoch so far.</param>
public sealed record ViRStepProgress(
    int Epoch, int MaxEpoch, long StepInEpoch, long StepsPerEpoch, double Loss,
    double RunningLoss, double RunningAccuracy, double LearningRate, double ImagesPerSecond);
