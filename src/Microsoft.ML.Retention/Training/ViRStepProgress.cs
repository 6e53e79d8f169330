namespace Microsoft.ML.Retention.Training;

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
