using Microsoft.ML.Retention.MLNetInternals;
using Microsoft.ML.Retention.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Retention;

/// <summary>Reports training through ML.NET: a progress channel, log lines (seen by mlContext.Log) and the MetricsCallback.</summary>
internal sealed class ChannelTrainingObserver : ITrainingObserver
{
    private readonly IHost _host;
    private readonly IChannel _channel;
    private readonly ViRImageClassificationTrainer.Options _options;
    private int _epoch;
    private long _step, _steps;
    private double _loss, _learningRate;

    public ChannelTrainingObserver(IHost host, IChannel channel, IProgressChannel progress, ViRImageClassificationTrainer.Options options)
    {
        _host = host;
        _channel = channel;
        _options = options;
        progress.SetHeader(new ProgressHeader(new[] { "Loss", "Learning rate" }, new[] { "Epoch", "Step" }), entry =>
        {
            entry.SetProgress(0, Math.Max(0, _epoch - 1), _options.MaxEpoch);
            entry.SetProgress(1, _step, _steps);
            entry.SetMetric(0, _loss);
            entry.SetMetric(1, _learningRate);
        });
    }

    public void CheckAlive() => MLNetHost.CheckAlive(_host);

    public void OnStep(int epoch, long stepInEpoch, long stepsPerEpoch, double loss, double learningRate)
    {
        (_epoch, _step, _steps, _loss, _learningRate) = (epoch, stepInEpoch, stepsPerEpoch, loss, learningRate);
        long every = Math.Max(1, stepsPerEpoch / 10);
        if (stepInEpoch % every == 0 || stepInEpoch == stepsPerEpoch)
            _channel.Info($"Epoch {epoch}/{_options.MaxEpoch}, step {stepInEpoch}/{stepsPerEpoch}: loss {loss:F4}, learning rate {learningRate:G3}");
    }

    public void OnEpoch(ViREpochMetrics m)
    {
        string validation = m.ValidationLoss is null ? "" : $", validation loss {m.ValidationLoss:F4}, validation accuracy {m.ValidationAccuracy:P2}";
        _channel.Info($"Epoch {m.Epoch}/{_options.MaxEpoch} done: train loss {m.TrainLoss:F4}, train accuracy {m.TrainAccuracy:P2}{validation}, {m.ImagesPerSecond:F0} images/s");
        _options.MetricsCallback?.Invoke(m);
    }

    public void Info(string message) => _channel.Info(message);
}
