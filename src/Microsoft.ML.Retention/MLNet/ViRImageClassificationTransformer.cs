using Microsoft.ML.Data;
using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Native;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>Column names a trained ViR reads and writes.</summary>
internal sealed record ViRColumns(string Features, string Score, string PredictedLabel, string? Embedding);

/// <summary>
/// A trained ViR image classifier. It adds Score (class probabilities), PredictedLabel (a key with
/// the label names) and, if asked for, the [class] embedding. <see cref="ITransformer.Transform"/>
/// scores in batches; a PredictionEngine scores single rows. Choose the retention form with
/// <see cref="WithRetentionMode"/> (every form gives the same scores for the same pixels) and the number format with
/// <see cref="WithPrecision"/>.
/// </summary>
public sealed partial class ViRImageClassificationTransformer : ITransformer, IDisposable
{
    private readonly IHost _host;
    private readonly SharedModel _shared;
    private int _disposed;

    internal ViRImageClassificationTransformer(IHostEnvironment env, IVisionBackbone model, IReadOnlyList<string> labelNames, ViRColumns columns,
        RetentionSettings retention, ViRPrecision precision, int batchSize)
        : this(env, new SharedModel(model, model.Module.parameters().First().device), labelNames, columns, retention, precision, batchSize)
    {
    }

    private ViRImageClassificationTransformer(IHostEnvironment env, SharedModel shared, IReadOnlyList<string> labelNames, ViRColumns columns,
        RetentionSettings retention, ViRPrecision precision, int batchSize)
    {
        _host = env.Register(nameof(ViRImageClassificationTransformer));
        _shared = shared;
        LabelNames = labelNames;
        Columns = columns;
        Retention = retention;
        RequestedPrecision = precision;
        Precision = shared.EffectivePrecision(precision, _host);
        BatchSize = batchSize;
        shared.Model.Module.eval();
    }

    /// <summary>How retention is computed when scoring.</summary>
    public RetentionSettings Retention { get; }

    /// <summary>
    /// The number format scoring runs in here: <see cref="RequestedPrecision"/>, or Float32 where the device has no
    /// native bfloat16 (or it is turned off, docs/platform.md).
    /// </summary>
    public ViRPrecision Precision { get; }

    /// <summary>
    /// The number format asked for (<c>Options.PredictionPrecision</c> or <see cref="WithPrecision"/>). model.zip keeps
    /// this one, so a model saved where bfloat16 falls back to Float32 scores in bfloat16 on a machine that has it.
    /// </summary>
    public ViRPrecision RequestedPrecision { get; }

    /// <summary>Images per forward pass in <see cref="Transform"/>.</summary>
    public int BatchSize { get; }

    /// <summary>The device the weights live on.</summary>
    public Device Device => _shared.Device;

    /// <summary>The backbone's shape: a <see cref="ViRConfig"/> or an <see cref="RmtConfig"/>.</summary>
    public IVisionBackboneConfig Architecture => _shared.Model.Architecture;

    /// <summary>The shape of a ViR. For another backbone it throws <see cref="InvalidOperationException"/>: read <see cref="Architecture"/>.</summary>
    public ViRConfig Config => Architecture as ViRConfig ?? throw new InvalidOperationException(
        $"This model is an {Architecture.Backbone}, not a ViR: its shape is Architecture, an {Architecture.GetType().Name}.");

    /// <summary>The class names, in key order (key value = index + 1).</summary>
    public IReadOnlyList<string> LabelNames { get; }

    internal ViRColumns Columns { get; }

    /// <summary>True once the weights were freed (every holder let go); tests read it.</summary>
    internal bool WeightsFreed => _shared.IsFreed;

    /// <summary>The weights, shared with <see cref="WithRetentionMode"/> copies; use only while this transformer is alive.</summary>
    internal IVisionBackbone Model => _shared.Model;

    /// <summary>
    /// A transformer that shares these weights and predicts with retention in <paramref name="mode"/> (chunk size:
    /// <paramref name="chunkSize"/>, or this transformer's). Dispose it when done; the weights live until every
    /// transformer sharing them is disposed. On an image column of file paths, a ViR's recurrent form streams each file
    /// band by band at its own size (as <see cref="PredictStreaming(string, int, IProgress{double}?, CancellationToken)"/>);
    /// the other forms read the file whole and resize it to the model's resolution.
    /// </summary>
    public ViRImageClassificationTransformer WithRetentionMode(RetentionMode mode, int? chunkSize = null)
    {
        ThrowIfDisposed();
        var retention = new RetentionSettings(mode, chunkSize ?? Retention.ChunkSize);
        if (!_shared.TryAddOwner()) throw DisposedError();
        return new ViRImageClassificationTransformer(_host, _shared, LabelNames, Columns, retention, RequestedPrecision, BatchSize);
    }

