using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Retention.Tests;

/// <summary>bfloat16 mixed-precision training: fp32 master weights get the gradients a bfloat16 copy computes.</summary>
[TestClass]
public sealed class MixedPrecisionTests
{
    [TestMethod]
    public void ABFloat16StepGivesTheFloat32GradientsToBFloat16Precision()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // No stochastic depth, so both passes compute the same function.
        using var model = new ViRModel(ViRConfig.Mini with { DropPath = 0 });
        model.train();
        var (images, labels) = RealBatch(32);
        var retention = new RetentionSettings(RetentionMode.Parallel);

        nn.functional.cross_entropy(model.forward(images, retention), labels).backward();
        var float32 = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        model.zero_grad();

        using var replica = new BFloat16Replica(model, CPU);
        replica.PullWeights();
        nn.functional.cross_entropy(replica.Model.forward(images.to(ScalarType.BFloat16), retention).to(ScalarType.Float32), labels).backward();
        replica.PushGradients();

        double errorSquared = 0, normSquared = 0;
        foreach (var (name, parameter) in model.named_parameters())
        {
            Assert.AreEqual(ScalarType.Float32, parameter.dtype, $"{name}: the master weight");
            Assert.AreEqual(ScalarType.Float32, parameter.grad!.dtype, $"{name}: the master gradient");
            errorSquared += (parameter.grad - float32[name]).square().sum().ToDouble();
            normSquared += float32[name].square().sum().ToDouble();
        }
        double relative = Math.Sqrt(errorSquared / normSquared);
        Console.WriteLine($"bfloat16 gradient against float32: relative error {relative:G3} (bfloat16 unit roundoff 2^-8 = {1 / 256.0:G3})");
        Assert.IsTrue(relative < 0.05, $"the bfloat16 gradient differs from the float32 one by {relative:G3} relative");
        Assert.IsTrue(relative > 0, "the copy computed in float32");
    }

    [TestMethod]
    public void MixedPrecisionTrainingLearnsAsWellAsFloat32()
    {
        var ml = new MLContext(seed: 1);
        var train = TinyFit.Images(ml, 60);
        var test = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 4)).Transform(FashionMnist.Load(ml, "test", 60));
        double Accuracy(ViRPrecision precision)
        {
            using var model = TinyFit.Fit(ml, train, o => { o.Architecture = ViRConfig.Mini with { Depth = 2 }; o.MaxEpoch = 4; o.TrainingPrecision = precision; });
            foreach (var (name, parameter) in model.Model.named_parameters())
                Assert.AreEqual(ScalarType.Float32, parameter.dtype, $"{precision}: {name} of the fitted model");
            return ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
        }
        double float32 = Accuracy(ViRPrecision.Float32), bfloat16 = Accuracy(ViRPrecision.BFloat16);
        Console.WriteLine($"test accuracy after 4 epochs on 600 images: Float32 {float32:P1}, BFloat16 {bfloat16:P1}");
        Assert.IsTrue(bfloat16 > 0.5, $"mixed-precision training reached {bfloat16:P1} on 10 classes");
        Assert.IsTrue(bfloat16 > float32 - 0.05, $"BFloat16 {bfloat16:P1} against Float32 {float32:P1}");
    }

    /// <summary>Real Fashion-MNIST images [B, 1, 28, 28] in [0, 1] and their class indices.</summary>
    private static (Tensor Images, Tensor Labels) RealBatch(int count)
    {
        var ml = new MLContext(seed: 1);
        var rows = FashionMnist.Load(ml, "train", (count + 9) / 10);
        var pixels = FashionMnist.Preprocess(ml)
            .Append(ml.Transforms.ResizeImages("Image", 28, 28))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1 / 255f))
            .Fit(rows).Transform(rows);
        var images = pixels.GetColumn<float[]>("Pixels").Take(count).SelectMany(p => p).ToArray();
        var labels = pixels.GetColumn<uint>("Label").Take(count).Select(k => (long)k - 1).ToArray();
        return (tensor(images, new long[] { count, 1, 28, 28 }), tensor(labels));
    }
}
