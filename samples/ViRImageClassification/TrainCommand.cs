using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;
using Retention.Plots;
using Spectre.Console;
using Panel = Retention.Plots.Panel;

namespace ViRImageClassification;

/// <summary>Trains a ViR or an RMT on an image folder, evaluates it, saves model.zip, plots, and predicts a few images.</summary>
public static class TrainCommand
{
    public static TrainReport Run(TrainSettings settings, IAnsiConsole console)
    {
        var dataset = ImageFolderDataset.Load(settings.Data, settings.MaxImagesPerClass, settings.Tune);
        console.MarkupLineInterpolated($"[bold]{settings.Model().Backbone} image classification[/] on [blue]{settings.Data}[/]: {dataset.Train.Count} training and {dataset.Evaluation.Count} {dataset.EvaluationName} images, {dataset.ClassNames.Count} classes.");
        Directory.CreateDirectory(settings.Output);

        var ml = new MLContext(seed: 1);
        // Data preparation: file paths to encoded bytes (Model Builder's ImageSource), and class names to keys.
        // The key mapping is fitted on the training images and applied to the evaluation images too.
        var trainFiles = ml.Data.LoadFromEnumerable(dataset.Train);
        var loadBytes = ml.Transforms.LoadRawImageBytes("ImageSource", null, "ImagePath").Fit(trainFiles);
        var labelToKey = ml.Transforms.Conversion.MapValueToKey("Label").Fit(trainFiles);
        var train = labelToKey.Transform(loadBytes.Transform(trainFiles));
        var evaluationImages = loadBytes.Transform(ml.Data.LoadFromEnumerable(dataset.Evaluation));
        var evaluation = labelToKey.Transform(evaluationImages);

        var epochs = new List<ViREpochMetrics>();
        // A ViR's options add its retention forms; an RMT's its checkpoint choice. Everything else is shared.
        var architecture = settings.Model();
        ViRImageClassificationTrainer.OptionsBase options = architecture switch
        {
            RmtConfig rmt => new ViRImageClassificationTrainer.RmtOptions { Architecture = rmt, InitialWeightsMovingAverage = settings.MovingAverage },
            // Training runs in parallel form (fastest for short sequences; all forms give the same result);
            // --mode picks the form the saved model predicts in.
            _ => new ViRImageClassificationTrainer.Options
            {
                Architecture = (ViRConfig)architecture,
                TrainingRetention = new RetentionSettings(RetentionMode.Parallel),
                PredictionRetention = new RetentionSettings(settings.Mode, settings.ChunkSize),
            },
        };
        options.FeatureColumnName = "ImageSource";
        options.InitialWeights = settings.InitialWeights;
        options.LearningRate = settings.LearningRate;
        options.MaxEpoch = settings.Epochs;
        options.BatchSize = settings.BatchSize;
        options.PredictionPrecision = settings.Precision;
        options.TrainingPrecision = settings.TrainingPrecision;
        options.Augment = settings.Augment;
        options.MinCropScale = settings.MinCropScale;
        options.MaxTranslation = settings.MaxTranslation;
        options.RandomErasing = settings.RandomErasing;
        options.Seed = settings.Seed;
        options.Device = settings.Device;
        options.ValidationSet = evaluation;
        options.MetricsCallback = epochs.Add;
        var trainer = options switch
        {
            ViRImageClassificationTrainer.RmtOptions rmt => ml.MulticlassClassification.Trainers.Rmt(rmt),
            _ => ml.MulticlassClassification.Trainers.ViR((ViRImageClassificationTrainer.Options)options),
        };
        var pipeline = trainer.Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

        var watch = Stopwatch.StartNew();
        ITransformer model = null!;
        console.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                ProgressTask? task = null;
                options.ProgressCallback = p =>
                {
                    if (task is null || p.StepInEpoch == 1) task = context.AddTask($"Epoch {p.Epoch}/{p.MaxEpoch}", maxValue: p.StepsPerEpoch);
                    task.Value = p.StepInEpoch;
                    task.Description = $"Epoch {p.Epoch}/{p.MaxEpoch}  loss {p.RunningLoss:F3}  acc {p.RunningAccuracy:P1}  {p.ImagesPerSecond:F0} img/s";
                };
                // The saved model starts from the class name, as Model Builder's does.
                model = labelToKey.Append(pipeline.Fit(train));
            });
        var trainingTime = watch.Elapsed;
        console.MarkupLineInterpolated($"Trained in [green]{trainingTime:mm\\:ss}[/].");

        var scored = model.Transform(evaluationImages);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        var classNames = SlotNames(scored.Schema["Score"]);
        EvaluationReport.Print(console, metrics, classNames, dataset.EvaluationName);
        var float32Comparison = settings.Precision == ViRPrecision.BFloat16 ? CompareWithFloat32(console, ml, model, evaluationImages, scored) : null;

        string modelPath = Path.Combine(settings.Output, "model.zip");
        ml.Model.Save(model, loadBytes.Transform(trainFiles).Schema, modelPath);
        // The weights alone, for --initial-weights of another run (and for PyTorch: python/vir reads them).
        string weightsPath = Path.Combine(settings.Output, "weights.safetensors");
        ViRIn(model)!.SaveWeights(weightsPath);
        console.MarkupLineInterpolated($"Saved [blue]{modelPath}[/] ({new FileInfo(modelPath).Length / 1024} KiB) and [blue]{weightsPath}[/].");

        WritePlots(console, settings.Output, epochs, classNames, metrics.ConfusionMatrix);
        PredictCommand.ShowPredictions(console, ml, model, dataset.Evaluation.Take(3).Select(f => f.ImagePath));

        BaselineReport? baseline = settings.Compare ? LightGbmBaseline.Run(console, ml, dataset, ViRIn(model)!.Architecture) : null;
        if (baseline is not null)
        {
            string name = settings.Model().Backbone;
            var table = new Table().Title($"{name} vs LightGbm (same run)").AddColumns("Model", "Micro accuracy", "Macro accuracy", "Training time");
            table.AddRow(name, $"{metrics.MicroAccuracy:P2}", $"{metrics.MacroAccuracy:P2}", $"{trainingTime:mm\\:ss}");
            table.AddRow("LightGbm on raw pixels", $"{baseline.MicroAccuracy:P2}", $"{baseline.MacroAccuracy:P2}", $"{baseline.TrainingTime:mm\\:ss}");
            console.Write(table);
        }
        (model as IDisposable)?.Dispose();
        return new TrainReport(metrics.MicroAccuracy, metrics.MacroAccuracy, metrics.LogLoss, trainingTime, epochs, modelPath, baseline, float32Comparison);
    }

    /// <summary>Scores the evaluation images with the Float32 weights too: accuracy of each, and how often they predict the same class.</summary>
    private static PrecisionReport CompareWithFloat32(IAnsiConsole console, MLContext ml, ITransformer model, IDataView images, IDataView bfloat16Scored)
    {
        var float32 = model.WithPrecision(ViRPrecision.Float32);
        var float32Scored = float32.Transform(images);
        double accuracy32 = ml.MulticlassClassification.Evaluate(float32Scored).MicroAccuracy;
        double accuracy16 = ml.MulticlassClassification.Evaluate(bfloat16Scored).MicroAccuracy;
        var predicted32 = float32Scored.GetColumn<ReadOnlyMemory<char>>("PredictedLabel").Select(l => l.ToString()).ToList();
        var predicted16 = bfloat16Scored.GetColumn<ReadOnlyMemory<char>>("PredictedLabel").Select(l => l.ToString()).ToList();
        (float32 as IDisposable)?.Dispose();
        double agreement = predicted32.Zip(predicted16).Count(p => p.First == p.Second) / (double)predicted32.Count;
        console.MarkupLineInterpolated($"BFloat16 against Float32 on the same weights: accuracy [green]{accuracy16:P2}[/] against {accuracy32:P2} ({(accuracy16 - accuracy32) * 100:+0.00;-0.00} points), same prediction for [green]{agreement:P2}[/] of {predicted32.Count} images.");
        return new PrecisionReport(accuracy32, accuracy16, agreement);
    }

    internal static ViRImageClassificationTransformer? ViRIn(ITransformer model) => model switch
    {
        ViRImageClassificationTransformer vir => vir,
        IEnumerable<ITransformer> chain => chain.Select(ViRIn).FirstOrDefault(v => v is not null),
        _ => null,
    };

    internal static string[] SlotNames(DataViewSchema.Column score)
    {
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        score.GetSlotNames(ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    private static void WritePlots(IAnsiConsole console, string output, List<ViREpochMetrics> epochs, string[] classNames, ConfusionMatrix confusion)
    {
        double[] x = epochs.Select(e => (double)e.Epoch).ToArray();
        Panel Curves(string metric, Func<ViREpochMetrics, double> train, Func<ViREpochMetrics, double?> validation)
        {
            var series = new List<Series> { new($"train {metric.ToLowerInvariant()}", x, epochs.Select(train).ToArray()) };
            if (epochs.All(e => validation(e).HasValue))
                series.Add(new($"validation {metric.ToLowerInvariant()}", x, epochs.Select(e => validation(e)!.Value).ToArray()));
            return new Panel(metric) { XLabel = "epoch", IntegerX = true, Series = series.ToArray() };
        }
        var figures = new[]
        {
            new Figure("training-curves.png", 1000, 420, new[]
            {
                Curves("Loss", e => e.TrainLoss, e => e.ValidationLoss),
                Curves("Accuracy", e => e.TrainAccuracy, e => e.ValidationAccuracy),
            }),
            new Figure("confusion-matrix.png", 820, 820, new[]
            {
                new Panel("Confusion matrix (rows: actual, columns: predicted)")
                {
                    Heatmap = new Heatmap(classNames, classNames, confusion.Counts.Select(row => row.ToArray()).ToArray()),
                },
            }),
        };
        try
        {
            console.WriteLine(PlotterProcess.Draw(figures, output));
        }
        catch (FileNotFoundException e)
        {
            console.MarkupLineInterpolated($"[yellow]{e.Message}[/]");
        }
    }
}
