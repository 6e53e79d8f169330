using System.Collections;
using System.Text.Json;
using TorchSharp.PyBridge;
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
    public static RmtModel Load(string path) => Load(path, out _);

    /// <inheritdoc cref="Load(string)"/>
    /// <param name="path">The safetensors file.</param>
    /// <param name="labelNames">The class names in the metadata, or null when it has none.</param>
    public static RmtModel Load(string path, out IReadOnlyList<string>? labelNames)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        try
        {
            labelNames = ViRCheckpoint.Labels(metadata, path);
            return Built(CheckpointChecks.Config(metadata, tensors, path, RmtConfig.FromJson, c => c.ParameterCount, ""), tensors, path);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// An RMT of <paramref name="config"/> with the weights of a PyTorch <c>.pth</c> file: the official checkpoints (a
    /// training dict with the weights under <c>model</c> and their moving average under <c>model_ema</c>, beside optimizer
    /// state and the training arguments, which are skipped) or a bare state_dict. The file is read with TorchSharp.PyBridge,
    /// whose unpickler builds only dicts, lists, numbers and tensors and runs no code from the file. All or nothing.
    /// </summary>
    /// <param name="path">The .pth file.</param>
    /// <param name="config">The model the file holds, for example <see cref="RmtConfig.Small"/>.</param>
    /// <param name="movingAverage">Load <c>model_ema</c> (the official S, B and L accuracies are the EMA weights') instead of <c>model</c>.</param>
    /// <exception cref="InvalidDataException">The file is no PyTorch checkpoint, holds no RMT weights, or they do not fit <paramref name="config"/>.</exception>
    public static RmtModel LoadPyTorch(string path, RmtConfig config, bool movingAverage = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var tensors = ReadPyTorch(path, movingAverage);
        try
        {
            long values = tensors.Values.Sum(t => t.NumberOfElements);
            if (values < config.ParameterCount)
                throw new InvalidDataException($"'{path}' holds {values:N0} values, but {nameof(config)} needs {config.ParameterCount:N0} parameters: it is another model.");
            return Built(config, tensors, path);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// Overwrites <paramref name="model"/>'s weights from a <c>.pth</c> (as <see cref="LoadPyTorch"/> reads it) or a
    /// safetensors file; a head of another class count is left as it is (returns true then). All or nothing.
    /// </summary>
    internal static bool LoadInto(RmtModel model, string path, bool movingAverage)
    {
        var tensors = IsPyTorchZip(path) ? ReadPyTorch(path, movingAverage) : SafeTensors.Read(path).Tensors;
        try
        {
            return Assign(model, tensors, path, replaceHeadOfOtherClassCount: true);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    // torch.save has written zip archives since PyTorch 1.6; safetensors files start with their header's length.
    private static bool IsPyTorchZip(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        return file.Read(magic) == 4 && magic.SequenceEqual("PK\u0003\u0004"u8);
    }

    /// <summary>The state_dict of a .pth file: the tensors under <c>model</c> or <c>model_ema</c>, or the file itself; the rest is freed.</summary>
    private static Dictionary<string, Tensor> ReadPyTorch(string path, bool movingAverage)
    {
        Hashtable file;
        try
        {
            file = PyTorchUnpickler.UnpickleStateDict(path);
        }
        catch (Exception e) when (e is not FileNotFoundException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"'{path}' is not a PyTorch checkpoint this library reads ({e.GetType().Name}: {e.Message}).", e);
        }
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            string key = movingAverage ? "model_ema" : "model";
            IDictionary weights = file.ContainsKey("model") || file.ContainsKey("model_ema")
                ? file[key] as IDictionary ?? throw new InvalidDataException(
                    $"'{path}' is a training checkpoint, but its '{key}' entry is {Describe(file[key])}, not a state_dict. " +
                    $"Its entries: {string.Join(", ", file.Keys.Cast<object>())}.")
                : file;
            foreach (DictionaryEntry entry in weights)
            {
                if (entry.Value is not Tensor tensor)
                    throw new InvalidDataException($"'{path}': the state_dict entry '{entry.Key}' is {Describe(entry.Value)}, not a tensor; nothing was loaded.");
                tensors[entry.Key.ToString()!] = tensor;
            }
            var kept = new HashSet<object>(tensors.Values, ReferenceEqualityComparer.Instance);
            foreach (var value in file.Values) DisposeTensors(value, kept);
            return tensors;
        }
        catch
        {
            foreach (var value in file.Values) DisposeTensors(value, new HashSet<object>());
            throw;
        }
    }

    private static string Describe(object? value) => value switch
    {
        null => "empty (None)",
        Tensor t => $"a tensor [{string.Join(", ", t.shape)}]",
        IDictionary d => $"a dict of {d.Count}",
        _ => $"a {value.GetType().Name}",
    };

    private static void DisposeTensors(object? value, ISet<object> kept)
    {
        if (value is Tensor tensor && !kept.Contains(tensor)) tensor.Dispose();
        else if (value is IDictionary dictionary) foreach (var item in dictionary.Values) DisposeTensors(item, kept);
        else if (value is IList list) foreach (var item in list) DisposeTensors(item, kept);
    }

    /// <summary>A model of <paramref name="config"/> with the tensors' values, or nothing (the model is disposed) if they don't fit.</summary>
    private static RmtModel Built(RmtConfig config, Dictionary<string, Tensor> tensors, string path)
    {
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

    /// <summary>Copies every tensor after checking that the names and shapes are exactly the model's; returns whether the head was left out.</summary>
    private static bool Assign(RmtModel model, Dictionary<string, Tensor> tensors, string path, bool replaceHeadOfOtherClassCount = false)
    {
        var targets = model.state_dict();
        var source = new Dictionary<string, Tensor>(tensors);
        bool headReplaced = replaceHeadOfOtherClassCount && CheckpointChecks.LeaveOutHeadOfOtherClassCount(source, targets, model.Config.Projection);
        if (CheckpointChecks.Mismatch(targets.ToDictionary(t => t.Key, t => t.Value.shape), source) is { } mismatch)
            throw new InvalidDataException($"'{path}' does not fit an RMT of this config; nothing was loaded. {mismatch}");
        using var noGrad = no_grad();
        foreach (var (name, target) in targets) target.copy_(source[name]);
        return headReplaced;
    }
}
