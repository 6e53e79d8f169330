using Microsoft.ML;
using Microsoft.ML.Retention;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>Writes a model.zip's ViR weights as safetensors, which the PyTorch twin (python/vir) loads.</summary>
public static class ExportCommand
{
    public static int Run(string modelPath, string output, IAnsiConsole console)
    {
        var ml = new MLContext();
        var model = ml.Model.Load(modelPath, out _);
        var vir = TrainCommand.ViRIn(model) ?? throw new InvalidDataException($"'{modelPath}' holds no ViR transformer.");
        vir.SaveWeights(output);
        console.MarkupLineInterpolated($"Wrote [blue]{output}[/] ({new FileInfo(output).Length / 1024} KiB): the weights, the config and the class names.");
        (model as IDisposable)?.Dispose();
        return 0;
    }
}
