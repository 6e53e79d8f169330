using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Training;

/// <summary>What <see cref="TrainingLoop"/> is told: the recipe (AdamW, warmup and cosine, label smoothing), augmentation and stopping.</summary>
internal sealed record TrainingSettings
{
    public required int MaxEpoch { get; init; }

    public required int BatchSize { get; init; }

    public required double LearningRate { get; init; }

    public required double WeightDecay { get; init; }

    public required double WarmupEpochs { get; init; }

    public required double LabelSmoothing { get; init; }

    /// <summary>0 turns clipping off.</summary>
    public required double GradientClipNorm { get; init; }

    /// <summary>How retention is computed in training (and validation).</summary>
    public required RetentionSettings Retention { get; init; }

    public required int Seed { get; init; }

    public bool Augment { get; init; }

    public double MinCropScale { get; init; } = 1;

    public double MaxTranslation { get; init; }

    public bool HorizontalFlip { get; init; }

    /// <summary>Null: train every epoch.</summary>
    public EarlyStoppingOptions? EarlyStopping { get; init; }
}
