using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Onnx;
using Microsoft.ML.Retention.RetentionMath;
using TorchSharp;
using static TorchSharp.torch;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace Retention.Benchmarks;

/// <summary>ONNX Runtime (CPU) against TorchSharp on the same exported model, form and batch, in one run.</summary>
public static class OnnxSuite
{
    public static ResultTable Run(BenchmarkSettings settings)
    {
        var table = new ResultTable("onnx", "ONNX Runtime against TorchSharp: ViR forward, images/s (same weights, form and batch)",
            "model", "resolution", "batch", "form", "TorchSharp images/s", "ONNX Runtime images/s", "ONNX Runtime ÷ TorchSharp");
        foreach (var (name, config, batch, retention) in settings.OnnxCases)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            manual_seed(0);
            using var model = new ViRModel(config with { DropPath = 0 });
            model.eval();
            string path = Path.Combine(Path.GetTempPath(), $"vir-bench-{Guid.NewGuid():N}.onnx");
            try
            {
                ViROnnxExport.Export(model, path, retention: retention, input: OnnxImageInput.Images); // the model alone, batched
                using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount };
                using var session = new InferenceSession(path, options);
                var images = randn(batch, config.Channels, config.ImageHeight, config.ImageWidth);
                var input = new[] { NamedOnnxValue.CreateFromTensor("images", new DenseTensor(images.data<float>().ToArray(), images.shape.Select(d => (int)d).ToArray())) };

                var torch = Harness.Run(() => { using var s = NewDisposeScope(); nn.functional.softmax(model.forward(images, retention), 1); }, budgetSeconds: settings.BudgetSeconds);
                var onnx = Harness.Run(() => { using var results = session.Run(input); }, budgetSeconds: settings.BudgetSeconds);
                double torchRate = batch / (torch.MedianMs / 1000), onnxRate = batch / (onnx.MedianMs / 1000);
                table.Add(name, $"{config.ImageHeight}²", batch, retention.Mode == RetentionMode.Chunkwise ? $"chunkwise C={ChunkSizes.Resolve(retention.ChunkSize, config.PatchCount + 1)}" : "parallel",
                    torchRate, onnxRate, onnxRate / torchRate);
            }
            finally
            {
                File.Delete(path);
            }
        }
        table.Notes.Add($"Medians of repeated forward passes (probabilities out), {Environment.ProcessorCount} threads each: TorchSharp's libtorch and ONNX Runtime's CPU provider " +
            "with default graph optimisations. Random weights; speed does not depend on them.");
        return table;
    }
}
