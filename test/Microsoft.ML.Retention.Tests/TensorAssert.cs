namespace Microsoft.ML.Retention.Tests;

internal static class TensorAssert
{
    /// <summary>max |actual − expected| ≤ relative · max |expected|; returns the observed relative difference.</summary>
    public static double AreClose(Tensor expected, Tensor actual, double relative, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shapes differ");
        using var scope = NewDisposeScope();
        double scale = expected.abs().max().ToDouble();
        double diff = (actual - expected).abs().max().ToDouble();
        Assert.IsTrue(double.IsFinite(diff), $"{what}: not finite");
        double observed = diff / Math.Max(scale, 1e-30);
        Console.WriteLine($"{what}: relative max |Δ| = {observed:g3}");
        Assert.IsTrue(observed <= relative, $"{what}: max |Δ| = {diff:g3}, {observed:g3} of max |expected| = {scale:g3}, above {relative:g3}");
        return observed;
    }
}
