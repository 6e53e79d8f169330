using System.CommandLine;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Native;
using Microsoft.ML.Retention.RetentionMath;
using Spectre.Console;
using ViRImageClassification;

// This app trains and scores large tensors, and keeps the allocator's memory for reuse (docs/platform.md).
GlibcAllocatorTuning.Apply();

// Train (the default command) or predict, with System.CommandLine; see --help.
var data = new Option<string>("--data") { Description = "ImageNet-style folder: <label>/<image>, optionally with train/ and val/ (or test/) subfolders. Default: the embedded Fashion-MNIST subset.", DefaultValueFactory = _ => TrainSettings.DefaultData };
var arch = new Option<string>("--arch") { Description = "Model: ViR Mini (28×28 grayscale), Tiny, Small, Base or Large; or RMT Rmt-Mini (28×28 grayscale), Rmt-Tiny, Rmt-Small, Rmt-Base or Rmt-Large (224², the official models).", DefaultValueFactory = _ => nameof(ViRConfig.Mini) };
arch.Validators.Add(result =>
{
    if (result.GetValueOrDefault<string>() is { } name && !TrainSettings.ArchitectureNames.Contains(name, StringComparer.OrdinalIgnoreCase))
        result.AddError($"--arch must be one of {string.Join(", ", TrainSettings.ArchitectureNames)}, but it is '{name}'.");
});
var initialWeights = new Option<string?>("--initial-weights") { Description = "Start from this checkpoint instead of random weights: for RMT an official .pth (e.g. RMT-T's ImageNet weights) or safetensors; for ViR safetensors. A head of another class count is replaced." };
initialWeights.Validators.Add(result =>
{
    if (result.GetValueOrDefault<string?>() is { } file && !File.Exists(file))
        result.AddError($"--initial-weights must name an existing file, but '{file}' does not exist.");
});
var ema = new Option<bool>("--ema") { Description = "With --initial-weights: read a training checkpoint's model_ema weights (the official RMT-S, B and L accuracies) instead of model." };
var imageSize = new Option<int?>("--image-size") { Description = "Resolution the model runs at (images are resized). Default: the architecture's." };
var epochs = new Option<int>("--epochs") { Description = "Passes over the training images.", DefaultValueFactory = _ => 12 };
var batchSize = new Option<int>("--batch-size") { Description = "Images per training step.", DefaultValueFactory = _ => 64 };
var mode = new Option<RetentionMode>("--mode") { Description = "Retention form the saved model predicts in: Parallel, Recurrent or Chunkwise (training uses Parallel; all give the same scores).", DefaultValueFactory = _ => RetentionMode.Chunkwise };
var chunkSize = new Option<int>("--chunk-size") { Description = "Tokens per chunk in Chunkwise mode; 0 picks it from the token count.", DefaultValueFactory = _ => ChunkSizes.Auto };
var precision = new Option<ViRPrecision>("--precision") { Description = "Number format the saved model scores in: Float32 or BFloat16 (then the run also compares it with Float32).", DefaultValueFactory = _ => ViRPrecision.Float32 };
var trainingPrecision = new Option<ViRPrecision>("--training-precision") { Description = "Number format of training's forward and backward passes: Float32, or BFloat16 (mixed precision, with Float32 master weights).", DefaultValueFactory = _ => ViRPrecision.Float32 };
var device = new Option<ViRDevice>("--device") { Description = "Auto, Cpu or Cuda.", DefaultValueFactory = _ => ViRDevice.Auto };
var output = new Option<string>("--out") { Description = "Folder for model.zip and the plots.", DefaultValueFactory = _ => "vir-output" };
var stem = new Option<PatchStem?>("--stem") { Description = "How patches become tokens: Patchify or Convolutional. Default: the architecture's." };
var decaySchedule = new Option<DecaySchedule?>("--decay-schedule") { Description = "ViR: how each head's decay γ is chosen: RetNet, LogSpaced or Rmt. Default: the architecture's." };
var spatialDecay = new Option<SpatialDecayShape?>("--spatial-decay") { Description = "ViR: decay by the 2-D distance between patches, over the whole grid (Bidirectional) or the upper-left quadrant (CausalQuadrant), instead of along the raster order." };
var retentionGroupNorm = new Option<bool>("--retention-group-norm") { Description = "ViR: RetNet's GroupNorm on each head's retention output." };
var learningRate = new Option<double>("--learning-rate") { Description = "Peak AdamW learning rate.", DefaultValueFactory = _ => 1e-3 };
var augment = new Option<bool>("--augment") { Description = "Random resized crops and flips during training (pays off over many epochs, not in short runs)." };
var minCropScale = new Option<double>("--min-crop-scale") { Description = "With --augment: smallest random crop, as a fraction of the image area (1: no crop).", DefaultValueFactory = _ => 0.35 };
var maxTranslation = new Option<double>("--max-translation") { Description = "With --augment: largest random shift, as a fraction of the image side.", DefaultValueFactory = _ => 0.0 };
var randomErasing = new Option<double>("--random-erasing") { Description = "With --augment: fraction of images in which a random rectangle becomes noise.", DefaultValueFactory = _ => 0.0 };
var tune = new Option<bool>("--tune") { Description = "Hold out every tenth training image for evaluation and leave the test set untouched (to choose hyperparameters)." };
var seed = new Option<int>("--seed") { Description = "Seed for the model's initialisation, shuffling and augmentation.", DefaultValueFactory = _ => 1 };
var compare = new Option<bool>("--compare") { Description = "Also train ML.NET's LightGbm on the raw pixels and compare, in the same run." };
var maxPerClass = new Option<int?>("--max-images-per-class") { Description = "Use at most this many images per class and split (for a quick try)." };

