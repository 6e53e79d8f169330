using Microsoft.ML.Data;
using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>
/// Trains a vision-retention image classifier: a ViR (<c>mlContext.MulticlassClassification.Trainers.ViR(...)</c>) or an
/// RMT (<c>Trainers.Rmt(...)</c>). Fitting returns a <see cref="ViRImageClassificationTransformer"/> that adds Score and
/// PredictedLabel columns.
/// </summary>
public sealed partial class ViRImageClassificationTrainer : IEstimator<ViRImageClassificationTransformer>
{
    private const int ShuffleBufferImages = 4096;

    private readonly IHost _host;
    private readonly OptionsBase _options;

    internal ViRImageClassificationTrainer(IHostEnvironment env, OptionsBase options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        _host = env.Register(nameof(ViRImageClassificationTrainer));
        CheckOptions(options);
        _options = options;
    }

    /// <summary>Trains on <paramref name="input"/> and returns the scoring transformer.</summary>
    public ViRImageClassificationTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckOptions(_options); // again: Options is mutable, and may have changed since the trainer was made
        var labelNames = LabelNames(input.Schema, _options.LabelColumnName);
        var config = ModelConfig(input.Schema, labelNames.Count);
        var images = ImageColumn.Bind(input.Schema, _options.FeatureColumnName, config);
        if (_options.ValidationSet is not null)
        {
            CheckSameClasses(labelNames, LabelNames(_options.ValidationSet.Schema, _options.LabelColumnName, nameof(Options.ValidationSet)));
            ImageColumn.Bind(_options.ValidationSet.Schema, _options.FeatureColumnName, config);
        }

        string backbone = config.Backbone;
        using var channel = _host.Start($"Training {backbone}");
        int seed = _options.Seed ?? MLNetHost.Seed(_host) ?? 1;
        var device = DeviceSelection.Resolve(_options.Device, _options.FallbackToCpu, message => channel.Warning(message));
        if (_options.ThreadCount is int threads) set_num_threads(threads);

        // Hold out a seeded, fixed subset of rows when asked for a validation fraction.
        var holdOut = new Func<long, bool>(row => _options.ValidationSet is null && _options.ValidationSetFraction > 0
            && HashToUnit(row, seed) < _options.ValidationSetFraction);
        var trainData = new ImageTrainingData(input, images, _options.LabelColumnName, labelNames.Count, row => !holdOut(row), _options.SkipBadImages, m => channel.Warning(m));
        var trainLabels = trainData.ReadLabels();
        CheckTrainingLabels(trainLabels, labelNames);

        var train = Source(trainData, trainLabels.Count, config, channel, "training");
        IBatchSource? validation = null;
        ImageTrainingData? validationData = null;
        if (_options.ValidationSet is not null || _options.ValidationSetFraction > 0)
        {
            var validationView = _options.ValidationSet ?? input;
            var validationImages = ImageColumn.Bind(validationView.Schema, _options.FeatureColumnName, config);
            validationData = new ImageTrainingData(validationView, validationImages, _options.LabelColumnName, labelNames.Count,
                _options.ValidationSet is null ? holdOut : _ => true, _options.SkipBadImages, m => channel.Warning(m));
            long validationCount = validationData.ReadLabels().Count;
            if (validationCount > 0) validation = Source(validationData, validationCount, config, channel, "validation");
            else channel.Warning("The validation data has no rows; training without validation.");
        }
        if (_options.EarlyStopping is not null && validation is null)
            throw new ArgumentException("EarlyStopping needs validation data: set ValidationSet or ValidationSetFraction.", nameof(Options.EarlyStopping));

