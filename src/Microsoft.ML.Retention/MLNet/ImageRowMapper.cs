using Microsoft.ML.Data;
using Microsoft.ML.Retention.Native;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>Scores one row at a time (a batch of one), for PredictionEngine and other row-to-row callers.</summary>
internal sealed class ImageRowMapper : IRowToRowMapper
{
    private readonly ViRImageClassificationTransformer _parent;
    private readonly ImageColumn _images;
    private readonly object _hold; // keeps the weights alive while this mapper is reachable

    public ImageRowMapper(ViRImageClassificationTransformer parent, DataViewSchema inputSchema, object hold)
    {
        _parent = parent;
        _hold = hold;
        _images = ImageColumn.Bind(inputSchema, parent.Columns.Features, parent.Architecture);
        InputSchema = inputSchema;
        OutputSchema = parent.GetOutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var needed = dependingColumns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]);
        if (dependingColumns.Any(c => c.Index >= InputSchema.Count))
            needed = needed.Concat(_images.ColumnsToRead(InputSchema));
        return needed.DistinctBy(c => c.Index).ToList();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, new HashSet<int>(activeColumns.Select(c => c.Index)));

    private sealed class Row : DataViewRow
    {
        private readonly ImageRowMapper _mapper;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly Func<ScoredBatch> _score;
        private readonly Delegate[] _outputGetters;
        private ScoredBatch? _scored;
        private long _scoredPosition = -1;

        public Row(ImageRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            _mapper = mapper;
            _input = input;
            _active = active;
            var parent = mapper._parent;
            if (parent.StreamsFiles(mapper._images))
                _score = mapper._images.FileStreamer(input, parent.ScoreFile); // one large image: every core, band by band
            else
            {
                var readImage = mapper._images.Reader(input);
                _score = () => SingleRowThreads.Run(() => parent.Score(new[] { readImage() }));
            }
            _outputGetters = ScoredBatch.Getters(() => (Current(), 0), mapper._parent.Architecture.EmbeddingDim);
        }

        public override DataViewSchema Schema => _mapper.OutputSchema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = _mapper.InputSchema.Count;
            if (column.Index < inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            return _outputGetters[column.Index - inputCount] as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, which cannot be read as {typeof(TValue).Name}.");
        }

        // Scores the current input row once, however many output columns are read.
        private ScoredBatch Current()
        {
            if (_scored is null || _scoredPosition != _input.Position)
            {
                using var scope = NewDisposeScope();
                _scored = _score();
                _scoredPosition = _input.Position;
            }
            return _scored;
        }
    }
}
