using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Spectre.Console;
using ViRImageClassification;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Runs the sample's main path on a tiny slice, so the sample cannot rot.</summary>
[TestClass]
public sealed class ImageClassificationSampleTests
{
    private static (IAnsiConsole Console, StringWriter Text) TextConsole()
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Interactive = InteractionSupport.No, Ansi = AnsiSupport.No });
        console.Profile.Width = 240;
        return (console, text);
    }

    [TestMethod]
    public void WithBFloat16TheRunComparesItWithFloat32()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-sample-{Guid.NewGuid():N}");
        var (console, text) = TextConsole();
        try
        {
            var report = TrainCommand.Run(new TrainSettings { MaxImagesPerClass = 12, Epochs = 2, BatchSize = 32, Output = output, Precision = ViRPrecision.BFloat16, Device = ViRDevice.Cpu }, console);
            var comparison = report.Float32Comparison;
            Assert.IsNotNull(comparison);
            Assert.AreEqual(report.MicroAccuracy, comparison.BFloat16Accuracy, 1e-12, "the saved model scores in bfloat16");
            Assert.IsTrue(comparison.Agreement is > 0.9 and <= 1, $"agreement {comparison.Agreement}");
            StringAssert.Contains(text.ToString(), "BFloat16 against Float32");
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }

    [TestMethod]
    public void AnRmtTrainsAndAnotherRunStartsFromItsWeights()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-sample-{Guid.NewGuid():N}");
        var (console, text) = TextConsole();
        try
        {
            var first = TrainCommand.Run(new TrainSettings { Architecture = "Rmt-Mini", MaxImagesPerClass = 12, Epochs = 1, BatchSize = 32, Output = output, Device = ViRDevice.Cpu }, console);
            string weights = Path.Combine(output, "weights.safetensors");
            using (var saved = RmtCheckpoint.Load(weights)) Assert.AreEqual(RmtConfig.Mini, saved.Config, "the run trained the Rmt-Mini preset");
            StringAssert.Contains(text.ToString(), "RMT image classification");

            var second = TrainCommand.Run(new TrainSettings { Architecture = "Rmt-Mini", InitialWeights = weights, MaxImagesPerClass = 12, Epochs = 1, BatchSize = 32,
                Output = Path.Combine(output, "again"), Device = ViRDevice.Cpu }, console);
            Assert.IsTrue(double.IsFinite(first.LogLoss) && double.IsFinite(second.LogLoss));
            Assert.IsTrue(File.Exists(Path.Combine(output, "again", "model.zip")));
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }

    [TestMethod]
    public void AMadeLargeImageIsPredictedBandByBand()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-sample-{Guid.NewGuid():N}");
        var (console, text) = TextConsole();
        try
        {
            TrainCommand.Run(new TrainSettings { MaxImagesPerClass = 12, Epochs = 1, BatchSize = 32, Output = output, Device = ViRDevice.Cpu }, console);
            string large = Path.Combine(output, "large.jpg");
            string png = Path.Combine(output, "large.png");
            Assert.AreEqual(0, MakeImageCommand.Run(large, 252, Path.Combine(TrainSettings.DefaultData, "test"), console));
            Assert.AreEqual(0, MakeImageCommand.Run(png, 250, Path.Combine(TrainSettings.DefaultData, "test"), console));
            Assert.AreEqual(0, PredictCommand.RunStreaming(Path.Combine(output, "model.zip"), new[] { large, png }, 2, console));
            Console.WriteLine(text);
            StringAssert.Contains(text.ToString(), "252×252 pixels, 9×9 Fashion-MNIST images");
            StringAssert.Contains(text.ToString(), "250×250 pixels, 9×9 Fashion-MNIST images");
            StringAssert.Contains(text.ToString(), "Streamed predictions");
            StringAssert.Contains(text.ToString(), "252×252");
            StringAssert.Contains(text.ToString(), "248×248"); // the PNG, cut to whole 4-pixel patches
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }

    [TestMethod]
    public void TrainEvaluateSavePlotAndPredictOnATinySlice()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-sample-{Guid.NewGuid():N}");
        var (console, text) = TextConsole();
        try
        {
            var report = TrainCommand.Run(new TrainSettings { MaxImagesPerClass = 12, Epochs = 1, BatchSize = 32, Output = output, Compare = true, Device = ViRDevice.Cpu }, console);

            Assert.AreEqual(1, report.Epochs.Count);
            Assert.IsTrue(report.MicroAccuracy is >= 0 and <= 1 && double.IsFinite(report.LogLoss));
            Assert.IsNotNull(report.LightGbm);
            foreach (var file in new[] { "model.zip", "training-curves.png", "confusion-matrix.png" })
                Assert.IsTrue(new FileInfo(Path.Combine(output, file)).Length > 10_000, $"{file} is missing or too small to be real");
            using var figures = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "figures.json")));
            var confusion = figures.RootElement.EnumerateArray().Single(f => f.GetProperty("File").GetString() == "confusion-matrix.png")
                .GetProperty("Panels")[0].GetProperty("Heatmap");
            Assert.AreEqual(10, confusion.GetProperty("RowLabels").GetArrayLength());
            Assert.AreEqual(120.0, confusion.GetProperty("Values").EnumerateArray().SelectMany(row => row.EnumerateArray()).Sum(v => v.GetDouble()),
                "the confusion matrix should count the 12 × 10 test images");

            foreach (var heading in new[] { "Micro accuracy", "Confusion matrix", "Predictions", "LightGbm on raw pixels" })
                StringAssert.Contains(text.ToString(), heading);

            // The predict command loads the saved model.zip and switches its retention mode.
            var (predictConsole, predictText) = TextConsole();
            string bag = Path.Combine(TrainSettings.DefaultData, "test", "Bag");
            Assert.AreEqual(0, PredictCommand.Run(report.ModelPath, new[] { bag }, RetentionMode.Recurrent, null, predictConsole));
            string predictions = predictText.ToString();
            StringAssert.Contains(predictions, "Recurrent");
            Assert.AreEqual(150, Directory.GetFiles(bag).Count(f => predictions.Contains(Path.GetFileName(f))));

            // Showing predictions leaves the caller's model usable (the train command goes on with it).
            var ml = new Microsoft.ML.MLContext();
            var model = ml.Model.Load(report.ModelPath, out _);
            var files = Directory.GetFiles(bag).Take(2).ToList();
            PredictCommand.ShowPredictions(TextConsole().Console, ml, model, files);
            PredictCommand.ShowPredictions(TextConsole().Console, ml, model, files);
            ((IDisposable)model).Dispose();

            // export, then import (the path of a checkpoint trained with PyTorch): the same predictions, recurrent as saved.
            string weights = Path.Combine(output, "vir.safetensors");
            Assert.AreEqual(0, ExportCommand.Run(report.ModelPath, weights, RetentionMode.Chunkwise, TextConsole().Console));
            Assert.AreEqual(0, ImportCommand.Run(weights, Path.Combine(output, "imported"), RetentionMode.Recurrent, TextConsole().Console));
            var (importedConsole, importedText) = TextConsole();
            Assert.AreEqual(0, PredictCommand.Run(Path.Combine(output, "imported", "model.zip"), new[] { bag }, null, null, importedConsole));
            string imported = importedText.ToString();
            Assert.AreEqual(predictions[predictions.IndexOf("Predictions", StringComparison.Ordinal)..], imported[imported.IndexOf("Predictions", StringComparison.Ordinal)..]);
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }
}