    /// <summary>
    /// A transformer that shares these weights and scores in <paramref name="precision"/>. In bfloat16 it keeps a
    /// bfloat16 copy of the weights beside the float32 ones (which saving writes), made once and shared by every copy.
    /// Dispose it when done.
    /// </summary>
    public ViRImageClassificationTransformer WithPrecision(ViRPrecision precision)
    {
        ThrowIfDisposed();
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision, $"precision must be Float32 or BFloat16, but it is {precision}.");
        if (!_shared.TryAddOwner()) throw DisposedError();
        return new ViRImageClassificationTransformer(_host, _shared, LabelNames, Columns, Retention, precision, BatchSize);
    }

    /// <summary>
    /// <paramref name="requested"/>, or Float32 where <paramref name="device"/> has no native bfloat16; then
    /// <paramref name="warn"/> is told why. The caller decides how often to warn (once per model, once per Fit).
    /// </summary>
    internal static ViRPrecision EffectivePrecision(ViRPrecision requested, Device device, string use, Action<string> warn)
    {
        if (requested != ViRPrecision.BFloat16 || BFloat16Support.On(device)) return requested;
        warn(BFloat16Support.Disabled
            ? $"BFloat16 {use} was asked for, but bfloat16 is turned off (AppContext switch {BFloat16Support.Switch} or " +
              $"{BFloat16Support.EnvironmentVariable}=1); {use} in Float32 instead."
            : $"BFloat16 {use} was asked for, but this device has no native bfloat16 (AVX512-BF16 or AMX on x86, " +
              $"bf16 on Arm); {use} in Float32 instead, which is faster there.");
        return ViRPrecision.Float32;
    }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumn.Bind(inputSchema, Columns.Features, Architecture);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumns(OutputColumns(inputSchema));
        return builder.ToSchema();
    }

    /// <summary>
    /// Writes the weights, the config and the class names as safetensors with timm's tensor names
    /// (<see cref="ViRCheckpoint"/>), for PyTorch: the <c>python/vir</c> twin loads them with identical logits.
    /// </summary>
    public void SaveWeights(string path)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        Model.SaveWeights(path, LabelNames);
    }

    /// <summary>
    /// Writes the model as ONNX, for ML.NET's <c>ApplyOnnxModel</c> and ONNX Runtime without libtorch
    /// (<see cref="Onnx.ViROnnxExport"/>): by default input <c>pixels</c>, <c>height</c> and <c>width</c>, one image at any
    /// size preprocessed in the graph as this transformer does (<see cref="Onnx.OnnxImageInput"/>); output
    /// <c>probabilities</c> [batch, classes]; the class names and the preprocessing in the metadata. Recurrent retention
    /// is not exported; Parallel and Chunkwise give its scores. An RMT has one form (<see cref="Onnx.RmtOnnxExport"/>):
    /// <paramref name="mode"/> and <paramref name="chunkSize"/> don't apply to it.
    /// </summary>
    /// <param name="path">The .onnx file to write.</param>
    /// <param name="mode">Parallel or Chunkwise.</param>
    /// <param name="chunkSize">Tokens per chunk in Chunkwise form; <see cref="ChunkSizes.Auto"/> picks it from the token count.</param>
    /// <param name="imageSize">The resolution the exported model takes, or null for the model's.</param>
    /// <param name="includeEmbedding">Adds an <c>embedding</c> output [batch, dim].</param>
    /// <param name="opset">The ONNX opset, 17 (18 for pixels input) to 21.</param>
    /// <param name="input">One image's pixels, preprocessed in the graph, or a preprocessed batch.</param>
    public void ExportToOnnx(string path, RetentionMode mode = Onnx.ViROnnxExport.DefaultMode, int chunkSize = ChunkSizes.Auto, int? imageSize = null,
        bool includeEmbedding = false, int opset = Onnx.ViROnnxExport.DefaultOpset, Onnx.OnnxImageInput input = Onnx.ViROnnxExport.DefaultInput)
    {
        ThrowIfDisposed();
        var retention = new RetentionSettings(mode, chunkSize);
        using var use = _shared.Use() ?? throw DisposedError();
        if (Model is RmtModel rmt) Onnx.RmtOnnxExport.Export(rmt, path, LabelNames, imageSize, includeEmbedding, opset, input);
        else Onnx.ViROnnxExport.Export((ViRModel)Model, path, LabelNames, retention, imageSize, includeEmbedding, opset, input);
    }

    /// <summary>
    /// Classifies one image file at its own resolution, however large, in memory that does not grow with its height: the
    /// file is decoded row by row (JPEG or PNG, not interlaced) and a band of at most <paramref name="bandTokens"/> tokens
    /// passes through every block before the next is read, each block carrying its retention state
    /// (chunkwise inside a band, with this transformer's chunk size). The scores are the chunkwise form's over the whole
    /// image at that resolution. There is no resize: train the model at the scale (pixels per object) the images have.
    /// Rows and columns past the last multiple of the patch size are left out. ViR only.
    /// </summary>
    /// <param name="path">The image file.</param>
    /// <param name="bandTokens">The most tokens a band holds; the memory follows it, not the image's size.</param>
    /// <param name="progress">Told the fraction of the image done after each band.</param>
    /// <param name="cancellation">Checked before each band.</param>
    /// <exception cref="InvalidDataException">The file can't be decoded row by row, or is truncated (the message names the file and the row).</exception>
    public ViRStreamingPrediction PredictStreaming(string path, int bandTokens = ViRModel.DefaultBandTokens, IProgress<double>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.OpenRead(path);
        return PredictStreaming(stream, path, bandTokens, progress, cancellation);
    }

    /// <inheritdoc cref="PredictStreaming(string, int, IProgress{double}?, CancellationToken)"/>
    /// <param name="stream">The encoded image, read once from its current position.</param>
    /// <param name="name">What errors call the image.</param>
    /// <param name="bandTokens">The most tokens a band holds; the memory follows it, not the image's size.</param>
    /// <param name="progress">Told the fraction of the image done after each band.</param>
    /// <param name="cancellation">Checked before each band.</param>
    public ViRStreamingPrediction PredictStreaming(Stream stream, string name = "the image", int bandTokens = ViRModel.DefaultBandTokens, IProgress<double>? progress = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (bandTokens < 1) throw new ArgumentOutOfRangeException(nameof(bandTokens), bandTokens, $"bandTokens must be at least 1, but it is {bandTokens}.");
        var (scored, height, width) = ScoreStreaming(stream, name, bandTokens, progress, cancellation, withEmbedding: true);
        return new ViRStreamingPrediction(LabelNames[(int)scored.PredictedKeys[0] - 1], scored.Probabilities, scored.Embeddings!, height, width);
    }

    /// <summary>
    /// True when <paramref name="images"/> is a column of file paths that this transformer streams: the recurrent form of a
    /// ViR with the 1-D decay. The other forms, an RMT and a ViR with a 2-D decay read each file whole and resize it to the model's resolution.
    /// </summary>
    internal bool StreamsFiles(ImageColumn images) =>
        images.Kind == ImageColumnKind.Path && Retention.Mode == RetentionMode.Recurrent && Architecture is ViRConfig { SpatialDecay: null };

    /// <summary>A file of an image column scored band by band (<see cref="StreamsFiles"/>); <c>mlContext.CancelExecution()</c> stops it between bands.</summary>
    internal ScoredBatch ScoreFile(Stream stream, string file) =>
        ScoreStreaming(stream, file, ViRModel.DefaultBandTokens, new BandCheck(_host), default, Columns.Embedding is not null).Scored;

    private sealed class BandCheck(IHost host) : IProgress<double>
    {
        public void Report(double value) => host.CheckAlive();
    }

    /// <summary>One encoded image scored band by band at its own resolution (see <see cref="PredictStreaming(string, int, IProgress{double}?, CancellationToken)"/>).</summary>
    internal (ScoredBatch Scored, long Height, long Width) ScoreStreaming(Stream stream, string name, int bandTokens, IProgress<double>? progress,
        CancellationToken cancellation, bool withEmbedding)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        var model = _shared.For(Precision).Module as ViRModel
            ?? throw new NotSupportedException($"Streaming needs a causal model with its [class] token last, a ViR; this one is an {Architecture.Backbone}.");
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        using var source = new StreamingImageSource(stream, name, Architecture, model.Config.PatchSize, bandTokens);
        var type = model.parameters().First().dtype;
        var embedding = model.EmbedStreaming((first, count, column, columns) => source.Window(first, count, column, columns).to(Device).to(type), 1, source.Height, source.Width, type, Device,
            bandTokens, Retention.ChunkSize, progress is null ? null : progress.Report, cancellation);
        return (Scored(embedding, model.Classify(embedding), withEmbedding), source.Height, source.Width);
    }

    /// <summary>A transformer around weights from elsewhere (a safetensors checkpoint); it owns <paramref name="model"/>.</summary>
    internal static ViRImageClassificationTransformer FromModel(IHostEnvironment env, IVisionBackbone model, IReadOnlyList<string> labelNames,
        string featureColumnName, RetentionSettings retention) =>
        new(env, model, labelNames, new ViRColumns(featureColumnName, "Score", "PredictedLabel", null), retention, ViRPrecision.Float32,
            new ViRImageClassificationTrainer.Options().BatchSize);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ThrowIfDisposed();
        return new ScoredImageDataView(this, input);
    }

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var hold = _shared.NewHold() ?? throw DisposedError();
        return new ImageRowMapper(this, inputSchema, hold);
    }

    /// <summary>
    /// Releases this transformer's hold on the weights. They are freed once every transformer sharing them (see
    /// <see cref="WithRetentionMode"/>) is disposed, every row mapper made from them (each PredictionEngine has one)
    /// is garbage, and no prediction is running. Until then this transformer and its engines keep working, so a
    /// PredictionEngine that owns the model (ML.NET's default) can be disposed while other engines still serve.
    /// Calling it again does nothing.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _shared.ReleaseOwner();
    }

    // Use is refused only once the weights are gone: disposing one holder does not stop the others.
    private void ThrowIfDisposed()
    {
        if (_shared.IsFreed) throw DisposedError();
    }

    private static ObjectDisposedException DisposedError() =>
        new(nameof(ViRImageClassificationTransformer),
            "This ViR model's weights were freed: the model and every copy of it were disposed, and every PredictionEngine made " +
            "from it was disposed or collected. Keep the model (or one engine) alive for as long as the app predicts with it.");

    /// <summary>Score, PredictedLabel and the optional embedding, in that order.</summary>
    internal IEnumerable<DataViewSchema.DetachedColumn> OutputColumns(DataViewSchema inputSchema)
    {
        yield return new DataViewSchema.DetachedColumn(Columns.Score, new VectorDataViewType(NumberDataViewType.Single, LabelNames.Count),
            ScoreColumnAnnotations.ForScore(LabelNames, inputSchema));
        yield return new DataViewSchema.DetachedColumn(Columns.PredictedLabel, new KeyDataViewType(typeof(uint), LabelNames.Count),
            ScoreColumnAnnotations.ForPredictedLabel(LabelNames));
        if (Columns.Embedding is { } embedding)
            yield return new DataViewSchema.DetachedColumn(embedding, new VectorDataViewType(NumberDataViewType.Single, Architecture.EmbeddingDim));
    }

    /// <summary>Scores images [C, H, W] in one forward pass, without gradients.</summary>
    internal ScoredBatch Score(IReadOnlyList<Tensor> images)
    {
        using var scope = NewDisposeScope();
        return Score(stack(images));
    }

    /// <summary>
    /// Scores a batch [B, C, H, W] at the model's resolution in one forward pass, in inference mode: no autograd
    /// bookkeeping at all (ViR-Mini at batch 1 runs 1.14× as fast as under no_grad, docs/benchmarks.md).
    /// </summary>
    internal ScoredBatch Score(Tensor images)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        var model = _shared.For(Precision); // before inference mode: a bfloat16 copy made here must hold ordinary tensors
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var batch = images.to(Device).to(model.Module.parameters().First().dtype);
        var embedding = model.Embed(batch, Retention);
        return Scored(embedding, model.Classify(embedding), Columns.Embedding is not null);
    }

    private ScoredBatch Scored(Tensor embedding, Tensor logits, bool withEmbedding)
    {
        var probabilities = nn.functional.softmax(logits.to(float32), 1).cpu();
        var predicted = probabilities.argmax(1).to(int32).add_(1); // keys are 1-based
        return new ScoredBatch((int)logits.shape[0], LabelNames.Count, probabilities.data<float>().ToArray(),
            predicted.data<int>().ToArray().Select(k => (uint)k).ToArray(),
            withEmbedding ? embedding.to(float32).cpu().data<float>().ToArray() : null);
    }

    /// <summary>
    /// Weights shared by transformers that differ only in retention mode. Each transformer is an owner; each
    /// prediction holds a use. The weights are freed when the last owner lets go and no use is running, so a
    /// prediction never reads freed memory, and one that starts after that gets no use.
    /// </summary>
    private sealed class SharedModel
    {
        private readonly object _gate = new();
        private int _owners = 1;
        private int _uses;

        public SharedModel(IVisionBackbone model, Device device)
        {
            Model = model;
            Device = device;
            // Engines' holds are released by the garbage collector: tell it what the weights weigh.
            _bytes = Math.Max(1, model.Architecture.ParameterCount * sizeof(float));
            GC.AddMemoryPressure(_bytes);
        }

        private readonly long _bytes;

        private IVisionBackbone? _bfloat16;
        private int _fallbackWarned;

        public IVisionBackbone Model { get; }

        public Device Device { get; }

        /// <summary>The precision scoring runs in; a fallback to Float32 is logged once per model, whatever the copies.</summary>
        public ViRPrecision EffectivePrecision(ViRPrecision requested, IHost host) =>
            ViRImageClassificationTransformer.EffectivePrecision(requested, Device, "scoring", message =>
            {
                if (Interlocked.Exchange(ref _fallbackWarned, 1) != 0) return;
                using var channel = host.Start(nameof(ViRPrecision));
                channel.Warning(message);
            });

        /// <summary>The weights in <paramref name="precision"/>: the model, or its bfloat16 copy, made on first use.</summary>
        public IVisionBackbone For(ViRPrecision precision)
        {
            if (precision == ViRPrecision.Float32) return Model;
            lock (_gate)
            {
                _bfloat16 ??= Model.BFloat16Copy();
                return _bfloat16;
            }
        }

        /// <summary>No holder is left: the weights are freed, or will be when the running predictions end.</summary>
        public bool IsFreed
        {
            get { lock (_gate) return _owners == 0; }
        }

        /// <summary>
        /// A hold on the weights for a row mapper (a PredictionEngine's), released when the mapper becomes garbage:
        /// ML.NET never disposes an engine's mapper, and an engine that owns the model disposes the model, not its hold.
        /// </summary>
        public object? NewHold() => TryAddOwner() ? new Hold(this) : null;

        public bool TryAddOwner()
        {
            lock (_gate)
            {
                if (_owners == 0) return false;
                _owners++;
                return true;
            }
        }

        public void ReleaseOwner()
        {
            lock (_gate)
            {
                if (--_owners > 0 || _uses > 0) return;
            }
            Free();
        }

        /// <summary>A use of the weights until disposed, or null when they are gone.</summary>
        public IDisposable? Use()
        {
            lock (_gate)
            {
                if (_owners == 0) return null;
                _uses++;
            }
            return new Lease(this);
        }

        private void EndUse()
        {
            lock (_gate)
            {
                if (--_uses > 0 || _owners > 0) return;
            }
            Free();
        }

        private void Free()
        {
            Model.Dispose();
            _bfloat16?.Dispose();
            GC.RemoveMemoryPressure(_bytes);
        }

        private sealed class Hold(SharedModel shared)
        {
            ~Hold() => shared.ReleaseOwner();
        }

        private sealed class Lease(SharedModel shared) : IDisposable
        {
            private int _ended;

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _ended, 1) == 0) shared.EndUse();
            }
        }
    }
}

/// <summary>The outputs of one scored batch, on the CPU.</summary>
internal sealed record ScoredBatch(int Count, int Classes, float[] Probabilities, uint[] PredictedKeys, float[]? Embeddings)
{
    /// <summary>Getters for the output columns of the row that <paramref name="current"/> names, in <see cref="ViRImageClassificationTransformer.OutputColumns"/> order.</summary>
    public static Delegate[] Getters(Func<(ScoredBatch Batch, int Index)> current, int embeddingDim) => new Delegate[]
    {
        (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            var (batch, i) = current();
            var editor = VBufferEditor.Create(ref value, batch.Classes);
            batch.Probabilities.AsSpan(i * batch.Classes, batch.Classes).CopyTo(editor.Values);
            value = editor.Commit();
        }),
        (ValueGetter<uint>)((ref uint value) =>
        {
            var (batch, i) = current();
            value = batch.PredictedKeys[i];
        }),
        (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            var (batch, i) = current();
            var editor = VBufferEditor.Create(ref value, embeddingDim);
            batch.Embeddings.AsSpan(i * embeddingDim, embeddingDim).CopyTo(editor.Values);
            value = editor.Commit();
        }),
    };
}
