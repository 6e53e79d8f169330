namespace Microsoft.ML.Retention;

/// <summary>ViR size presets (see <see cref="ViRConfig"/>).</summary>
public enum ViRArchitecture
{
    /// <summary>28×28 grayscale, 4×4 patches from a convolutional stem, dim 96, depth 6, 3 heads: trains in minutes on a CPU.</summary>
    Mini,

    /// <summary>224², dim 192, depth 12, 3 heads.</summary>
    Tiny,

    /// <summary>224², dim 384, depth 12, 6 heads.</summary>
    Small,

    /// <summary>224², dim 768, depth 12, 12 heads.</summary>
    Base,

    /// <summary>224², dim 1024, depth 24, 16 heads.</summary>
    Large,
}

/// <summary>Which validation metric early stopping watches.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Stop when the validation loss stops falling.</summary>
    ValidationLoss,

    /// <summary>Stop when the validation accuracy stops rising.</summary>
    ValidationAccuracy,
}

/// <summary>Stops training when the validation metric stops improving.</summary>
public sealed class EarlyStoppingOptions
{
    /// <summary>Epochs without improvement before stopping.</summary>
    public int Patience { get; set; } = 3;

    /// <summary>Smallest change that counts as an improvement.</summary>
    public double MinDelta { get; set; }

    /// <summary>Restores the weights of the best epoch when training ends.</summary>
    public bool RestoreBestWeights { get; set; } = true;

    /// <summary>The metric watched.</summary>
    public EarlyStoppingMetric Metric { get; set; } = EarlyStoppingMetric.ValidationLoss;
}
