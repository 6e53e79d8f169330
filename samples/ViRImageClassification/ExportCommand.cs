using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.RetentionMath;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>
/// Writes a model.zip's ViR as ONNX (a .onnx file: for ApplyOnnxModel and ONNX Runtime, without libtorch) or as
/// safetensors (any other name: for the PyTorch twin, python/vir).
/// </summary>
public static class ExportCommand
{
    public static int Run(string modelPath, string output, RetentionMode mode, IAnsiConsole console)
    {
        var ml = new MLContext();
        var model = ml.Model.Load(modelPath, out _);
        var vir = TrainCommand.ViRIn(model) ?? throw new InvalidDataException($"'{modelPath}' holds no ViR transformer.");
        bool onnx = Path.GetExtension(output).Equals(".onnx", StringComparison.OrdinalIgnoreCase);
        if (onnx) vir.ExportToOnnx(output, mode);
        else vir.SaveWeights(output);
        string what = onnx
            ? $"ONNX, {mode} retention, input one image's BGRA pixels at any size (preprocessed in the graph), the class names and the preprocessing in the metadata"
            : "safetensors with the weights, the config and the class names";
        console.MarkupLineInterpolated($"Wrote [blue]{output}[/] ({new FileInfo(output).Length / 1024} KiB): {what}.");
        (model as IDisposable)?.Dispose();
        return 0;
    }
}
