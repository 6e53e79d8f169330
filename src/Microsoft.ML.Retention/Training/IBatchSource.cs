using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Training;

/// <summary>Labeled image batches for training or validation.</summary>
internal interface IBatchSource
{
    /// <summary>Number of images per pass.</summary>
    long Count { get; }

    /// <summary>
    /// One pass: images [B, C, H, W] float32 and labels [B] int64 (0-based), on the CPU.
    /// The tensors belong to no dispose scope; the caller disposes them.
    /// </summary>
    IEnumerable<(Tensor Images, Tensor Labels)> Batches(int batchSize, Random? shuffle);
}

/// <summary>What the training loop tells the outside world, and how it learns it should stop.</summary>
internal interface ITrainingObserver
{
    /// <summary>Throws <see cref="OperationCanceledException"/> when training should stop.</summary>
    void CheckAlive();

    void OnStep(ViRStepProgress progress);

    void OnEpoch(ViREpochMetrics metrics);

    void Info(string message);
}
