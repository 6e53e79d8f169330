using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace ViRImageClassification.Web;

/// <summary>
/// Serves a saved model (model.zip or .mlnet, trained on encoded image bytes in "ImageSource") from any number of
/// threads, and loads it again when its file is replaced. Each request borrows a pooled engine of the model loaded
/// when it started; a replaced model is disposed once its last request ends, so a reload loses no request. A file
/// that can't be loaded yet (still being written) is tried again; until one loads, the old model serves.
/// </summary>
public sealed class ReloadingClassifier : IDisposable
{
    private readonly string _path;
    private readonly FileSystemWatcher _watcher;
    private readonly ILogger _log;
    private readonly object _reloading = new();
    private Loaded _current;

    public ReloadingClassifier(string path, ILogger<ReloadingClassifier> log)
    {
        _path = Path.GetFullPath(path);
        _log = log;
        _current = new Loaded(_path, 1);
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_path)!, Path.GetFileName(_path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size,
        };
        _watcher.Changed += (_, _) => Reload();
        _watcher.Created += (_, _) => Reload();
        _watcher.Renamed += (_, _) => Reload();
        _watcher.EnableRaisingEvents = true;
    }

    /// <summary>How many times the model was loaded: 1, then one more per reload.</summary>
    public int Version => Volatile.Read(ref _current).Version;

    /// <summary>The predicted label and every label's probability, most probable first.</summary>
    public Prediction Predict(byte[] image)
    {
        var loaded = Acquire();
        try
        {
            return loaded.Predict(image);
        }
        finally
        {
            loaded.Release();
        }
    }

    private Loaded Acquire()
    {
        while (true)
        {
            var loaded = Volatile.Read(ref _current);
            if (loaded.TryAcquire()) return loaded;
        }
    }

    private void Reload()
    {
        lock (_reloading)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    var next = new Loaded(_path, Version + 1);
                    var old = Interlocked.Exchange(ref _current, next);
                    old.Retire();
                    _log.LogInformation("Loaded {Path} (version {Version}).", _path, next.Version);
                    return;
                }
                catch (Exception e) when (attempt < 20 && e is IOException or InvalidOperationException or FormatException or InvalidDataException)
                {
                    Thread.Sleep(100); // the file is still being written
                }
                catch (Exception e)
                {
                    _log.LogError(e, "{Path} could not be loaded; the model loaded before goes on serving.", _path);
                    return;
                }
            }
        }
    }

    public void Dispose()
    {
        _watcher.Dispose();
        _current.Retire();
    }

    /// <summary>The image's bytes in, as Model Builder's ModelInput has them.</summary>
    private sealed class Input
    {
        [ColumnName("Label")]
        public string Label { get; set; } = "";

        [ColumnName("ImageSource")]
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    private sealed class Output
    {
        [ColumnName("PredictedLabel")]
        public string PredictedLabel { get; set; } = "";

        [ColumnName("Score")]
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>One loaded model, its engines, and the requests using it.</summary>
    private sealed class Loaded
    {
        private readonly MLContext _context = new();
        private readonly ITransformer _model;
        private readonly ConcurrentBag<PredictionEngine<Input, Output>> _engines = new();
        private readonly string[] _labels;
        private int _users = 1; // the classifier's own hold, until it is retired

        public Loaded(string path, int version)
        {
            using (var file = File.Open(path, FileMode.Open, FileAccess.Read, FileShare.Read)) _model = _context.Model.Load(file, out _);
            Version = version;
            var engine = NewEngine();
            var names = default(VBuffer<ReadOnlyMemory<char>>);
            engine.OutputSchema["Score"].GetSlotNames(ref names);
            _labels = names.DenseValues().Select(n => n.ToString()).ToArray();
            _engines.Add(engine);
        }

        public int Version { get; }

        public bool TryAcquire()
        {
            int users;
            do
            {
                users = Volatile.Read(ref _users);
                if (users == 0) return false; // retired and freed: take the current one
            }
            while (Interlocked.CompareExchange(ref _users, users + 1, users) != users);
            return true;
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref _users) == 0) (_model as IDisposable)?.Dispose();
        }

        public void Retire() => Release();

        public Prediction Predict(byte[] image)
        {
            if (!_engines.TryTake(out var engine)) engine = NewEngine();
            try
            {
                var output = engine.Predict(new Input { ImageSource = image });
                var scores = _labels.Zip(output.Score, (label, score) => new LabelScore(label, score)).OrderByDescending(s => s.Score).ToArray();
                return new Prediction(output.PredictedLabel, scores, Version);
            }
            finally
            {
                _engines.Add(engine);
            }
        }

        private PredictionEngine<Input, Output> NewEngine() =>
            _context.Model.CreatePredictionEngine<Input, Output>(_model, new PredictionEngineOptions { OwnsTransformer = false });
    }
}

/// <summary>A label and its probability.</summary>
public sealed record LabelScore(string Label, float Score);

/// <summary>What /predict answers: the predicted label, every label's probability (most probable first), and the model's version.</summary>
public sealed record Prediction(string PredictedLabel, LabelScore[] Scores, int ModelVersion);
