using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class ImageAugmentationTests
{
    // Distinct values everywhere, so any resampling shows.
    private static Tensor Ramp(long batch) => arange(batch * 28 * 28, float32).view(batch, 1, 28, 28) / (28 * 28);

    [TestMethod]
    public void WithoutCropShiftOrFlipTheImagesPassUnchanged()
    {
        using var scope = NewDisposeScope();
        var images = Ramp(4);
        var augmented = new ImageAugmentation(minCropScale: 1, maxTranslation: 0, horizontalFlip: false, seed: 1).Apply(images);
        TensorAssert.AreClose(images, augmented, 1e-5, "identity augmentation");
    }

    [TestMethod]
    public void FlipMirrorsAboutHalfTheImagesAndLeavesTheRest()
    {
        using var scope = NewDisposeScope();
        var images = Ramp(64);
        var augmented = new ImageAugmentation(1, 0, horizontalFlip: true, seed: 2).Apply(images);
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
        var augmented = new ImageAugmentation(1, maxTranslation: 0.1, horizontalFlip: false, seed: 3).Apply(images);
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
        var first = new ImageAugmentation(0.5, 0.1, true, seed: 4).Apply(images);
        var second = new ImageAugmentation(0.5, 0.1, true, seed: 4).Apply(images);
        Assert.IsTrue(first.equal(second).all().ToBoolean(), "the same seed gave different augmentations");
        Assert.IsFalse(first.allclose(images), "crop, shift and flip left every image unchanged");
    }
}
