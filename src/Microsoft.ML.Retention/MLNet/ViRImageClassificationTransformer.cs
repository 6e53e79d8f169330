using Microsoft.ML.Data;
using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>Column names a trained ViR reads and writes.</summary>
internal sealed record ViRColumns(string Features, string Score, string PredictedLabel, string? Embedding);

/// <summary>
/// A trained ViR image classifier. It adds Score (class probabilities), PredictedLabel (a key with
/// the label names) and, if asked for, the [class] embedding. <see cref="ITransformer.Transform"/>
/// scores in batches; a PredictionEngine scores single rows. Choose the retention form with
/// <see cref="WithRetentionMode"/>: every form gives the same scores.
/// </summary>
public sealed partial class ViRImageClassificationTransformer : ITransformer, IDisposable
{
    private readonly IHost _host;
    private readonly SharedModel _shared;
    private int _disposed;

    internal ViRImageClassificationTransformer(IHostEnvironment env, ViRModel model, IReadOnlyList<string> labelNames, ViRColumns columns,
        RetentionSettings retention, int batchSize)
        : this(env, new SharedModel(model, model.parameters().First().device), labelNames, columns, retention, batchSize)
    {
    }

    private ViRImageClassificationTransformer(IHostEnvironment env, SharedModel shared, IReadOnlyList<string> labelNames, ViRColumns columns,
        RetentionSettings retention, int batchSize)
    {
        _host = env.Register(nameof(ViRImageClassificationTransformer));
        _shared = shared;
        LabelNames = labelNames;
        Columns = columns;
        Retention = retention;
        BatchSize = batchSize;
        shared.Model.eval();
    }

    /// <summary>How retention is computed when scoring.</summary>
    public RetentionSettings Retention { get; }

    /// <summary>Images per forward pass in <see cref="Transform"/>.</summary>
    public int BatchSize { get; }

    /// <summary>The device the weights live on.</summary>
    public Device Device => _shared.Device;

    /// <summary>The model's shape.</summary>
    public ViRConfig Config => _shared.Model.Config;

    /// <summary>The class names, in key order (key value = index + 1).</summary>
    public IReadOnlyList<string> LabelNames { get; }

    internal ViRColumns Columns { get; }

    /// <summary>The weights, shared with <see cref="WithRetentionMode"/> copies; use only while this transformer is alive.</summary>
    internal ViRModel Model => _shared.Model;

    /// <summary>
    /// A transformer that shares these weights and predicts with retention in <paramref name="mode"/> (chunk size:
    /// <paramref name="chunkSize"/>, or this transformer's). Dispose it when done; the weights live until every
    /// transformer sharing them is disposed.
    /// </summary>
    public ViRImageClassificationTransformer WithRetentionMode(RetentionMode mode, int? chunkSize = null)
    {
        ThrowIfDisposed();
        var retention = new RetentionSettings(mode, chunkSize ?? Retention.ChunkSize);
        if (!_shared.TryAddOwner()) throw DisposedError();
        return new ViRImageClassificationTransformer(_host, _shared, LabelNames, Columns, retention, BatchSize);
    }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumn.Bind(inputSchema, Columns.Features, Config);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumns(OutputColumns(inputSchema));
        return builder.ToSchema();
    }

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
        ThrowIfDisposed();
        return new ImageRowMapper(this, inputSchema);
    }

    /// <summary>
    /// Releases this transformer's hold on the weights; they are freed once every transformer sharing them
    /// (see <see cref="WithRetentionMode"/>) is disposed and no prediction is running. Calling it again does nothing.
    /// A PredictionEngine created with ML.NET's default options calls it when the engine is disposed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _shared.ReleaseOwner();
    }

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw DisposedError();
    }

    private static ObjectDisposedException DisposedError() =>
        new(nameof(ViRImageClassificationTransformer),
            "This ViR transformer was disposed and can no longer predict. A PredictionEngine created with ML.NET's default options " +
            "disposes its model when the engine is disposed. To use one model from several engines (one per thread or request), " +
            "create them with new PredictionEngineOptions { OwnsTransformer = false } and dispose the model when the app is done with it.");

    /// <summary>Score, PredictedLabel and the optional embedding, in that order.</summary>
    internal IEnumerable<DataViewSchema.DetachedColumn> OutputColumns(DataViewSchema inputSchema)
    {
        yield return new DataViewSchema.DetachedColumn(Columns.Score, new VectorDataViewType(NumberDataViewType.Single, LabelNames.Count),
            ScoreColumnAnnotations.ForScore(LabelNames, inputSchema));
        yield return new DataViewSchema.DetachedColumn(Columns.PredictedLabel, new KeyDataViewType(typeof(uint), LabelNames.Count),
            ScoreColumnAnnotations.ForPredictedLabel(LabelNames));
        if (Columns.Embedding is { } embedding)
            yield return new DataViewSchema.DetachedColumn(embedding, new VectorDataViewType(NumberDataViewType.Single, Config.Dim));
    }

    /// <summary>Scores images [C, H, W] in one forward pass, without gradients.</summary>
    internal ScoredBatch Score(IReadOnlyList<Tensor> images)
    {
        using var scope = NewDisposeScope();
        return Score(stack(images));
    }

    /// <summary>Scores a batch [B, C, H, W] at the model's resolution in one forward pass, without gradients.</summary>
    internal ScoredBatch Score(Tensor images)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = images.to(Device);
        var embedding = Model.Embed(batch, Retention);
        var probabilities = nn.functional.softmax(Model.Classify(embedding), 1).cpu();
        var predicted = probabilities.argmax(1).to(int32).add_(1); // keys are 1-based
        return new ScoredBatch((int)images.shape[0], LabelNames.Count, probabilities.data<float>().ToArray(),
            predicted.data<int>().ToArray().Select(k => (uint)k).ToArray(),
            Columns.Embedding is null ? null : embedding.cpu().data<float>().ToArray());
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

        public SharedModel(ViRModel model, Device device)
        {
            Model = model;
            Device = device;
        }

        public ViRModel Model { get; }

        public Device Device { get; }

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
            Model.Dispose();
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
            Model.Dispose();
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
