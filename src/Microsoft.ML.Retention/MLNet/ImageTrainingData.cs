using Microsoft.ML.Data;
using Microsoft.ML.Retention.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>Reads labeled images from an IDataView, row by row, as training batches.</summary>
internal sealed class ImageTrainingData
{
    private readonly IDataView _data;
    private readonly ImageColumn _images;
    private readonly string _labelColumn;
    private readonly int _classCount;
    private readonly Func<long, bool> _includeRow;
    private readonly bool _skipBadImages;
    private readonly Action<string> _warn;

    public ImageTrainingData(IDataView data, ImageColumn images, string labelColumn, int classCount, Func<long, bool> includeRow, bool skipBadImages, Action<string> warn)
    {
        _data = data;
        _images = images;
        _labelColumn = labelColumn;
        _classCount = classCount;
        _includeRow = includeRow;
        _skipBadImages = skipBadImages;
        _warn = warn;
    }

    // Rows whose image could not be read: the same on every pass, however many passes (and partial passes) there are.
    private readonly HashSet<long> _skipped = new();

    /// <summary>The distinct rows skipped so far because their image could not be read.</summary>
    public long SkippedRows
    {
        get { lock (_skipped) return _skipped.Count; }
    }

    /// <summary>
    /// The 0-based class of every included row, read from the label column alone (no image is decoded).
    /// Throws when a label is missing (key 0).
    /// </summary>
    public List<int> ReadLabels()
    {
        var labels = new List<int>();
        var labelColumn = _data.Schema[_labelColumn];
        using var cursor = SerialCursor.Open(_data, new[] { labelColumn });
        var readKey = KeyReader(cursor, labelColumn);
        while (cursor.MoveNext())
        {
            if (!_includeRow(cursor.Position)) continue;
            labels.Add(ClassOf(readKey(), cursor.Position));
        }
        return labels;
    }

    /// <summary>Every included row as (image [C, H, W], 0-based class); the image belongs to no dispose scope.</summary>
    public IEnumerable<(Tensor Image, int Label)> Rows()
    {
        var labelColumn = _data.Schema[_labelColumn];
        using var cursor = SerialCursor.Open(_data, _images.ColumnsToRead(_data.Schema).Append(labelColumn));
        var readKey = KeyReader(cursor, labelColumn);
        var readImage = _images.Reader(cursor);
        while (cursor.MoveNext())
        {
            if (!_includeRow(cursor.Position)) continue;
            ulong key = readKey();
            Tensor image;
            try
            {
                using var scope = NewDisposeScope();
                image = readImage().DetachFromDisposeScope();
            }
            catch (InvalidDataException e) when (_skipBadImages)
            {
                bool first;
                lock (_skipped) first = _skipped.Add(cursor.Position);
                if (first) _warn($"Skipping a bad image (SkipBadImages is set): {e.Message}");
                continue;
            }
            yield return (image, ClassOf(key, cursor.Position));
        }
    }

    /// <summary>The current row's key, whichever unsigned type ML.NET keys it with (byte, ushort, uint or ulong).</summary>
    private static Func<ulong> KeyReader(DataViewRow row, DataViewSchema.Column column)
    {
        Func<ulong> Read<T>(Func<T, ulong> widen) where T : struct
        {
            var get = row.GetGetter<T>(column);
            T key = default;
            return () => { get(ref key); return widen(key); };
        }
        var raw = column.Type.RawType;
        return raw == typeof(byte) ? Read<byte>(k => k) : raw == typeof(ushort) ? Read<ushort>(k => k) : raw == typeof(ulong) ? Read<ulong>(k => k) : Read<uint>(k => k);
    }

    /// <summary>The 0-based class of a key; no label outside the model's classes ever reaches libtorch.</summary>
    private int ClassOf(ulong key, long row)
    {
        if (key == 0)
            throw new InvalidDataException($"Column '{_labelColumn}', row {row}: the label is missing (key value 0); every training row needs a label.");
        if (key > (ulong)_classCount)
            throw new InvalidDataException($"Column '{_labelColumn}', row {row}: the key value is {key}, but the model has {_classCount} classes (keys 1 to {_classCount}).");
        return (int)key - 1;
    }