        manual_seed(seed);
        var model = config.Build();
        if (_options.InitialWeights is { } initial)
        {
            try
            {
                bool headReplaced = model.LoadInitialWeights(initial, _options.InitialWeightsFromMovingAverage);
                channel.Info($"Starting from the weights in '{initial}'" + (headReplaced ? $", with a new head for {config.NumClasses} classes." : "."));
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        model.Module.to(device);
        channel.Info($"Training {backbone} ({config.ParameterCount:N0} parameters, " +
            $"{config.ImageHeight}×{config.ImageWidth}×{config.Channels}, {config.NumClasses} classes) on {train.Count} images, device {device.type}.");

        try
        {
            using var progress = _host.StartProgressChannel($"Training {backbone}");
            var observer = new ChannelTrainingObserver(_host, channel, progress, _options);
            var precision = ViRImageClassificationTransformer.EffectivePrecision(_options.TrainingPrecision, device, "training", m => channel.Warning(m));
            new TrainingLoop(model, TrainingSettings(seed, precision, config.Preprocessing), device, observer).Run(train, validation);
            if (trainData.SkippedRows > 0) channel.Warning($"{trainData.SkippedRows} training rows were skipped because their image could not be read.");
            if (validationData?.SkippedRows > 0) channel.Warning($"{validationData.SkippedRows} validation rows were skipped because their image could not be read.");
        }
        catch
        {
            model.Dispose();
            throw;
        }
        finally
        {
            (train as IDisposable)?.Dispose();
            (validation as IDisposable)?.Dispose();
        }

        var columns = new ViRColumns(_options.FeatureColumnName, _options.ScoreColumnName, _options.PredictedLabelColumnName, _options.EmbeddingColumnName);
        return new ViRImageClassificationTransformer(_host, model, labelNames, columns, _options.PredictionForm, _options.PredictionPrecision, _options.BatchSize);
    }

    /// <summary>The schema after the transformer: the input plus Score, PredictedLabel and the optional embedding.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (!inputSchema.TryFindColumn(_options.LabelColumnName, out var label))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), _options.LabelColumnName, $"Label column '{_options.LabelColumnName}' was not found in the input.");
        if (!label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), label.ItemType,
                $"Label column '{_options.LabelColumnName}' must be a key (use MapValueToKey), but its type is {label.ItemType}.");
        if (!inputSchema.TryFindColumn(_options.FeatureColumnName, out var features))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), _options.FeatureColumnName, $"Image column '{_options.FeatureColumnName}' was not found in the input.");
        bool isImage = features.ItemType is ImageDataViewType
            || (features.Kind != SchemaShape.Column.VectorKind.Scalar && features.ItemType == NumberDataViewType.Byte)
            || (features.Kind == SchemaShape.Column.VectorKind.Vector && features.ItemType == NumberDataViewType.Single)
            || (features.Kind == SchemaShape.Column.VectorKind.Scalar && features.ItemType is TextDataViewType);
        if (!isImage)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), features.ItemType,
                $"Column '{_options.FeatureColumnName}' must hold images (LoadImages, LoadRawImageBytes, a known-size float vector, or image file paths), but its type is {features.Kind} {features.ItemType}.");

        var outputs = inputSchema.ToDictionary(c => c.Name);
        var (score, predicted) = ScoreColumnAnnotations.Shapes(_options.ScoreColumnName, _options.PredictedLabelColumnName, label);
        outputs[score.Name] = score;
        outputs[predicted.Name] = predicted;
        if (_options.EmbeddingColumnName is { } embedding)
            outputs[embedding] = ScoreColumnAnnotations.EmbeddingShape(embedding);
        return new SchemaShape(outputs.Values);
    }

    private IBatchSource Source(ImageTrainingData data, long rows, IVisionBackboneConfig config, IChannel channel, string role)
    {
        long[] imageShape = { config.Channels, config.ImageHeight, config.ImageWidth };
        long bytes = rows * imageShape.Aggregate(1L, (a, b) => a * b) * sizeof(float);
        if (bytes <= _options.InMemoryBudgetBytes)
        {
            channel.Info($"Decoding {rows} {role} images into memory ({bytes / (1 << 20)} MiB).");
            return data.LoadIntoMemory(rows, imageShape);
        }
        channel.Info($"Streaming {rows} {role} images each epoch: {bytes / (1 << 20)} MiB exceeds InMemoryBudgetBytes ({_options.InMemoryBudgetBytes / (1 << 20)} MiB).");
        return new StreamingImageSet(data, rows, ShuffleBufferImages);
    }

    /// <summary>The options' architecture with the class count of the label and the channel count of a pixel-vector input.</summary>
    private IVisionBackboneConfig ModelConfig(DataViewSchema schema, int classCount)
    {
        var architecture = _options.Backbone!;
        int channels = architecture.Channels;
        if (schema.GetColumnOrNull(_options.FeatureColumnName)?.Type is VectorDataViewType { Dimensions.Length: 3 } v && v.ItemType == NumberDataViewType.Single)
        {
            long[] shape = v.Dimensions.Select(d => (long)d).ToArray();
            if (shape[0] != channels && ImageColumn.LooksInterleaved(shape))
                throw ImageColumn.InterleavedPixels(_options.FeatureColumnName, shape, channels: null);
            channels = (int)shape[0];
        }
        var config = architecture.With(classCount, channels);
        config.Validate();
        return config;
    }

    private TrainingSettings TrainingSettings(int seed, ViRPrecision precision, ImagePreprocessing preprocessing)
    {
        var o = _options;
        var augmentation = o.Augment
            ? new ImageAugmentation(o.MinCropScale, o.MaxTranslation, o.HorizontalFlip, o.RandomErasing, preprocessing.Range, seed)
            : null;
        return new(o.MaxEpoch, o.BatchSize, o.LearningRate, o.WeightDecay, o.WarmupEpochs, o.LabelSmoothing, o.GradientClipNorm,
            o.TrainingForm, precision, seed, augmentation, o.EarlyStopping);
    }

    /// <summary>The label's class names, from its key values; throws unless it is a key column of two or more classes.</summary>
    internal static IReadOnlyList<string> LabelNames(DataViewSchema schema, string labelColumn, string? where = null)
    {
        string source = where is null ? "the input" : $"the {where}";
        var column = schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(labelColumn), labelColumn,
                $"Label column '{labelColumn}' was not found in {source}; the columns are: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.");
        if (column.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException(nameof(labelColumn), column.Type,
                $"Label column '{labelColumn}' must be a key type (use MapValueToKey), but its type is {column.Type}.");
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(labelColumn), key.Count,
                $"Label column '{labelColumn}' must have from 2 to {int.MaxValue:N0} classes, but its key type has {key.Count:N0}.");
        int count = (int)key.Count;
        var names = Enumerable.Range(1, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        // Key values of any item type become text names (numbers print invariantly).
        if (column.HasKeyValues() && column.Annotations.Schema["KeyValues"].Type is VectorDataViewType { ItemType: var itemType })
        {
            var read = typeof(ViRImageClassificationTrainer).GetMethod(nameof(KeyValueNames), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .MakeGenericMethod(itemType.RawType);
            var values = (string[])read.Invoke(null, new object[] { column })!;
            for (int i = 0; i < Math.Min(count, values.Length); i++) names[i] = values[i];
        }
        return names;
    }

    private static string[] KeyValueNames<T>(DataViewSchema.Column column)
    {
        var values = default(VBuffer<T>);
        column.GetKeyValues(ref values);
        return values.DenseValues().Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToArray();
    }

    private void CheckSameClasses(IReadOnlyList<string> training, IReadOnlyList<string> validation)
    {
        if (training.SequenceEqual(validation)) return;
        static string List(IReadOnlyList<string> names) => string.Join(", ", names.Take(12).Select(n => $"'{n}'")) + (names.Count > 12 ? ", ..." : "");
        throw new ArgumentOutOfRangeException(nameof(Options.ValidationSet), validation.Count,
            $"The ValidationSet's label column '{_options.LabelColumnName}' must have the training data's classes in the same key order, " +
            $"but the training data has {training.Count} ({List(training)}) and the ValidationSet has {validation.Count} ({List(validation)}). " +
            "Fit one MapValueToKey on the training data and apply it to both.");
    }

    private void CheckTrainingLabels(List<int> labels, IReadOnlyList<string> names)
    {
        if (labels.Count == 0)
            throw new InvalidOperationException($"The training data is empty: expected at least 2 rows with labels in column '{_options.LabelColumnName}', but found 0" +
                (_options.ValidationSetFraction > 0 ? $" after holding out ValidationSetFraction = {_options.ValidationSetFraction}." : "."));
        var present = labels.Distinct().ToArray();
        if (present.Length < 2)
            throw new InvalidOperationException($"Only one class is present in column '{_options.LabelColumnName}': every one of the {labels.Count} training rows is '{names[present[0]]}'. " +
                "Classification needs at least 2 classes.");
    }

    private static void CheckOptions(OptionsBase o)
    {
        static void Require(bool ok, string name, string expected, object? actual)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, actual, $"{name} must be {expected}, but it is {actual ?? "null"}.");
        }
        foreach (var (name, value) in new[] { (nameof(o.LabelColumnName), o.LabelColumnName), (nameof(o.FeatureColumnName), o.FeatureColumnName),
                     (nameof(o.ScoreColumnName), o.ScoreColumnName), (nameof(o.PredictedLabelColumnName), o.PredictedLabelColumnName) })
            Require(!string.IsNullOrWhiteSpace(value), name, "a column name", value);
        Require(o.MaxEpoch >= 1, nameof(o.MaxEpoch), "at least 1", o.MaxEpoch);
        Require(o.BatchSize >= 1 && o.BatchSize <= ViRLimits.MaxBatchSize, nameof(o.BatchSize), $"from 1 to {ViRLimits.MaxBatchSize} (ViRLimits.MaxBatchSize)", o.BatchSize);
        // Far below where libtorch's float32 AdamW step would overflow with a native error.
        Require(o.LearningRate is > 0 and <= 1e30, nameof(o.LearningRate), "a positive number no larger than 1e30", o.LearningRate);
        Require(o.WeightDecay >= 0, nameof(o.WeightDecay), "0 or more", o.WeightDecay);
        Require(o.WarmupEpochs >= 0, nameof(o.WarmupEpochs), "0 or more", o.WarmupEpochs);
        Require(o.LabelSmoothing is >= 0 and < 1, nameof(o.LabelSmoothing), "in [0, 1)", o.LabelSmoothing);
        Require(o.GradientClipNorm >= 0, nameof(o.GradientClipNorm), "0 (off) or more", o.GradientClipNorm);
        Require(o.MinCropScale is > 0 and <= 1, nameof(o.MinCropScale), "in (0, 1]", o.MinCropScale);
        Require(o.MaxTranslation is >= 0 and < 0.5, nameof(o.MaxTranslation), "in [0, 0.5)", o.MaxTranslation);
        Require(o.RandomErasing is >= 0 and <= 1, nameof(o.RandomErasing), "in [0, 1]", o.RandomErasing);
        Require(o.Backbone is not null, nameof(Options.Architecture),
            o is RmtOptions ? "an RmtConfig (a preset such as RmtConfig.Tiny)" : "a ViRConfig (a preset such as ViRConfig.Tiny)", null);
        Require(o.TrainingForm.Mode is RetentionMode.Parallel or RetentionMode.Chunkwise, nameof(Options.TrainingRetention), "Parallel or Chunkwise", o.TrainingForm);
        Require(Enum.IsDefined(o.PredictionPrecision), nameof(o.PredictionPrecision), "Float32 or BFloat16", o.PredictionPrecision);
        Require(Enum.IsDefined(o.TrainingPrecision), nameof(o.TrainingPrecision), "Float32 or BFloat16", o.TrainingPrecision);
        Require(o.InitialWeights is null || File.Exists(o.InitialWeights), nameof(o.InitialWeights), "null or an existing checkpoint file", o.InitialWeights);
        Require(o.ValidationSetFraction is >= 0 and < 1, nameof(o.ValidationSetFraction), "in [0, 1)", o.ValidationSetFraction);
        Require(o.InMemoryBudgetBytes >= 0, nameof(o.InMemoryBudgetBytes), "0 or more", o.InMemoryBudgetBytes);
        Require(o.ThreadCount is null || (o.ThreadCount >= 1 && o.ThreadCount <= ViRLimits.MaxThreadCount), nameof(o.ThreadCount),
            $"null or from 1 to {ViRLimits.MaxThreadCount} (ViRLimits.MaxThreadCount)", o.ThreadCount);
        var outputs = new[] { (nameof(o.ScoreColumnName), o.ScoreColumnName), (nameof(o.PredictedLabelColumnName), o.PredictedLabelColumnName),
            (nameof(o.EmbeddingColumnName), o.EmbeddingColumnName) }.Where(c => c.Item2 is not null).ToArray();
        foreach (var group in outputs.GroupBy(c => c.Item2).Where(g => g.Count() > 1))
            Require(false, group.Last().Item1, $"a column name of its own, not also {group.First().Item1}'s", group.Key);
        Require(Enum.IsDefined(o.Device), nameof(o.Device), "Auto, Cpu or Cuda", o.Device);
        if (o.EarlyStopping is { } e)
        {
            Require(e.Patience >= 1, "EarlyStopping.Patience", "at least 1", e.Patience);
            Require(e.MinDelta >= 0, "EarlyStopping.MinDelta", "0 or more", e.MinDelta);
        }
    }

    // A fixed pseudo-random number in [0, 1) per (row, seed): the same rows are held out on every pass.
    private static double HashToUnit(long row, int seed)
    {
        ulong x = (ulong)row * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)seed * 0xBF58476D1CE4E5B9UL;
        x ^= x >> 31; x *= 0x94D049BB133111EBUL; x ^= x >> 29;
        return (x >> 11) * (1.0 / (1UL << 53));
    }
}
