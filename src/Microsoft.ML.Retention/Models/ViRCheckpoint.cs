using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// A <see cref="ViRModel"/>'s weights as safetensors, with timm's VisionTransformer tensor names, so that PyTorch code
/// (this repository's <c>python/vir</c> twin, or timm) reads and writes them. The config travels in the metadata.
/// <para>
/// Names: <c>patch_embed.proj.*</c> (the patchify convolution, or the convolutional stem's closing projection),
/// <c>patch_embed.stem.{j}.conv.weight</c> and <c>patch_embed.stem.{j}.bn.*</c> (the convolutional stem),
/// <c>pos_embed</c> (patches only), <c>cls_token</c>, <c>blocks.{i}.norm1.*</c>, <c>blocks.{i}.attn.qkv.*</c>,
/// <c>blocks.{i}.attn.proj.*</c>, <c>blocks.{i}.attn.decay</c> (each head's γ, fixed by the config),
/// <c>blocks.{i}.ls1.gamma</c>, <c>blocks.{i}.norm2.*</c>, <c>blocks.{i}.mlp.fc1.*</c>, <c>blocks.{i}.mlp.fc2.*</c>,
/// <c>blocks.{i}.ls2.gamma</c>, <c>norm.*</c>, <c>head.*</c>.
/// </para>
/// <para>
/// A timm ViT checkpoint (its <c>pos_embed</c> has a row for the [class] token, which comes first) loads too: the class
/// position embedding is added to the class token, which a ViR appends last, and the decays come from the config.
/// </para>
/// </summary>
public static class ViRCheckpoint
{
    /// <summary>The metadata keys: the format tag, the config as JSON, and the class names as a JSON array.</summary>
    public const string FormatKey = "format", ConfigKey = "config", LabelsKey = "labels";

    /// <summary>The value of the format tag this library writes.</summary>
    public const string Format = "vir-safetensors-1";

