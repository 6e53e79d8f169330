using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>
/// The result of <see cref="ViRImageClassificationTransformer.Transform"/>: the input plus the
/// output columns, scored <see cref="ViRImageClassificationTransformer.BatchSize"/> images per
/// forward pass. A cursor reads ahead a batch of images on a second cursor over the same input,
/// so passed-through columns never need buffering.
/// </summary>
internal sealed class ScoredImageDataView : IDataView
{
    private readonly ViRImageClassificationTransformer _parent;
    private readonly IDataView _input;
    private readonly ImageColumn _images;

    public ScoredImageDataView(ViRImageClassificationTransformer parent, IDataView input)
    {
        _parent = parent;
        _input = input;
        _images = ImageColumn.Bind(input.Schema, parent.Columns.Features, parent.Architecture);
        Schema = parent.GetOutputSchema(input.Schema);
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var active = new HashSet<int>(columnsNeeded.Select(c => c.Index));
        int inputCount = _input.Schema.Count;
        // Both read serially, so they visit the same rows in the same order, and a bad image is named by its row.
        var main = SerialCursor.Open(_input, _input.Schema.Where(c => active.Contains(c.Index)));
        var lookahead = active.Any(i => i >= inputCount) ? SerialCursor.Open(_input, _images.ColumnsToRead(_input.Schema)) : null;
        return new Cursor(this, main, lookahead, active);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ScoredImageDataView _view;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _lookahead;
        private readonly Func<Tensor>? _readImage;
        private readonly Func<ScoredBatch>? _streamFile; // a path column in the recurrent form: one file at a time, band by band
        private readonly Action<float[], int>? _copyPixels;
        private float[]? _pixelBuffer;
        private readonly int _pixelsPerImage;
        private readonly HashSet<int> _active;
        private readonly Delegate[] _outputGetters;
        private ScoredBatch? _batch;
        private int _index = -1;

        public Cursor(ScoredImageDataView view, DataViewRowCursor main, DataViewRowCursor? lookahead, HashSet<int> active)
        {
            _view = view;
            _main = main;
            _lookahead = lookahead;
            _readImage = lookahead is null ? null : view._images.Reader(lookahead);
            if (lookahead is not null && view._parent.StreamsFiles(view._images))
                _streamFile = view._images.FileStreamer(lookahead, view._parent.ScoreFile);
            // Pixel vectors at the model's size go straight into one batch buffer: no tensor per row.
            if (lookahead is not null && view._images.DirectPixelCount is int perImage)
            {
                _copyPixels = view._images.PixelCopier(lookahead);
                _pixelsPerImage = perImage;
                _pixelBuffer = new float[Math.Min(view._parent.BatchSize, 16) * perImage]; // grows to the rows there are
            }
            _active = active;
            _outputGetters = ScoredBatch.Getters(() => (_batch!, _index), view._parent.Architecture.EmbeddingDim);
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _main.Position;

        public override long Batch => _main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (!_main.MoveNext()) return false;
            if (_lookahead is not null && (_batch is null || ++_index >= _batch.Count))
            {
                _batch = ScoreNextBatch();
                _index = 0;
            }
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was opened.");
            int inputCount = _view._input.Schema.Count;
            if (column.Index < inputCount) return _main.GetGetter<TValue>(_main.Schema[column.Index]);
            return _outputGetters[column.Index - inputCount] as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, which cannot be read as {typeof(TValue).Name}.");
        }

        // The lookahead cursor visits the same rows as the main one, so its next rows are the next batch.
        private ScoredBatch ScoreNextBatch()
        {
            using var scope = NewDisposeScope();
            if (_streamFile is not null) return _lookahead!.MoveNext() ? _streamFile() : throw new InvalidOperationException("The image cursor ended before the rows did.");
            if (_copyPixels is not null) return ScoreNextPixelBatch();
            var images = new List<Tensor>();
            while (images.Count < _view._parent.BatchSize && _lookahead!.MoveNext()) images.Add(_readImage!());
            return _view._parent.Score(images);
        }

        private ScoredBatch ScoreNextPixelBatch()
        {
            var config = _view._parent.Architecture;
            int count = 0;
            while (count < _view._parent.BatchSize && _lookahead!.MoveNext())
            {
                if ((count + 1) * (long)_pixelsPerImage > _pixelBuffer!.Length)
                    Array.Resize(ref _pixelBuffer, (int)Math.Min((long)_view._parent.BatchSize * _pixelsPerImage, 2L * _pixelBuffer.Length));
                _copyPixels!(_pixelBuffer, count++ * _pixelsPerImage);
            }
            var batch = tensor(_pixelBuffer.AsSpan(0, count * _pixelsPerImage).ToArray(), new long[] { count, config.Channels, config.ImageHeight, config.ImageWidth });
            return _view._parent.Score(batch);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _main.Dispose();
                _lookahead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
