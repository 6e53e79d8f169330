using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Training;

/// <summary>Random resized crop plus horizontal flip, per image, drawn from a seeded generator.</summary>
internal sealed class ImageAugmentation
{
    private readonly double _minScale;
    private readonly bool _flip;
    private readonly Random _random;

    public ImageAugmentation(double minCropScale, bool horizontalFlip, int seed)
    {
        _minScale = minCropScale;
        _flip = horizontalFlip;
        _random = new Random(seed);
    }

    /// <summary>Augments a batch [B, C, H, W], keeping its shape.</summary>
    public Tensor Apply(Tensor images)
    {
        using var scope = NewDisposeScope();
        long h = images.shape[2], w = images.shape[3];
        var augmented = new Tensor[images.shape[0]];
        for (long i = 0; i < images.shape[0]; i++)
        {
            var (top, left, height, width) = CropBox(h, w);
            var crop = images[i].narrow(1, top, height).narrow(2, left, width).unsqueeze(0);
            if (height != h || width != w)
                crop = nn.functional.interpolate(crop, new[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false);
            if (_flip && _random.NextDouble() < 0.5) crop = crop.flip(3);
            augmented[i] = crop;
        }
        return cat(augmented, 0).MoveToOuterDisposeScope();
    }

    // Inception-style: area in [minScale, 1] of the image, aspect ratio in [3/4, 4/3] (log-uniform).
    private (long Top, long Left, long Height, long Width) CropBox(long h, long w)
    {
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double area = h * w * (_minScale + (1 - _minScale) * _random.NextDouble());
            double ratio = Math.Exp(Math.Log(3.0 / 4) + (Math.Log(4.0 / 3) - Math.Log(3.0 / 4)) * _random.NextDouble());
            long cw = (long)Math.Round(Math.Sqrt(area * ratio)), ch = (long)Math.Round(Math.Sqrt(area / ratio));
            if (cw >= 1 && ch >= 1 && cw <= w && ch <= h)
                return (_random.NextInt64(h - ch + 1), _random.NextInt64(w - cw + 1), ch, cw);
        }
        return (0, 0, h, w);
    }
}
