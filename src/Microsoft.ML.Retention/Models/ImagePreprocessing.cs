using System.Text.Json.Serialization;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// How an image becomes a model's input, stated once and stored as data with the model (in model.zip, a safetensors
/// checkpoint and the ONNX metadata, inside the config's JSON). In order: the pixels' colour planes (R, G, B, A), each
/// byte divided by 255; for a one-channel model the luma <see cref="LumaRed"/>·R + <see cref="LumaGreen"/>·G +
/// <see cref="LumaBlue"/>·B, for three channels R, G, B, for four R, G, B, A; then (value − <see cref="Mean"/>) /
/// <see cref="Std"/>, per channel; then a stretch to the model's height and width with antialiased bilinear resampling
/// (a triangle filter as wide as the scale factor when shrinking, pixel centres at half-integers, as torch's
/// <c>interpolate(..., antialias: true)</c> and ONNX <c>Resize</c> with <c>antialias = 1</c>).
/// </summary>
public sealed record ImagePreprocessing
{
    /// <summary>Red's weight in the luma of one-channel models (ITU-R BT.601).</summary>
    public double LumaRed { get; init; } = 0.299;

    /// <summary>Green's weight in the luma of one-channel models.</summary>
    public double LumaGreen { get; init; } = 0.587;

    /// <summary>Blue's weight in the luma of one-channel models.</summary>
    public double LumaBlue { get; init; } = 0.114;

    /// <summary>Subtracted from every value in [0, 1]: one value for every channel, or one per channel.</summary>
    public IReadOnlyList<double> Mean { get; init; } = new[] { 0.5 };

    /// <summary>Divides every value after <see cref="Mean"/> is subtracted: one value for every channel, or one per channel.</summary>
    public IReadOnlyList<double> Std { get; init; } = new[] { 0.5 };

    /// <summary>
    /// ImageNet's per-channel mean (0.485, 0.456, 0.406) and deviation (0.229, 0.224, 0.225), with which the official
    /// RMT checkpoints were trained.
    /// </summary>
    public static ImagePreprocessing ImageNet => new() { Mean = new[] { 0.485, 0.456, 0.406 }, Std = new[] { 0.229, 0.224, 0.225 } };

    /// <summary>The mean of <paramref name="channel"/>.</summary>
    public double MeanOf(int channel) => Mean.Count == 1 ? Mean[0] : Mean[channel];

    /// <summary>The deviation of <paramref name="channel"/>.</summary>
    public double StdOf(int channel) => Std.Count == 1 ? Std[0] : Std[channel];

    /// <summary>What black and white pixels become in <paramref name="channel"/>: the values an input can take there.</summary>
    public (double Low, double High) Range(int channel) => ((0 - MeanOf(channel)) / StdOf(channel), (1 - MeanOf(channel)) / StdOf(channel));

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field, for a model of <paramref name="channels"/> channels.</summary>
    public void Validate(int channels)
    {
        foreach (var (name, value) in new[] { (nameof(LumaRed), LumaRed), (nameof(LumaGreen), LumaGreen), (nameof(LumaBlue), LumaBlue) })
            if (!double.IsFinite(value))
                throw new ArgumentOutOfRangeException(name, value, $"ImagePreprocessing.{name} must be a finite number, but it is {value}.");
        foreach (var (name, values, positive) in new[] { (nameof(Mean), Mean, false), (nameof(Std), Std, true) })
        {
            if (values is null || (values.Count != 1 && values.Count != channels))
                throw new ArgumentOutOfRangeException(name, values?.Count,
                    $"ImagePreprocessing.{name} must hold one value for every channel or one per channel ({channels}), but it holds {values?.Count.ToString() ?? "none"}.");
            foreach (double value in values)
                if (!double.IsFinite(value) || (positive && value <= 0))
                    throw new ArgumentOutOfRangeException(name, value, $"ImagePreprocessing.{name} must hold {(positive ? "positive " : "")}finite numbers, but it holds {value}.");
        }
    }

    /// <summary>Equal when every field is, the per-channel values compared one by one.</summary>
    public bool Equals(ImagePreprocessing? other) =>
        other is not null && LumaRed.Equals(other.LumaRed) && LumaGreen.Equals(other.LumaGreen) && LumaBlue.Equals(other.LumaBlue)
        && Mean.SequenceEqual(other.Mean) && Std.SequenceEqual(other.Std);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(LumaRed, LumaGreen, LumaBlue, Mean.Count > 0 ? Mean[0] : 0, Std.Count > 0 ? Std[0] : 0);
}
