namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class TorchSharpPlatformTests
{
    [TestMethod]
    public void NativeBackendLoadsAndComputesMatmulWithBackward()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 }).requires_grad_();
        var b = tensor(new float[] { 5, 6, 7, 8 }, new long[] { 2, 2 });

        var product = a.matmul(b);
        CollectionAssert.AreEqual(new float[] { 19, 22, 43, 50 }, product.data<float>().ToArray());

        product.sum().backward();
        // d(sum(A·B))/dA[i,k] = sum_j B[k,j]
        CollectionAssert.AreEqual(new float[] { 11, 15, 11, 15 }, a.grad!.data<float>().ToArray());
    }
}
