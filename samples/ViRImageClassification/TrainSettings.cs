using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;

namespace ViRImageClassification;

/// <summary>What the train command was asked to do.</summary>
public sealed record TrainSettings
{
    /// <summary>The embedded Fashion-MNIST subset, copied beside the sample.</summary>
    public static string DefaultData => Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");

    public string Data { get; init; } = DefaultData;
    /// <summary>A preset name of <see cref="ViRConfig.Presets"/>, or "Rmt-" and one of <see cref="RmtConfig.Presets"/>.</summary>
    public string Architecture { get; init; } = nameof(ViRConfig.Mini);
    public int? ImageSize { get; init; }
    public PatchStem? Stem { get; init; }
    /// <summary>ViR only: the decays' schedule and shape, and RetNet's GroupNorm; null keeps the preset's.</summary>
    public DecaySchedule? DecaySchedule { get; init; }
    public SpatialDecayShape? SpatialDecay { get; init; }
    public bool RetentionGroupNorm { get; init; }
    /// <summary>A checkpoint to start from (.pth or safetensors), and whether to read a training checkpoint's model_ema.</summary>
    public string? InitialWeights { get; init; }
    public bool MovingAverage { get; init; }

    /// <summary>The prefix of RMT architectures in <see cref="Architecture"/>.</summary>
    public const string RmtPrefix = "Rmt-";

    /// <summary>Every --arch value: the ViR presets, then the RMT presets.</summary>
    public static IEnumerable<string> ArchitectureNames => ViRConfig.Presets.Keys.Concat(RmtConfig.Presets.Keys.Select(k => RmtPrefix + k));

    /// <summary>The preset with the resolution and stem asked for.</summary>
    public IVisionBackboneConfig Model()
    {
        if (Architecture.StartsWith(RmtPrefix, StringComparison.OrdinalIgnoreCase))
        {
            if (DecaySchedule is not null || SpatialDecay is not null || RetentionGroupNorm)
                throw new ArgumentException($"--decay-schedule, --spatial-decay and --retention-group-norm shape a ViR's retention; {Architecture} is an RMT, which has its own decays.");
            var rmt = RmtConfig.Presets[Architecture[RmtPrefix.Length..]];
            return rmt with { ImageHeight = ImageSize ?? rmt.ImageHeight, ImageWidth = ImageSize ?? rmt.ImageWidth };
        }
        var preset = ViRConfig.Presets[Architecture];
        return preset with
        {
            ImageHeight = ImageSize ?? preset.ImageHeight,
            ImageWidth = ImageSize ?? preset.ImageWidth,
            Stem = Stem ?? preset.Stem,
            DecaySchedule = DecaySchedule ?? preset.DecaySchedule,
            SpatialDecay = SpatialDecay ?? preset.SpatialDecay,
            RetentionGroupNorm = RetentionGroupNorm || preset.RetentionGroupNorm,
        };
    }
    public double LearningRate { get; init; } = 1e-3;
    public int Epochs { get; init; } = 12;
    public int BatchSize { get; init; } = 64;
    public RetentionMode Mode { get; init; } = RetentionMode.Chunkwise;
    public int ChunkSize { get; init; } = ChunkSizes.Auto;
    public ViRPrecision Precision { get; init; } = ViRPrecision.Float32;
    public ViRPrecision TrainingPrecision { get; init; } = ViRPrecision.Float32;
    public ViRDevice Device { get; init; } = ViRDevice.Auto;
    public string Output { get; init; } = "vir-output";
    public bool Compare { get; init; }
    public bool Augment { get; init; }
    public double MinCropScale { get; init; } = 0.35;
    public double MaxTranslation { get; init; }
    public double RandomErasing { get; init; }
    /// <summary>Evaluate on every tenth training image instead of the test set (for choosing hyperparameters).</summary>
    public bool Tune { get; init; }
    /// <summary>Seed for initialisation, shuffling and augmentation.</summary>
    public int Seed { get; init; } = 1;
    public int MaxImagesPerClass { get; init; } = int.MaxValue;
}

/// <summary>The numbers a run produced.</summary>
public sealed record TrainReport(
    double MicroAccuracy, double MacroAccuracy, double LogLoss, TimeSpan TrainingTime,
    IReadOnlyList<ViREpochMetrics> Epochs, string ModelPath, BaselineReport? LightGbm, PrecisionReport? Float32Comparison);

/// <summary>A BFloat16 model against its Float32 weights, on the evaluation images (--precision BFloat16).</summary>
public sealed record PrecisionReport(double Float32Accuracy, double BFloat16Accuracy, double Agreement);

/// <summary>The LightGbm comparison (--compare).</summary>
public sealed record BaselineReport(double MicroAccuracy, double MacroAccuracy, TimeSpan TrainingTime);
