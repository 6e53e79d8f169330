namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>How multi-scale retention assigns each head its decay γ.</summary>
public enum DecaySchedule
{
    /// <summary>RetNet's <c>γ_h = 1 − 2^(−5−h)</c>.</summary>
    RetNet,

    /// <summary>The ViR authors' log-spaced <c>γ = 1 − exp(linspace(ln 1/32, ln 1/512, H))</c>.</summary>
    LogSpaced,

    /// <summary>RMT's first-stage decays, <c>γ_h = 1 − 2^−(2 + 4h/H)</c> (from 0.75): strong, for short distances such as a small grid's 2-D ones.</summary>
    Rmt,
}
