namespace Microsoft.ML.Retention.Training;

/// <summary>Linear warmup to the base rate, then cosine decay to zero at the last step (DeiT's recipe).</summary>
internal sealed class LearningRateSchedule
{
    private readonly double _baseRate;
    private readonly long _warmupSteps;
    private readonly long _totalSteps;

    public LearningRateSchedule(double baseRate, long warmupSteps, long totalSteps)
    {
        _baseRate = baseRate;
        _totalSteps = Math.Max(1, totalSteps);
        _warmupSteps = Math.Min(warmupSteps, _totalSteps - 1);
    }

    /// <summary>The rate for 0-based <paramref name="step"/>.</summary>
    public double At(long step)
    {
        if (step < _warmupSteps) return _baseRate * (step + 1) / _warmupSteps;
        double progress = (double)(step - _warmupSteps) / Math.Max(1, _totalSteps - _warmupSteps);
        return _baseRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }
}
