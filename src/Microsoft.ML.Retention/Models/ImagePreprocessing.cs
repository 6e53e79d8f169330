using System.Text.Json.Serialization;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// How an image becomes a model's input, stated once and stored as data with the model (in model.zip, a safetensors
/// checkpoint and the ONNX metadata, inside <see cref="ViRConfig"/>'s JSON). In order: the pixels' colour planes
/// (R, G, B, A), each byte divided by 255; for a one-channel model the luma <see cref="LumaRed"/>·R +
/// <see cref="LumaGreen"/>·G + <see cref="LumaBlue"/>·B, for three channels R, G, B, for four R, G, B, A; then
/// (value − <see cref="Mean"/>) / <see cref="Std"/>; then a stretch to the model's height and width with
/// antialiased bilinear resampling (a triangle filter as wide as the scale factor when shrinking, pixel centres at
/// half-integers, as torch's <c>interpolate(..., antialias: true)</c> and ONNX <c>Resize</c> with <c>antialias = 1</c>).
/// </summary>
public sealed record ImagePreprocessing
{
    /// <summary>Red's weight in the luma of one-channel models (ITU-R BT.601).</summary>
    public double LumaRed { get; init; } = 0.299;

    /// <summary>Green's weight in the luma of one-channel models.</summary>
    public double LumaGreen { get; init; } = 0.587;

    /// <summary>Blue's weight in the luma of one-channel models.</summary>
    public double LumaBlue { get; init; } = 0.114;

    /// <summary>Subtracted from every value in [0, 1].</summary>
    public double Mean { get; init; } = 0.5;

    /// <summary>Divides every value after <see cref="Mean"/> is subtracted.</summary>
    public double Std { get; init; } = 0.5;

    /// <summary>The smallest model input a pixel can give: black.</summary>
    [JsonIgnore]
    public double Low => (0 - Mean) / Std;

    /// <summary>The largest model input a pixel can give: white.</summary>
    [JsonIgnore]
    public double High => (1 - Mean) / Std;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        foreach (var (name, value) in new[] { (nameof(LumaRed), LumaRed), (nameof(LumaGreen), LumaGreen), (nameof(LumaBlue), LumaBlue), (nameof(Mean), Mean) })
            if (!double.IsFinite(value))
                throw new ArgumentOutOfRangeException(name, value, $"ImagePreprocessing.{name} must be a finite number, but it is {value}.");
        if (!(double.IsFinite(Std) && Std > 0))
            throw new ArgumentOutOfRangeException(nameof(Std), Std, $"ImagePreprocessing.Std must be a positive finite number, but it is {Std}.");
    }
}
