using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using ViRImageClassification.Onnx;

namespace Microsoft.ML.Retention.Tests;

/// <summary>The ONNX sample: it scores an exported model as the TorchSharp transformer does, and ships without libtorch.</summary>
[TestClass]
public sealed class OnnxSampleTests
{
    [TestMethod]
    public void TheOnnxAppsClassifierPredictsAsTheTransformer()
    {
        var ml = new MLContext(seed: 1);
        using var trained = TinyFit.Fit(ml, TinyFit.Images(ml, 20), o => { o.Architecture = ViRConfig.Mini with { Depth = 2 }; o.MaxEpoch = 3; });
        string onnx = Path.Combine(Path.GetTempPath(), $"vir-{Guid.NewGuid():N}.onnx");
        try
        {
            trained.ExportToOnnx(onnx, RetentionMode.Chunkwise);
            using var classifier = new OnnxImageClassifier(new MLContext(), onnx);
            CollectionAssert.AreEqual(trained.LabelNames.ToArray(), classifier.LabelNames.ToArray());
            Assert.AreEqual(trained.Config.Preprocessing, System.Text.Json.JsonSerializer.Deserialize<ImagePreprocessing>(classifier.Preprocessing.GetRawText()),
                "the file carries the model's preprocessing as data");

            var test = FashionMnist.Load(ml, "test", 3);
            var scored = trained.Transform(FashionMnist.Preprocess(ml).Fit(test).Transform(test));
            var expected = scored.GetColumn<float[]>("Score").ToArray();
            var paths = scored.GetColumn<string>("ImagePath").ToArray();
            for (int i = 0; i < paths.Length; i++)
            {
                var predicted = classifier.Predict(Path.Combine(FashionMnist.Root, paths[i])).ToList();
                int best = Array.IndexOf(expected[i], expected[i].Max());
                Assert.AreEqual(trained.LabelNames[best], predicted[0].Label, paths[i]);
                Assert.AreEqual(expected[i][best], predicted[0].Probability, 1e-4, paths[i]);
            }
        }
        finally
        {
            File.Delete(onnx);
        }
    }

    [TestMethod]
    public void TheOnnxAppPublishesWithoutTorchSharp()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-onnx-app-{Guid.NewGuid():N}");
        try
        {
            TestProcess.Run("dotnet", $"publish {TestProcess.Quote(Path.Combine(TestProcess.RepoRoot, "samples", "ViRImageClassification.Onnx"))} -c Release -o {TestProcess.Quote(output)} -nologo",
                TestProcess.RepoRoot).AssertSucceeded("dotnet publish ViRImageClassification.Onnx");
            var files = Directory.GetFiles(output, "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
            Assert.IsFalse(files.Any(f => f!.Contains("torch", StringComparison.OrdinalIgnoreCase) || f.Contains("Retention", StringComparison.Ordinal)),
                string.Join(", ", files.Where(f => f!.Contains("torch", StringComparison.OrdinalIgnoreCase) || f.Contains("Retention", StringComparison.Ordinal))));
            Assert.IsTrue(files.Contains("libonnxruntime.so"), "ONNX Runtime's native library is published");
            long bytes = Directory.GetFiles(output, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"ViRImageClassification.Onnx publishes {bytes / (1 << 20)} MiB");
            Assert.IsTrue(bytes < 300L << 20, $"{bytes / (1 << 20)} MiB");
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }
}