    /// <summary>Writes the model's weights, its config and (if given) the class names, in safetensors.</summary>
    public static void Save(ViRModel model, string path, IReadOnlyList<string>? labelNames = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, tensor) in model.state_dict())
            if (CheckpointName(name) is { } exported) tensors[exported] = tensor;
        foreach (var (name, decay) in Decays(model)) tensors[name] = decay;
        var metadata = new Dictionary<string, string> { [FormatKey] = Format, [ConfigKey] = model.Config.ToJson() };
        if (labelNames is not null) metadata[LabelsKey] = JsonSerializer.Serialize(labelNames);
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>A model built from the config in the checkpoint's metadata, with its weights.</summary>
    /// <param name="path">A safetensors file written by <see cref="Save"/> or the PyTorch twin.</param>
    /// <param name="labelNames">The class names in the metadata, or null when it has none.</param>
    /// <exception cref="InvalidDataException">The file has no config, or a tensor is missing, unexpected or of the wrong shape.</exception>
    public static ViRModel Load(string path, out IReadOnlyList<string>? labelNames)
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        try
        {
            var config = CheckpointChecks.Config(metadata, tensors, path, ViRConfig.FromJson, c => c.ParameterCount,
                "Use LoadVisionTransformer with a ViRConfig for checkpoints from elsewhere.");
            labelNames = Labels(metadata, path);
            var model = new ViRModel(config);
            try
            {
                Assign(model, tensors, path, replaceHeadOfOtherClassCount: false);
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

    /// <summary>
    /// A ViR of <paramref name="config"/> initialised from a checkpoint with the ViT (timm) or ViR layout: every weight
    /// is taken, the token mixer's qkv and proj included. The head is taken when its class count is
    /// <paramref name="config"/>'s NumClasses, and newly initialised otherwise (<paramref name="headReplaced"/> says which).
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or of the wrong shape for <paramref name="config"/>.</exception>
    public static ViRModel LoadVisionTransformer(string path, ViRConfig config, out bool headReplaced)
    {
        ArgumentNullException.ThrowIfNull(config);
        var model = new ViRModel(config);
        try
        {
            headReplaced = LoadInto(model, path);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Overwrites <paramref name="model"/>'s weights from a ViR or ViT checkpoint; a head of another class count is left as it is (returns true then).</summary>
    internal static bool LoadInto(ViRModel model, string path)
    {
        var (tensors, _) = SafeTensors.Read(path);
        try
        {
            return Assign(model, tensors, path, replaceHeadOfOtherClassCount: true);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    internal static IReadOnlyList<string>? Labels(Dictionary<string, string> metadata, string path)
    {
        if (!metadata.TryGetValue(LabelsKey, out var json)) return null;
        try
        {
            return JsonSerializer.Deserialize<string[]>(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}': the '{LabelsKey}' metadata must be a JSON array of class names, but it is {json}.", e);
        }
    }

    /// <summary>Copies the checkpoint's tensors into the model after checking every name and shape; returns whether the head was left out.</summary>
    private static bool Assign(ViRModel model, Dictionary<string, Tensor> tensors, string path, bool replaceHeadOfOtherClassCount)
    {
        using var scope = NewDisposeScope();
        var config = model.Config;
        var targets = new Dictionary<string, Tensor>();
        foreach (var (name, tensor) in model.state_dict())
            if (CheckpointName(name) is { } exported) targets[exported] = tensor;
        var decays = Decays(model);

        // The ViT layout: the [class] token first, with a position of its own. Fold it into the token and drop the row.
        var source = new Dictionary<string, Tensor>(tensors);
        bool vit = source.TryGetValue("pos_embed", out var pos) && pos.dim() == 3 && pos.shape[1] == config.PatchCount + 1 && source.ContainsKey("cls_token");
        if (vit)
        {
            source["cls_token"] = source["cls_token"] + pos!.narrow(1, 0, 1);
            source["pos_embed"] = pos!.narrow(1, 1, config.PatchCount);
        }

        bool headReplaced = replaceHeadOfOtherClassCount && CheckpointChecks.LeaveOutHeadOfOtherClassCount(source, targets, config.Dim);

        var expected = targets.ToDictionary(t => t.Key, t => t.Value.shape);
        foreach (var (name, decay) in decays) expected[name] = decay.shape;
        if (CheckpointChecks.Mismatch(expected, source, n => vit && decays.ContainsKey(n)) is { } mismatch)
            throw new InvalidDataException(
                $"'{path}' does not fit a ViR of this config (Dim {config.Dim}, Depth {config.Depth}, Heads {config.Heads}, {config.ImageHeight}×{config.ImageWidth}, " +
                $"PatchSize {config.PatchSize}, Stem {config.Stem}, NumClasses {config.NumClasses}); nothing was loaded. {mismatch}");
        foreach (var (name, decay) in decays)
        {
            if (!source.TryGetValue(name, out var stored)) continue;
            double difference = (stored.to(float32) - decay).abs().max().ToDouble();
            if (difference > 1e-6)
                throw new InvalidDataException($"'{path}': {name} is [{string.Join(", ", stored.to(float32).data<float>().ToArray())}], but the config's " +
                    $"DecaySchedule {config.DecaySchedule} gives [{string.Join(", ", decay.data<float>().ToArray())}]; nothing was loaded.");
        }

        using var noGrad = no_grad();
        foreach (var (name, target) in targets) target.copy_(source[name]);
        return headReplaced;
    }

    /// <summary>Each block's decays, as the checkpoint names them.</summary>
    private static Dictionary<string, Tensor> Decays(ViRModel model) =>
        Enumerable.Range(0, model.Config.Depth).ToDictionary(i => $"blocks.{i}.attn.decay",
            i => tensor(RetentionMath.DecaySchedules.Gammas(model.Config.DecaySchedule, model.Config.Heads)));

    private static readonly Regex StemLayer = new(@"^patch_embed\.proj\.(\d+)\.(.+)$", RegexOptions.Compiled);
    private static readonly Regex Mixer = new(@"^blocks\.(\d+)\.mixer\.", RegexOptions.Compiled);

    /// <summary>The checkpoint name of a state-dict entry, or null for bookkeeping that is not a weight (BatchNorm's batch count).</summary>
    internal static string? CheckpointName(string name)
    {
        if (name.EndsWith("num_batches_tracked", StringComparison.Ordinal)) return null;
        // The convolutional stem is a Sequential of (convolution, BatchNorm, ReLU) per stage.
        var stem = StemLayer.Match(name);
        if (stem.Success)
        {
            int layer = int.Parse(stem.Groups[1].Value);
            return $"patch_embed.stem.{layer / 3}.{(layer % 3 == 0 ? "conv" : "bn")}.{stem.Groups[2].Value}";
        }
        if (name.StartsWith("patch_embed.pointwise.", StringComparison.Ordinal)) return "patch_embed.proj." + name["patch_embed.pointwise.".Length..];
        return Mixer.Replace(name, "blocks.$1.attn.");
    }
}
