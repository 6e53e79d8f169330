namespace Microsoft.ML.Retention.Training;

/// <summary>Which validation metric early stopping watches.</summary>
public enum EarlyStoppingMetric
{
    /// <summary>Stop when the validation loss stops falling.</summary>
    ValidationLoss,

    /// <summary>Stop when the validation accuracy stops rising.</summary>
    ValidationAccuracy,
}
