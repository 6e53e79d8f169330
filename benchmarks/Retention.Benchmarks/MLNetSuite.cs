using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Retention.Benchmarks;

/// <summary>What ML.NET costs on top of the model: batched Transform and PredictionEngine against raw forward passes.</summary>
public static class MLNetSuite
{
    private sealed class PixelRow
    {
        [VectorType(1, 28, 28)]
        public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    public static ResultTable Run(BenchmarkSettings settings)
    {
        int rows = settings.Smoke ? 128 : 2048, batch = 64;
        var random = new Random(1);
        var data = Enumerable.Range(0, rows).Select(i => new PixelRow
        {
            Pixels = Enumerable.Range(0, 784).Select(_ => (float)random.NextDouble()).ToArray(),
            Label = (uint)(i % 10),
        }).ToList();

        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(data);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(view).Transform(view);
        using var model = ml.MulticlassClassification.Trainers.ViR(new ViRImageClassificationTrainer.Options
        {
            FeatureColumnName = "Pixels", Architecture = ViRConfig.Mini, MaxEpoch = 1, BatchSize = batch, Device = ViRDevice.Cpu,
        }).Fit(keyed);

        var table = new ResultTable("mlnet", $"ML.NET overhead: ViR-Mini on {rows} 28×28 images, batch {batch}", "path", "images/s", "÷ raw model");
        var all = tensor(data.SelectMany(r => r.Pixels).ToArray()).view(rows, 1, 28, 28);
        // The same model alone (its own random weights cost the same to run).
        using var alone = new ViRModel(model.Config);
        alone.eval();
        var raw = Harness.Run(() =>
        {
            using var noGrad = no_grad();
            for (long start = 0; start < rows; start += batch)
            {
                using var s = NewDisposeScope();
                var logits = alone.forward(all.narrow(0, start, Math.Min(batch, rows - start)), model.Retention);
                nn.functional.softmax(logits, 1).cpu().data<float>().ToArray();
            }
        }, budgetSeconds: settings.BudgetSeconds);
        double rawRate = rows / (raw.MedianMs / 1000);
        table.Add("raw model forward + softmax", rawRate, 1.0);

        var transform = Harness.Run(() => model.Transform(keyed).GetColumn<float[]>("Score").ToArray(), budgetSeconds: settings.BudgetSeconds);
        double transformRate = rows / (transform.MedianMs / 1000);
        table.Add("IDataView Transform (batched)", transformRate, transformRate / rawRate);

        using var engine = ml.Model.CreatePredictionEngine<PixelRow, ScoreRow>(model);
        int single = Math.Min(rows, 256);
        var predict = Harness.Run(() => { for (int i = 0; i < single; i++) engine.Predict(data[i]); }, budgetSeconds: settings.BudgetSeconds);
        double predictRate = single / (predict.MedianMs / 1000);
        table.Add("PredictionEngine (one row at a time)", predictRate, predictRate / rawRate);
        all.Dispose();
        return table;
    }
}