var root = new RootCommand("Train a Vision Retention Network (ViR) or RMT image classifier with ML.NET, evaluate it, save model.zip and plot the results.")
{
    data, arch, initialWeights, ema, imageSize, stem, decaySchedule, spatialDecay, retentionGroupNorm, epochs, batchSize, learningRate, mode, chunkSize, precision, trainingPrecision, device, output, augment, minCropScale, maxTranslation, randomErasing, tune, seed, compare, maxPerClass,
};
root.SetAction(parsed =>
{
    TrainCommand.Run(new TrainSettings
    {
        Data = parsed.GetValue(data)!,
        Architecture = parsed.GetValue(arch)!,
        InitialWeights = parsed.GetValue(initialWeights),
        MovingAverage = parsed.GetValue(ema),
        ImageSize = parsed.GetValue(imageSize),
        Stem = parsed.GetValue(stem),
        DecaySchedule = parsed.GetValue(decaySchedule),
        SpatialDecay = parsed.GetValue(spatialDecay),
        RetentionGroupNorm = parsed.GetValue(retentionGroupNorm),
        LearningRate = parsed.GetValue(learningRate),
        Epochs = parsed.GetValue(epochs),
        BatchSize = parsed.GetValue(batchSize),
        Mode = parsed.GetValue(mode),
        Precision = parsed.GetValue(precision),
        TrainingPrecision = parsed.GetValue(trainingPrecision),
        ChunkSize = parsed.GetValue(chunkSize),
        Device = parsed.GetValue(device),
        Output = parsed.GetValue(output)!,
        Compare = parsed.GetValue(compare),
        Augment = parsed.GetValue(augment),
        MinCropScale = parsed.GetValue(minCropScale),
        MaxTranslation = parsed.GetValue(maxTranslation),
        RandomErasing = parsed.GetValue(randomErasing),
        Tune = parsed.GetValue(tune),
        Seed = parsed.GetValue(seed),
        MaxImagesPerClass = parsed.GetValue(maxPerClass) ?? int.MaxValue,
    }, AnsiConsole.Console);
    return 0;
});

