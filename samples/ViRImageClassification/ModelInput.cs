using Microsoft.ML.Data;

namespace ViRImageClassification;

/// <summary>One image to classify, in Model Builder's shape.</summary>
public sealed class ModelInput
{
    /// <summary>The true class, when known (empty when predicting).</summary>
    [ColumnName("Label")]
    public string Label { get; set; } = "";

    /// <summary>The encoded image (PNG, JPEG, ...).</summary>
    [ColumnName("ImageSource")]
    public byte[] ImageSource { get; set; } = Array.Empty<byte>();
}

/// <summary>A prediction, in Model Builder's shape.</summary>
public sealed class ModelOutput
{
    /// <summary>The most probable class.</summary>
    [ColumnName("PredictedLabel")]
    public string PredictedLabel { get; set; } = "";

    /// <summary>The probability of every class, in the order of the model's class names.</summary>
    [ColumnName("Score")]
    public float[] Score { get; set; } = Array.Empty<float>();
}
