using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class ImageAugmentationTests
{
    private static readonly Func<int, (double, double)> Range = new ImagePreprocessing().Range;

    // Distinct values everywhere, so any resampling shows.
    private static Tensor Ramp(long batch) => arange(batch * 28 * 28, float32).view(batch, 1, 28, 28) / (28 * 28);

    [TestMethod]
    public void WithoutCropShiftOrFlipTheImagesPassUnchanged()
    {
        using var scope = NewDisposeScope();
        var images = Ramp(4);
        var augmented = new ImageAugmentation(minCropScale: 1, maxTranslation: 0, horizontalFlip: false, randomErasing: 0, Range, seed: 1).Apply(images);
        TensorAssert.AreClose(images, augmented, 1e-5, "identity augmentation");
    }

    [TestMethod]
    public void FlipMirrorsAboutHalfTheImagesAndLeavesTheRest()
    {
        using var scope = NewDisposeScope();
        var images = Ramp(64);
        var augmented = new ImageAugmentation(1, 0, horizontalFlip: true, randomErasing: 0, Range, seed: 2).Apply(images);
        int flipped = 0;
        for (int i = 0; i < 64; i++)
        {
            bool same = (augmented[i] - images[i]).abs().max().ToSingle() < 1e-5;
            bool mirrored = (augmented[i] - images[i].flip(2)).abs().max().ToSingle() < 1e-5;
            Assert.IsTrue(same ^ mirrored, $"image {i} is neither the original nor its mirror image");
            if (mirrored) flipped++;
        }
        Assert.IsTrue(flipped is > 16 and < 48, $"{flipped} of 64 images were flipped");
    }

    [TestMethod]
    public void TranslationMovesEachImageByAtMostTheLimit()
    {
        using var scope = NewDisposeScope();
        // One bright pixel in the middle of each image: its position after the shift is the shift.
        var images = zeros(64, 1, 28, 28);
        images[.., .., 14, 14] = tensor(1f);
        var augmented = new ImageAugmentation(1, maxTranslation: 0.1, horizontalFlip: false, randomErasing: 0, Range, seed: 3).Apply(images);
        var columns = arange(28, float32);
        double largest = 0;
        for (int i = 0; i < 64; i++)
        {
            var image = augmented[i, 0];
            double mass = image.sum().ToDouble();
            Assert.AreEqual(1.0, mass, 1e-4, $"image {i} lost or gained brightness while shifting");
            double x = (image.sum(dim: 0) * columns).sum().ToDouble() / mass, y = (image.sum(dim: 1) * columns).sum().ToDouble() / mass;
            double shift = Math.Max(Math.Abs(x - 14), Math.Abs(y - 14));
            Assert.IsTrue(shift <= 0.1 * 28 + 1e-4, $"image {i} moved {shift:F2} pixels, more than 10 % of 28");
            largest = Math.Max(largest, shift);
        }
        Assert.IsTrue(largest > 1, $"no image moved more than {largest:F2} pixels");
    }

    [TestMethod]
    public void SameSeedSameAugmentation()
    {
        using var scope = NewDisposeScope();
        var images = Ramp(8);
        var first = new ImageAugmentation(0.5, 0.1, true, 0.5, Range, seed: 4).Apply(images);
        var second = new ImageAugmentation(0.5, 0.1, true, 0.5, Range, seed: 4).Apply(images);
        Assert.IsTrue(first.equal(second).all().ToBoolean(), "the same seed gave different augmentations");
        Assert.IsFalse(first.allclose(images), "crop, shift and flip left every image unchanged");
    }

    [TestMethod]
    public void RandomErasingReplacesOneRectangleInAboutTheAskedShareOfImages()
    {
        using var scope = NewDisposeScope();
        // ImageNet's mean and deviation, per channel: the noise spans what a pixel can become in each channel.
        var preprocessing = ImagePreprocessing.ImageNet;
        var images = full(200, 3, 28, 28, 5f); // outside the noise's range, so every erased pixel shows
        var augmented = new ImageAugmentation(1, 0, horizontalFlip: false, randomErasing: 0.5, preprocessing.Range, seed: 5).Apply(images);
        int erasedImages = 0;
        var lowest = new double[] { double.MaxValue, double.MaxValue, double.MaxValue };
        var highest = new double[] { double.MinValue, double.MinValue, double.MinValue };
        for (int i = 0; i < 200; i++)
        {
            var erased = augmented[i, 0].lt(4.5f);
            long pixels = erased.sum().ToInt64();
            if (pixels == 0) continue;
            erasedImages++;
            // The erased pixels form one rectangle of 2–33 % of the image.
            var rows = erased.any(1).nonzero().flatten();
            var columns = erased.any(0).nonzero().flatten();
            long height = rows[-1].ToInt64() - rows[0].ToInt64() + 1, width = columns[-1].ToInt64() - columns[0].ToInt64() + 1;
            Assert.AreEqual(height * width, pixels, $"image {i}: the erased pixels are not one filled rectangle");
            Assert.IsTrue(pixels >= 0.02 * 784 - 28 && pixels <= 784 / 3.0 + 28, $"image {i}: {pixels} pixels erased");
            for (int c = 0; c < 3; c++)
            {
                Assert.IsTrue(augmented[i, c].lt(4.5f).eq(erased).all().ToBoolean(), $"image {i}: channel {c} was erased elsewhere");
                var noise = augmented[i, c].masked_select(erased);
                (lowest[c], highest[c]) = (Math.Min(lowest[c], noise.min().ToDouble()), Math.Max(highest[c], noise.max().ToDouble()));
            }
        }
        Assert.IsTrue(erasedImages is > 70 and < 130, $"{erasedImages} of 200 images were erased, asked for half");
        for (int c = 0; c < 3; c++)
        {
            var (low, high) = preprocessing.Range(c);
            double span = high - low;
            Assert.IsTrue(lowest[c] >= low - 1e-6 && lowest[c] < low + 0.01 * span && highest[c] <= high + 1e-6 && highest[c] > high - 0.01 * span,
                $"channel {c}: the noise spans [{lowest[c]:F3}, {highest[c]:F3}], not the pixel range [{low:F3}, {high:F3}]");
        }
    }
}
