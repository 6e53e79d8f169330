using Microsoft.ML.Retention.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Training;

/// <summary>
/// The optimisation loop: AdamW (no weight decay on norms, biases and embeddings), warmup plus
/// cosine schedule, label smoothing, gradient clipping, augmentation, whole-set validation and
/// early stopping with best-weight restore.
/// </summary>
internal sealed class TrainingLoop
{
    private readonly IVisionBackbone _model;
    private readonly TrainingSettings _settings;
    private readonly Device _device;
    private readonly ITrainingObserver _observer;

    public TrainingLoop(IVisionBackbone model, TrainingSettings settings, Device device, ITrainingObserver observer)
    {
        _model = model;
        _settings = settings;
        _device = device;
        _observer = observer;
    }

    public IReadOnlyList<ViREpochMetrics> Run(IBatchSource train, IBatchSource? validation)
    {
        var history = new List<ViREpochMetrics>();
        long stepsPerEpoch = (train.Count + _settings.BatchSize - 1) / _settings.BatchSize;
        var schedule = new LearningRateSchedule(_settings.LearningRate, (long)Math.Round(_settings.WarmupEpochs * stepsPerEpoch), _settings.MaxEpoch * stepsPerEpoch);
        var augmentation = _settings.Augmentation;
        var early = _settings.EarlyStopping;
        var best = (Score: double.NegativeInfinity, Epoch: 0, Weights: (Dictionary<string, Tensor>?)null);
        var shuffle = new Random(_settings.Seed);
        long step = 0;

        using var optimizer = CreateOptimizer();
        using var replica = _settings.Precision == ViRPrecision.BFloat16 ? new BFloat16Replica(_model) : null;
        var network = replica?.Model ?? _model;
        try
        {
            for (int epoch = 1; epoch <= _settings.MaxEpoch; epoch++)
            {
                network.Module.train();
                var watch = System.Diagnostics.Stopwatch.StartNew();
                double lossSum = 0, lr = 0;
                long correct = 0, seen = 0, stepInEpoch = 0;
                foreach (var (images, labels) in train.Batches(_settings.BatchSize, shuffle))
                {
                    using (images)
                    using (labels)
                    using (var scope = NewDisposeScope())
                    {
                        _observer.CheckAlive();
                        lr = schedule.At(step);
                        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

                        var x = images.to(_device);
                        if (augmentation is not null) x = augmentation.Apply(x);
                        var y = labels.to(_device);
                        replica?.PullWeights();
                        var logits = network.forward(replica is null ? x : x.to(ScalarType.BFloat16), _settings.Retention).to(ScalarType.Float32);
                        var loss = nn.functional.cross_entropy(logits, y, label_smoothing: _settings.LabelSmoothing);
                        double lossValue = loss.ToDouble();
                        if (!double.IsFinite(lossValue))
                            throw new InvalidOperationException(
                                $"Training diverged: the loss is {lossValue} at epoch {epoch}, step {stepInEpoch + 1} of {stepsPerEpoch}. " +
                                $"Try a lower LearningRate (now {_settings.LearningRate:g3}) or a smaller GradientClipNorm.");

                        optimizer.zero_grad();
                        loss.backward();
                        replica?.PushGradients();
                        if (_settings.GradientClipNorm > 0) nn.utils.clip_grad_norm_(_model.Module.parameters(), _settings.GradientClipNorm);
                        optimizer.step();

                        long batch = labels.shape[0];
                        lossSum += lossValue * batch;
                        correct += logits.argmax(1).eq(y).sum().ToInt64();
                        seen += batch;
                        step++;
                        stepInEpoch++;
                        _observer.OnStep(new ViRStepProgress(epoch, _settings.MaxEpoch, stepInEpoch, stepsPerEpoch, lossValue,
                            lossSum / seen, (double)correct / seen, lr, seen / Math.Max(1e-9, watch.Elapsed.TotalSeconds)));
                    }
                }
                double imagesPerSecond = seen / Math.Max(1e-9, watch.Elapsed.TotalSeconds);
                replica?.PushBuffers();

                var (valLoss, valAccuracy) = validation is null ? (null, null) : Evaluate(validation);
                var metrics = new ViREpochMetrics(epoch, step, lossSum / Math.Max(1, seen), (double)correct / Math.Max(1, seen),
                    valLoss, valAccuracy, lr, imagesPerSecond);
                history.Add(metrics);
                _observer.OnEpoch(metrics);

                if (early is null || valLoss is null) continue;
                double score = early.Metric == EarlyStoppingMetric.ValidationAccuracy ? valAccuracy!.Value : -valLoss.Value;
                if (score > best.Score + early.MinDelta)
                {
                    DisposeAll(best.Weights);
                    best = (score, epoch, early.RestoreBestWeights ? CopyWeights() : null);
                }
                else if (epoch - best.Epoch >= early.Patience)
                {
                    _observer.Info($"Early stopping after epoch {epoch}: no {early.Metric} improvement above {early.MinDelta} since epoch {best.Epoch}.");
                    break;
                }
            }

            if (best.Weights is not null && best.Epoch != history.Count)
            {
                _observer.Info($"Restoring the weights of epoch {best.Epoch}, the best by {early!.Metric}.");
                RestoreWeights(best.Weights);
            }
            CheckFinite(train, step, history.Count);
        }
        finally
        {
            DisposeAll(best.Weights);
            _model.Module.eval();
        }
        return history;
    }

