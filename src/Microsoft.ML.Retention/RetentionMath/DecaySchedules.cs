namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>Computes per-head decays for a <see cref="DecaySchedule"/>.</summary>
public static class DecaySchedules
{
    /// <summary>The decay γ of each of <paramref name="heads"/> heads, all in (0, 1).</summary>
    public static float[] Gammas(DecaySchedule schedule, int heads)
    {
        if (heads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "The head count must be at least 1.");
        return schedule switch
        {
            DecaySchedule.RetNet => Enumerable.Range(0, heads).Select(h => (float)(1 - Math.Pow(2, -5 - h))).ToArray(),
            DecaySchedule.LogSpaced => Enumerable.Range(0, heads).Select(h =>
            {
                double from = Math.Log(1.0 / 32), to = Math.Log(1.0 / 512);
                double t = heads == 1 ? 0 : (double)h / (heads - 1);
                return (float)(1 - Math.Exp(from + t * (to - from)));
            }).ToArray(),
            DecaySchedule.Rmt => Enumerable.Range(0, heads).Select(h => (float)(1 - Math.Pow(2, -(2 + 4.0 * h / heads)))).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "Unknown decay schedule."),
        };
    }
}
