using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The Model Builder–shaped sample (MLModel1.consumption.cs, .training.cs, .evaluate.cs, .mbconfig) run as its own
/// process in an empty folder, as a user runs it: it trains a ViR from label folders, evaluates, writes MLModel1.mlnet
/// there and predicts from several threads with the single engine's scores.
/// </summary>
[TestClass]
public sealed class ModelBuilderSampleTests
{
    [TestMethod]
    public void TheModelBuilderShapedSampleTrainsEvaluatesSavesAndPredicts()
    {
        string work = Path.Combine(Path.GetTempPath(), $"vir-modelbuilder-{Guid.NewGuid():N}");
        string images = Path.Combine(work, "images");
        try
        {
            // 20 training images of each of the 10 classes, in label folders as Model Builder wants them.
            foreach (var dir in Directory.GetDirectories(Path.Combine(FashionMnist.Root, "train")))
            {
                string label = Path.Combine(images, Path.GetFileName(dir));
                Directory.CreateDirectory(label);
                foreach (var file in Directory.GetFiles(dir, "*.png").Order(StringComparer.Ordinal).Take(20))
                    File.Copy(file, Path.Combine(label, Path.GetFileName(file)));
            }
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                WorkingDirectory = work,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ViRImageClassification.ModelBuilder.dll"));
            start.ArgumentList.Add(images);
            using var run = Process.Start(start)!;
            var stderr = run.StandardError.ReadToEndAsync();
            string stdout = run.StandardOutput.ReadToEnd();
            run.WaitForExit();
            Console.WriteLine(stdout);
            Assert.AreEqual(0, run.ExitCode, stdout + stderr.Result);

            StringAssert.Matches(stdout, new Regex(@"^Accuracy: \d+\.\d+ %", RegexOptions.Multiline));
            StringAssert.Matches(stdout, new Regex(@"^class\s+precision\s+recall\s+images$", RegexOptions.Multiline));
            StringAssert.Contains(stdout, "Confusion table");
            Assert.IsTrue(File.Exists(Path.Combine(work, "MLModel1.mlnet")), "the model is MLModel1.mlnet in the current folder");
            var labels = Directory.GetDirectories(images).Select(Path.GetFileName).ToHashSet();
            var predictions = Regex.Matches(stdout, @"^.+\.png: (\S+) \(", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
            Assert.AreEqual(10, predictions.Count, stdout);
            Assert.IsTrue(predictions.All(labels.Contains), stdout);
            var difference = Regex.Match(stdout, @"^Max \|pooled Predict - single engine\|: (\S+)$", RegexOptions.Multiline);
            Assert.IsTrue(difference.Success, stdout);
            Assert.AreEqual(0.0, double.Parse(difference.Groups[1].Value, CultureInfo.InvariantCulture), "pooled engines over one model give the single engine's scores");
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