    /// <summary>Decodes every included row once into memory.</summary>
    public InMemoryImageSet LoadIntoMemory(long expectedRows, long[] imageShape)
    {
        var images = empty(new[] { expectedRows }.Concat(imageShape).ToArray()).DetachFromDisposeScope();
        var labels = new long[expectedRows];
        long count = 0;
        foreach (var (image, label) in Rows())
        {
            using (image) images[count].copy_(image);
            labels[count++] = label;
        }
        if (count < expectedRows)
        {
            var kept = images.narrow(0, 0, count).clone().DetachFromDisposeScope();
            images.Dispose();
            images = kept;
        }
        return new InMemoryImageSet(images, tensor(labels.AsSpan(0, (int)count).ToArray()).DetachFromDisposeScope());
    }
}

/// <summary>Training images held in memory: each pass is a random permutation.</summary>
internal sealed class InMemoryImageSet : IBatchSource, IDisposable
{
    private readonly Tensor _images;
    private readonly Tensor _labels;

    public InMemoryImageSet(Tensor images, Tensor labels)
    {
        _images = images;
        _labels = labels;
    }

    public long Count => _labels.shape[0];

    public IEnumerable<(Tensor Images, Tensor Labels)> Batches(int batchSize, Random? shuffle)
    {
        long[] order = Enumerable.Range(0, (int)Count).Select(i => (long)i).ToArray();
        shuffle?.Shuffle(order);
        for (long start = 0; start < Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var index = tensor(order.AsSpan((int)start, (int)Math.Min(batchSize, Count - start)).ToArray());
            yield return (_images.index_select(0, index).DetachFromDisposeScope(), _labels.index_select(0, index).DetachFromDisposeScope());
        }
    }

    public void Dispose()
    {
        _images.Dispose();
        _labels.Dispose();
    }
}

/// <summary>Training images streamed from the IDataView every pass, shuffled through a bounded buffer.</summary>
internal sealed class StreamingImageSet : IBatchSource
{
    private readonly ImageTrainingData _data;
    private readonly int _bufferSize;

    public StreamingImageSet(ImageTrainingData data, long count, int bufferSize)
    {
        _data = data;
        Count = count;
        _bufferSize = bufferSize;
    }

    public long Count { get; }

    public IEnumerable<(Tensor Images, Tensor Labels)> Batches(int batchSize, Random? shuffle)
    {
        var buffer = new List<(Tensor Image, int Label)>();
        var batch = new List<(Tensor Image, int Label)>();
        int capacity = shuffle is null ? 1 : Math.Max(_bufferSize, batchSize);
        foreach (var row in _data.Rows())
        {
            buffer.Add(row);
            if (buffer.Count < capacity) continue;
            batch.Add(TakeOne(buffer, shuffle));
            if (batch.Count == batchSize) yield return Stack(batch);
        }
        while (buffer.Count > 0)
        {
            batch.Add(TakeOne(buffer, shuffle));
            if (batch.Count == batchSize || buffer.Count == 0) yield return Stack(batch);
        }
    }

    private static (Tensor, int) TakeOne(List<(Tensor, int)> buffer, Random? shuffle)
    {
        int i = shuffle?.Next(buffer.Count) ?? 0;
        var item = buffer[i];
        buffer[i] = buffer[^1];
        buffer.RemoveAt(buffer.Count - 1);
        return item;
    }

    private static (Tensor, Tensor) Stack(List<(Tensor Image, int Label)> batch)
    {
        var images = stack(batch.Select(b => b.Image).ToArray()).DetachFromDisposeScope();
        var labels = tensor(batch.Select(b => (long)b.Label).ToArray()).DetachFromDisposeScope();
        foreach (var (image, _) in batch) image.Dispose();
        batch.Clear();
        return (images, labels);
    }
}