    /// <summary>
    /// The loss is checked before each update; this checks what the last update left, by the model's outputs on the
    /// first training batch (weights can be finite but so large that they score NaN).
    /// </summary>
    private void CheckFinite(IBatchSource train, long steps, int epochs)
    {
        _model.Module.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (images, labels) = train.Batches(_settings.BatchSize, shuffle: null).First();
        using (images)
        using (labels)
            if (_model.forward(images.to(_device), _settings.Retention).isfinite().all().item<bool>())
                return;
        throw new InvalidOperationException(
            $"Training diverged: after the last step ({steps} steps, {epochs} epochs) the model's outputs on the training images are not finite. " +
            $"Try a lower LearningRate (now {_settings.LearningRate:g3}) or a smaller GradientClipNorm.");
    }

    /// <summary>Mean loss and accuracy over every image of <paramref name="source"/> (no label smoothing).</summary>
    internal (double? Loss, double? Accuracy) Evaluate(IBatchSource source)
    {
        _model.Module.eval();
        using var noGrad = no_grad();
        double lossSum = 0;
        long correct = 0, seen = 0;
        foreach (var (images, labels) in source.Batches(_settings.BatchSize, shuffle: null))
        {
            using (images)
            using (labels)
            using (var scope = NewDisposeScope())
            {
                _observer.CheckAlive();
                var y = labels.to(_device);
                var logits = _model.forward(images.to(_device), _settings.Retention);
                lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).ToDouble();
                correct += logits.argmax(1).eq(y).sum().ToInt64();
                seen += labels.shape[0];
            }
        }
        return seen == 0 ? (null, null) : (lossSum / seen, (double)correct / seen);
    }

    private optim.Optimizer CreateOptimizer()
    {
        var noDecay = _model.NoWeightDecay();
        var decayed = new List<Parameter>();
        var notDecayed = new List<Parameter>();
        foreach (var (name, parameter) in _model.Module.named_parameters())
            (noDecay.Contains(name) ? notDecayed : decayed).Add(parameter);
        var groups = new[]
        {
            new AdamW.ParamGroup(decayed, lr: _settings.LearningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: _settings.WeightDecay, amsgrad: false, maximize: false),
            new AdamW.ParamGroup(notDecayed, lr: _settings.LearningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0, amsgrad: false, maximize: false),
        };
        return optim.AdamW(groups, lr: _settings.LearningRate, weight_decay: _settings.WeightDecay);
    }

    private Dictionary<string, Tensor> CopyWeights()
    {
        using var noGrad = no_grad();
        return _model.Module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private void RestoreWeights(Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, current) in _model.Module.state_dict()) current.copy_(weights[name]);
    }

    private static void DisposeAll(Dictionary<string, Tensor>? weights)
    {
        if (weights is null) return;
        foreach (var tensor in weights.Values) tensor.Dispose();
    }
}
