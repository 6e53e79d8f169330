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
    public static ResultTable Run(BenchmarkSettings settings)
    {
        int rows = settings.Smoke ? 128 : 2048, batch = 64;
        var data = SyntheticPixels.Rows(rows);
        var ml = new MLContext(seed: 1);
        var keyed = SyntheticPixels.Keyed(ml, data);
        using var model = SyntheticPixels.Fit(ml, keyed, epochs: 1, batch);

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

        using var engine = ml.Model.CreatePredictionEngine<SyntheticPixels.PixelRow, SyntheticPixels.ScoreRow>(model);
        int single = Math.Min(rows, 256);
        var predict = Harness.Run(() => { for (int i = 0; i < single; i++) engine.Predict(data[i]); }, budgetSeconds: settings.BudgetSeconds);
        double predictRate = single / (predict.MedianMs / 1000);
        table.Add("PredictionEngine (one row at a time)", predictRate, predictRate / rawRate);
        all.Dispose();
        return table;
    }
}
