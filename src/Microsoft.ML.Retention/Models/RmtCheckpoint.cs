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
            if (!metadata.TryGetValue(ViRCheckpoint.ConfigKey, out var json))
                throw new InvalidDataException($"'{path}' has no '{ViRCheckpoint.ConfigKey}' in its metadata, so the RMT's shape is unknown.");
            RmtConfig config;
            try
            {
                config = RmtConfig.FromJson(json);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"'{path}' has a config that cannot be used: {e.Message}", e);
            }
            long values = tensors.Values.Sum(t => t.NumberOfElements);
            if (values < config.ParameterCount)
                throw new InvalidDataException($"'{path}' holds {values:N0} values, but its config needs {config.ParameterCount:N0} parameters: the file does not match its config.");
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
        var missing = targets.Keys.Where(n => !tensors.ContainsKey(n)).ToList();
        var unexpected = tensors.Keys.Where(n => !targets.ContainsKey(n)).ToList();
        var wrongShape = targets.Where(t => tensors.TryGetValue(t.Key, out var s) && !s.shape.SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key}: expected [{string.Join(", ", t.Value.shape)}], actual [{string.Join(", ", tensors[t.Key].shape)}]").ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
        {
            static string First(IReadOnlyCollection<string> names) => names.Count == 0 ? "none" : string.Join("; ", names.Take(8)) + (names.Count > 8 ? $"; … ({names.Count} in all)" : "");
            throw new InvalidDataException($"'{path}' does not fit an RMT of its config; nothing was loaded. Wrong shapes: {First(wrongShape)}. " +
                $"Missing: {First(missing)}. Unexpected: {First(unexpected)}.");
        }
        using var noGrad = no_grad();
        foreach (var (name, target) in targets) target.copy_(tensors[name]);
    }
}
