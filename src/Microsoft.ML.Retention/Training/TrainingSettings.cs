using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Training;

/// <summary>
/// What <see cref="TrainingLoop"/> is told: AdamW with warmup and cosine decay, label smoothing, gradient clipping
/// (0: off), the retention form of training and validation, the number format of forward and backward (bfloat16:
/// mixed precision with fp32 master weights), augmentation (null: none) and early stopping (null: none).
/// </summary>
internal sealed record TrainingSettings(
    int MaxEpoch, int BatchSize, double LearningRate, double WeightDecay, double WarmupEpochs, double LabelSmoothing,
    double GradientClipNorm, RetentionSettings Retention, ViRPrecision Precision, int Seed, ImageAugmentation? Augmentation, EarlyStoppingOptions? EarlyStopping);
