using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using Spectre.Console;
using ViRImageClassification.Consume;

namespace ViRImageClassification;

/// <summary>Loads model.zip and classifies image files or folders, printing the top-3 classes.</summary>
public static class PredictCommand
{
    private static readonly HashSet<string> ImageExtensions = new(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    public static int Run(string modelPath, IReadOnlyList<string> paths, RetentionMode? mode, int? chunkSize, IAnsiConsole console)
    {
        var ml = new MLContext();
        ITransformer model = ml.Model.Load(modelPath, out _);
        if (mode is { } m)
        {
            model = model.WithRetentionMode(m, chunkSize);
            console.MarkupLineInterpolated($"Predicting with [blue]{m}[/] retention{(m == RetentionMode.Chunkwise ? $" (chunk size {chunkSize switch { null => "as trained", ChunkSizes.Auto => "automatic", int c => c.ToString() }})" : "")}.");
        }
        var files = paths.SelectMany(ImagesAt).ToList();
        ShowPredictions(console, ml, model, files);
        (model as IDisposable)?.Dispose();
        return 0;
    }

    /// <summary>
    /// Classifies each JPEG or PNG at its own resolution, band by band (<see cref="ViRImageClassificationTransformer.PredictStreaming(string, int, IProgress{double}?, CancellationToken)"/>),
    /// with a progress bar per image.
    /// </summary>
    public static int RunStreaming(string modelPath, IReadOnlyList<string> paths, int bandTokens, IAnsiConsole console)
    {
        var ml = new MLContext();
        ITransformer model = ml.Model.Load(modelPath, out _);
        var vir = TrainCommand.ViRIn(model) ?? throw new InvalidOperationException($"'{modelPath}' holds no ViR model.");
        var table = new Table().Title("Streamed predictions").AddColumns("Image", "Read at", "Predicted", "Top 3", "Time");
        foreach (var file in paths.SelectMany(ImagesAt))
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            ViRStreamingPrediction prediction = null!;
            console.Progress().Start(context =>
            {
                var task = context.AddTask(Markup.Escape(Path.GetFileName(file)), maxValue: 1);
                prediction = vir.PredictStreaming(file, bandTokens, new Progress<double>(done => task.Value = done));
                task.Value = 1;
            });
            table.AddRow(Markup.Escape(Path.GetFileName(file)), $"{prediction.Width}×{prediction.Height}", Markup.Escape(prediction.PredictedLabel),
                Markup.Escape(Top3(prediction.Score, vir.LabelNames)), $"{watch.Elapsed.TotalSeconds:F1} s");
        }
        console.Write(table);
        (model as IDisposable)?.Dispose();
        return 0;
    }

    private static IEnumerable<string> ImagesAt(string path)
    {
        if (File.Exists(path)) return new[] { path };
        if (!Directory.Exists(path)) throw new FileNotFoundException($"No image file or folder at '{path}'.", path);
        return Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
            .Where(f => ImageExtensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal);
    }

    /// <summary>Scores each file with a PredictionEngine and prints its top-3 classes with probabilities.</summary>
    public static void ShowPredictions(IAnsiConsole console, MLContext ml, ITransformer model, IEnumerable<string> files)
    {
        // The caller keeps using and disposes the model: the engine must not own it.
        using var engine = ml.Model.CreatePredictionEngine<ImageClassifier.ModelInput, ImageClassifier.ModelOutput>(model,
            new PredictionEngineOptions { OwnsTransformer = false });
        string[] classNames = TrainCommand.SlotNames(engine.OutputSchema["Score"]);
        var table = new Table().Title("Predictions").AddColumns("Image", "Predicted", "Top 3");
        foreach (var file in files)
        {
            var output = engine.Predict(new ImageClassifier.ModelInput { ImageSource = File.ReadAllBytes(file) });
            table.AddRow(Markup.Escape(Path.GetFileName(file)), Markup.Escape(output.PredictedLabel), Markup.Escape(Top3(output.Score, classNames)));
        }
        console.Write(table);
    }

    // "Class 91.2 %, Class 4.0 %, Class 1.1 %": the three most probable classes.
    private static string Top3(float[] scores, IReadOnlyList<string> classNames) =>
        string.Join(", ", scores.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(3).Select(x => $"{classNames[x.i]} {x.p:P1}"));
}