var model = new Option<string>("--model") { Description = "The model.zip to load.", DefaultValueFactory = _ => Path.Combine("vir-output", "model.zip") };
var predictMode = new Option<RetentionMode?>("--mode") { Description = "Retention form to predict in: Parallel, Recurrent or Chunkwise. Default: as trained." };
var predictChunk = new Option<int?>("--chunk-size") { Description = "Tokens per chunk in Chunkwise mode; 0 picks it from the token count. Default: as trained." };
var images = new Argument<string[]>("images") { Description = "Image files or folders to classify.", Arity = ArgumentArity.OneOrMore };
var stream = new Option<bool>("--stream") { Description = "Classify each JPEG or PNG at its own resolution, band by band, in memory that does not grow with its height (ViR)." };
var bandTokens = new Option<int>("--band-tokens") { Description = "With --stream: the most tokens a band holds (memory follows it).", DefaultValueFactory = _ => ViRModel.DefaultBandTokens };
var predict = new Command("predict", "Classify images with a saved model.zip and print the top-3 classes.") { model, predictMode, predictChunk, stream, bandTokens, images };
predict.SetAction(parsed => parsed.GetValue(stream)
    ? PredictCommand.RunStreaming(parsed.GetValue(model)!, parsed.GetValue(images)!, parsed.GetValue(bandTokens), AnsiConsole.Console)
    : PredictCommand.Run(parsed.GetValue(model)!, parsed.GetValue(images)!, parsed.GetValue(predictMode), parsed.GetValue(predictChunk), AnsiConsole.Console));
root.Subcommands.Add(predict);

var makeOut = new Option<string>("--out") { Description = "The image to write: .jpg or .png.", DefaultValueFactory = _ => Path.Combine("vir-output", "large.jpg") };
var makeSize = new Option<int>("--size") { Description = "Pixels per side (Fashion-MNIST images of 28 pixels, the last ones cut).", DefaultValueFactory = _ => 1792 };
var makeData = new Option<string>("--data") { Description = "Where the images to tile are.", DefaultValueFactory = _ => Path.Combine(TrainSettings.DefaultData, "test") };
var makeImage = new Command("make-image", "Write a large image (JPEG or PNG) of tiled Fashion-MNIST images, to try predict --stream on.") { makeOut, makeSize, makeData };
makeImage.SetAction(parsed => MakeImageCommand.Run(parsed.GetValue(makeOut)!, parsed.GetValue(makeSize), parsed.GetValue(makeData)!, AnsiConsole.Console));
root.Subcommands.Add(makeImage);

var weights = new Option<string>("--weights") { Description = "A safetensors checkpoint from the PyTorch twin (python/vir) or an export.", Required = true };
var importOut = new Option<string>("--out") { Description = "Folder for model.zip.", DefaultValueFactory = _ => "vir-output" };
var importMode = new Option<RetentionMode>("--mode") { Description = "Retention form the saved model predicts in.", DefaultValueFactory = _ => RetentionMode.Parallel };
var import = new Command("import", "Save a safetensors checkpoint trained elsewhere (python/vir, docs/scale-out.md) as model.zip.") { weights, importOut, importMode };
import.SetAction(parsed => ImportCommand.Run(parsed.GetValue(weights)!, parsed.GetValue(importOut)!, parsed.GetValue(importMode), AnsiConsole.Console));
root.Subcommands.Add(import);

var exportModel = new Option<string>("--model") { Description = "The model.zip to export.", DefaultValueFactory = _ => Path.Combine("vir-output", "model.zip") };
var exportOut = new Option<string>("--out") { Description = "The file to write: .onnx for ONNX (ApplyOnnxModel, no libtorch), else safetensors (PyTorch, python/vir).", DefaultValueFactory = _ => Path.Combine("vir-output", "model.onnx") };
var exportMode = new Option<RetentionMode>("--mode") { Description = "ONNX only: the retention form, Parallel or Chunkwise.", DefaultValueFactory = _ => RetentionMode.Chunkwise };
var export = new Command("export", "Write a model.zip's ViR as ONNX or as safetensors.") { exportModel, exportOut, exportMode };
export.SetAction(parsed => ExportCommand.Run(parsed.GetValue(exportModel)!, parsed.GetValue(exportOut)!, parsed.GetValue(exportMode), AnsiConsole.Console));
root.Subcommands.Add(export);

return root.Parse(args).Invoke();
