namespace Microsoft.ML.Retention.Models;

/// <summary>
/// Sizes a model, a file or an option may ask for, checked before anything is allocated, so that a hostile or mistaken
/// model.zip, checkpoint or option is refused with its cause instead of exhausting memory. An app that really needs
/// more raises a limit with an AppContext setting of the same name, for example
/// <c>&lt;RuntimeHostConfigurationOption Include="Microsoft.ML.Retention.MaxParameters" Value="4000000000" /&gt;</c>.
/// </summary>
public static class ViRLimits
{
    /// <summary>Learnable parameters of one model: 1·10⁹ (4 GB of float32 weights; ViR-L at 224² has 0.3·10⁹).</summary>
    public static long MaxParameters => Setting(nameof(MaxParameters), 1_000_000_000L);

    /// <summary>Images per forward pass (<c>Options.BatchSize</c>, and what model.zip stores): 65,536.</summary>
    public static long MaxBatchSize => Setting(nameof(MaxBatchSize), 65_536L);

    /// <summary>libtorch threads (<c>Options.ThreadCount</c>): 1,024.</summary>
    public static long MaxThreadCount => Setting(nameof(MaxThreadCount), 1_024L);

    /// <summary>
    /// Pixels of one decoded image (width × height): 100·10⁶, a 10,000 × 10,000 photo (400 MB as RGBA). A streamed image
    /// (<c>PredictStreaming</c>) is never held whole, so the limit applies to what one band holds: its width times its rows.
    /// </summary>
    public static long MaxImagePixels => Setting(nameof(MaxImagePixels), 100_000_000L);

    private static long Setting(string name, long fallback) => AppContext.GetData($"Microsoft.ML.Retention.{name}") switch
    {
        long value when value > 0 => value,
        int value when value > 0 => value,
        string text when long.TryParse(text, out long value) && value > 0 => value,
        _ => fallback,
    };
}
