using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The mechanism of a pretrained start, on real images: an RMT trained on five Fashion-MNIST classes, fine-tuned through
/// InitialWeights on the other five from 50 images per class, against the same fine-tune from random weights.
/// (docs/training.md has the full-set measurement with the sample.)
/// </summary>
[TestClass]
public sealed class TransferLearningTests
{
    private static IDataView Images(MLContext ml, string split, IEnumerable<string> classes, int perClass)
    {
        var wanted = classes.ToHashSet();
        var rows = FashionMnist.Rows(split, perClass).Where(r => wanted.Contains(r.Label)).ToList();
        return ml.Data.LoadFromEnumerable(FashionMnist.Interleaved(rows));
    }

    private static double FineTune(MLContext ml, IDataView train, IDataView test, string? initialWeights, double learningRate = 1e-3)
    {
        var options = RmtTrainerTests.Options();
        options.Architecture = RmtTrainerTests.Tiny;
        options.InitialWeights = initialWeights;
        options.MaxEpoch = 15;
        options.LearningRate = learningRate;
        var preprocess = FashionMnist.Preprocess(ml).Fit(train);
        using var model = ml.MulticlassClassification.Trainers.Rmt(options).Fit(preprocess.Transform(train));
        return ml.MulticlassClassification.Evaluate(model.Transform(preprocess.Transform(test))).MicroAccuracy;
    }

    [TestMethod]
    public void APretrainedStartBeatsARandomOneOnFiftyImagesPerClass()
    {
        var ml = new MLContext(seed: 1);
        var classes = FashionMnist.Rows("test", 1).Select(r => r.Label).ToArray();
        string[] pretrainClasses = classes[..5], fineTuneClasses = classes[5..];
        string weights = Path.Combine(Path.GetTempPath(), $"rmt-pretrained-{Guid.NewGuid():N}.safetensors");
        try
        {
            var pretrain = Images(ml, "train", pretrainClasses, 750);
            var options = RmtTrainerTests.Options();
            options.MaxEpoch = 6;
            options.BatchSize = 64;
            var preprocess = FashionMnist.Preprocess(ml).Fit(pretrain);
            using (var pretrained = ml.MulticlassClassification.Trainers.Rmt(options).Fit(preprocess.Transform(pretrain)))
                pretrained.SaveWeights(weights);

            var few = Images(ml, "train", fineTuneClasses, 50);
            var test = Images(ml, "test", fineTuneClasses, 150);
            foreach (var lr in new[] { 1e-3, 3e-4, 1e-4 })
                Console.WriteLine($"lr {lr}: pretrained {FineTune(ml, few, test, weights, lr):P2}, random {FineTune(ml, few, test, null, lr):P2}");
            double fromPretrained = FineTune(ml, few, test, weights);
            double fromRandom = FineTune(ml, few, test, initialWeights: null);
            Console.WriteLine($"fine-tuned on 5 × 50 images of {string.Join(", ", fineTuneClasses)}: from pretrained {fromPretrained:P2}, from random {fromRandom:P2}");
            // Measured on this machine: see docs/training.md. The margin asked for is well below the measured gap.
            Assert.IsTrue(fromPretrained >= fromRandom + 0.05, $"pretrained {fromPretrained:P2} against random {fromRandom:P2}");
        }
        finally
        {
            File.Delete(weights);
        }
    }
}
