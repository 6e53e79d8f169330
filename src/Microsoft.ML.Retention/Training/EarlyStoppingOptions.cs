namespace Microsoft.ML.Retention.Training;

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
