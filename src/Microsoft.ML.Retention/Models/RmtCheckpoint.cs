using System.Text.Json;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// An <see cref="RmtModel"/>'s weights as safetensors. The tensor names are the official RMT state_dict names, the
/// config travels in the metadata, and the PyTorch twin (<c>python -m vir.rmt</c>) reads and writes the same files.
/// </summary>
public static class RmtCheckpoint
{
    /// <summary>The value of the format tag this library writes (metadata key <see cref="ViRCheckpoint.FormatKey"/>).</summary>
    public const string Format = "rmt-safetensors-1";

    /// <summary>Writes every state_dict entry (buffers included), the config and, if given, the class names.</summary>
    public static void Save(RmtModel model, string path, IReadOnlyList<string>? labelNames = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var metadata = new Dictionary<string, string> { [ViRCheckpoint.FormatKey] = Format, [ViRCheckpoint.ConfigKey] = model.Config.ToJson() };
        if (labelNames is not null) metadata[ViRCheckpoint.LabelsKey] = JsonSerializer.Serialize(labelNames);
        SafeTensors.Write(path, model.state_dict(), metadata);
    }

    /// <summary>A model built from the config in the file's metadata, with its weights; all or nothing.</summary>
    /// <exception cref="InvalidDataException">The file has no usable config, or a tensor is missing, unexpected or of the wrong shape.</exception>
    public static RmtModel Load(string path)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        try
        {
            var config = CheckpointChecks.Config(metadata, tensors, path, RmtConfig.FromJson, c => c.ParameterCount, "");
            var model = new RmtModel(config);
            try
            {
                Assign(model, tensors, path);
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>Copies every tensor after checking that the names and shapes are exactly the model's.</summary>
    private static void Assign(RmtModel model, Dictionary<string, Tensor> tensors, string path)
    {
        var targets = model.state_dict();
        if (CheckpointChecks.Mismatch(targets.ToDictionary(t => t.Key, t => t.Value.shape), tensors) is { } mismatch)
            throw new InvalidDataException($"'{path}' does not fit an RMT of its config; nothing was loaded. {mismatch}");
        using var noGrad = no_grad();
        foreach (var (name, target) in targets) target.copy_(tensors[name]);
    }
}
