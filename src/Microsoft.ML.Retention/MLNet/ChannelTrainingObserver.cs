using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Retention;

/// <summary>Reports training through ML.NET: a progress channel, log lines (seen by mlContext.Log) and the MetricsCallback.</summary>
internal sealed class ChannelTrainingObserver : ITrainingObserver
{
    private readonly IHost _host;
    private readonly IChannel _channel;
    private readonly ViRImageClassificationTrainer.OptionsBase _options;
    private ViRStepProgress? _last;

    public ChannelTrainingObserver(IHost host, IChannel channel, IProgressChannel progress, ViRImageClassificationTrainer.OptionsBase options)
    {
        _host = host;
        _channel = channel;
        _options = options;
        progress.SetHeader(new ProgressHeader(new[] { "Loss", "Accuracy", "Learning rate" }, new[] { "Epoch", "Step" }), entry =>
        {
            if (_last is not { } p) return;
            entry.SetProgress(0, p.Epoch - 1, p.MaxEpoch);
            entry.SetProgress(1, p.StepInEpoch, p.StepsPerEpoch);
            entry.SetMetric(0, p.RunningLoss);
            entry.SetMetric(1, p.RunningAccuracy);
            entry.SetMetric(2, p.LearningRate);
        });
    }

    public void CheckAlive() => MLNetHost.CheckAlive(_host);

    public void OnStep(ViRStepProgress p)
    {
        _last = p;
        long every = Math.Max(1, p.StepsPerEpoch / 10);
        if (p.StepInEpoch % every == 0 || p.StepInEpoch == p.StepsPerEpoch)
            _channel.Info($"Epoch {p.Epoch}/{p.MaxEpoch}, step {p.StepInEpoch}/{p.StepsPerEpoch}: loss {p.Loss:F4}, learning rate {p.LearningRate:G3}");
        _options.ProgressCallback?.Invoke(p);
    }

    public void OnEpoch(ViREpochMetrics m)
    {
        string validation = m.ValidationLoss is null ? "" : $", validation loss {m.ValidationLoss:F4}, validation accuracy {m.ValidationAccuracy:P2}";
        _channel.Info($"Epoch {m.Epoch}/{_options.MaxEpoch} done: train loss {m.TrainLoss:F4}, train accuracy {m.TrainAccuracy:P2}{validation}, {m.ImagesPerSecond:F0} images/s");
        _options.MetricsCallback?.Invoke(m);
    }

    public void Info(string message) => _channel.Info(message);
}
