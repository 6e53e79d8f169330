using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Training;

/// <summary>
/// Random resized crop, random translation and horizontal flip, per image, drawn from a seeded generator
/// and applied to the whole batch as one affine resampling; then random erasing (Zhong et al. 2017).
/// </summary>
internal sealed class ImageAugmentation
{
    private readonly double _minScale;
    private readonly double _maxTranslation;
    private readonly bool _flip;
    private readonly double _erasing;
    private readonly Random _random;
    private readonly Func<int, (double Low, double High)> _pixelRange;

    // pixelRange: what black and white pixels become in each channel (Models.ImagePreprocessing.Range); random erasing's
    // noise spans it.
    public ImageAugmentation(double minCropScale, double maxTranslation, bool horizontalFlip, double randomErasing, Func<int, (double Low, double High)> pixelRange, int seed)
    {
        _pixelRange = pixelRange;
        _minScale = minCropScale;
        _maxTranslation = maxTranslation;
        _flip = horizontalFlip;
        _erasing = randomErasing;
        _random = new Random(seed);
    }

    /// <summary>Augments a batch [B, C, H, W], keeping its shape.</summary>
    public Tensor Apply(Tensor images)
    {
        using var scope = NewDisposeScope();
        long batch = images.shape[0], h = images.shape[2], w = images.shape[3];
        // Each row maps output to input coordinates in [-1, 1]: x_in = sx·x_out + tx, y_in = sy·y_out + ty.
        var theta = new float[batch * 6];
        for (long i = 0; i < batch; i++)
        {
            var (top, left, height, width) = CropBox(h, w);
            double sx = (double)width / w, sy = (double)height / h;
            double tx = (2.0 * left + width) / w - 1 + Shift(), ty = (2.0 * top + height) / h - 1 + Shift();
            if (_flip && _random.NextDouble() < 0.5) sx = -sx;
            theta[i * 6] = (float)sx; theta[i * 6 + 2] = (float)tx;
            theta[i * 6 + 4] = (float)sy; theta[i * 6 + 5] = (float)ty;
        }
        var affine = tensor(theta, new[] { batch, 2L, 3L }, dtype: images.dtype, device: images.device);
        var grid = nn.functional.affine_grid(affine, images.shape, align_corners: false);
        // Border padding repeats the edge, which for most photos and scans is background.
        var augmented = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
        if (_erasing > 0) augmented = Erase(augmented);
        return augmented.MoveToOuterDisposeScope();
    }

    // With probability _erasing, a rectangle of 2–33 % of the image, aspect ratio in [0.3, 3.3], becomes uniform noise over the
    // pixel range.
    private Tensor Erase(Tensor images)
    {
        long batch = images.shape[0], h = images.shape[2], w = images.shape[3];
        var mask = new bool[batch * h * w];
        for (long i = 0; i < batch; i++)
        {
            if (_random.NextDouble() >= _erasing) continue;
            for (int attempt = 0; attempt < 10; attempt++)
            {
                double area = h * w * (0.02 + (1.0 / 3 - 0.02) * _random.NextDouble());
                double ratio = Math.Exp(Math.Log(0.3) + (Math.Log(1 / 0.3) - Math.Log(0.3)) * _random.NextDouble());
                long ew = (long)Math.Round(Math.Sqrt(area * ratio)), eh = (long)Math.Round(Math.Sqrt(area / ratio));
                if (ew < 1 || eh < 1 || ew > w || eh > h) continue;
                long top = _random.NextInt64(h - eh + 1), left = _random.NextInt64(w - ew + 1);
                for (long y = top; y < top + eh; y++) Array.Fill(mask, true, (int)((i * h + y) * w + left), (int)ew);
                break;
            }
        }
        var erased = tensor(mask, new[] { batch, 1L, h, w }, device: images.device);
        using var generator = new Generator((ulong)_random.NextInt64());
        var ranges = Enumerable.Range(0, (int)images.shape[1]).Select(_pixelRange).ToArray();
        var low = tensor(ranges.Select(r => r.Low).ToArray(), dtype: images.dtype).view(1, -1, 1, 1);
        var span = tensor(ranges.Select(r => r.High - r.Low).ToArray(), dtype: images.dtype).view(1, -1, 1, 1);
        var noise = rand(images.shape, images.dtype, generator: generator).mul_(span).add_(low).to(images.device);
        return where(erased, noise, images);
    }

    // A shift of up to ±maxTranslation of the image, in normalized coordinates (the image spans 2).
    private double Shift() => _maxTranslation == 0 ? 0 : 2 * _maxTranslation * (2 * _random.NextDouble() - 1);

    // Inception-style: area in [minScale, 1] of the image, aspect ratio in [3/4, 4/3] (log-uniform).
    private (long Top, long Left, long Height, long Width) CropBox(long h, long w)
    {
        if (_minScale >= 1) return (0, 0, h, w);
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
