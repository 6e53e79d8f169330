using Microsoft.ML.Retention.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>
/// Decoded 4-byte pixels to model input [C, height, width] at their own size, as a config's
/// <see cref="ImagePreprocessing"/> says: colour planes, then (value − mean) / std per channel. Resizing is the caller's.
/// The image column and the streaming reader both use it, so an image becomes the same input either way.
/// </summary>
internal sealed class ImagePlanes
{
    private readonly IVisionBackboneConfig _config;
    private readonly float[] _mean, _std; // one per channel, made once

    public ImagePlanes(IVisionBackboneConfig config)
    {
        _config = config;
        var channels = Enumerable.Range(0, config.Channels).ToArray();
        _mean = channels.Select(c => (float)config.Preprocessing.MeanOf(c)).ToArray();
        _std = channels.Select(c => (float)config.Preprocessing.StdOf(c)).ToArray();
    }

    /// <summary>[C, height, width] from pixels in BGRA (<paramref name="bgra"/>) or RGBA order, row by row.</summary>
    public Tensor From(ReadOnlySpan<byte> pixels, int height, int width, bool bgra)
    {
        using var scope = NewDisposeScope();
        return From(tensor(pixels.ToArray()).view(height, width, 4), bgra).MoveToOuterDisposeScope();
    }

    /// <summary>[C, height, width] from pixels [height, width, 4] (bytes) in BGRA (<paramref name="bgra"/>) or RGBA order.</summary>
    public Tensor From(Tensor pixels, bool bgra)
    {
        using var scope = NewDisposeScope();
        var hwc = pixels.permute(2, 0, 1).to(float32).div_(255);
        var (r, g, b) = bgra ? (hwc[2], hwc[1], hwc[0]) : (hwc[0], hwc[1], hwc[2]);
        var p = _config.Preprocessing;
        var planes = _config.Channels switch
        {
            1 => (p.LumaRed * r + p.LumaGreen * g + p.LumaBlue * b).unsqueeze(0),
            3 => stack(new[] { r, g, b }),
            4 => stack(new[] { r, g, b, hwc[3] }),
            _ => throw new InvalidOperationException($"Images can feed a model with 1, 3 or 4 channels, but this model has {_config.Channels}."),
        };
        return planes.sub_(tensor(_mean).view(-1, 1, 1)).div_(tensor(_std).view(-1, 1, 1)).MoveToOuterDisposeScope();
    }
}
