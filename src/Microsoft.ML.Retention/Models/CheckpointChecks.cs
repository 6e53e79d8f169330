using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>What every checkpoint reader checks before it builds or fills a model.</summary>
internal static class CheckpointChecks
{
    /// <summary>
    /// The config in the file's metadata, parsed and validated, and accounted for by the file's own values, so that no
    /// model larger than the file is ever built from it.
    /// </summary>
    public static TConfig Config<TConfig>(Dictionary<string, string> metadata, Dictionary<string, Tensor> tensors, string path,
        Func<string, TConfig> fromJson, Func<TConfig, long> parameterCount, string missingHint)
    {
        if (!metadata.TryGetValue(ViRCheckpoint.ConfigKey, out var json))
            throw new InvalidDataException($"'{path}' has no '{ViRCheckpoint.ConfigKey}' in its metadata, so the model's shape is unknown. {missingHint}");
        TConfig config;
        try
        {
            config = fromJson(json);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{path}' has a config that cannot be used: {e.Message}", e);
        }
        long values = tensors.Values.Sum(t => t.NumberOfElements), needed = parameterCount(config);
        if (values < needed)
            throw new InvalidDataException($"'{path}' holds {values:N0} values, but its config needs {needed:N0} parameters: the file does not match its config.");
        return config;
    }

    /// <summary>Null when the file's tensors are exactly the expected names and shapes; else the message that lists the differences.</summary>
    public static string? Mismatch(IReadOnlyDictionary<string, long[]> expected, IReadOnlyDictionary<string, Tensor> source, Func<string, bool>? mayBeMissing = null)
    {
        var missing = expected.Keys.Where(n => !source.ContainsKey(n) && !(mayBeMissing?.Invoke(n) ?? false)).Select(n => $"{n} [{string.Join(", ", expected[n])}]").ToList();
        var unexpected = source.Keys.Where(n => !expected.ContainsKey(n)).ToList();
        var wrongShape = expected.Where(e => source.TryGetValue(e.Key, out var t) && !t.shape.SequenceEqual(e.Value))
            .Select(e => $"{e.Key}: expected [{string.Join(", ", e.Value)}], actual [{string.Join(", ", source[e.Key].shape)}]").ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count == 0) return null;
        static string First(List<string> names) => names.Count == 0 ? "none" : string.Join("; ", names.Take(8)) + (names.Count > 8 ? $"; … ({names.Count} in all)" : "");
        return $"Wrong shapes: {First(wrongShape)}. Missing: {First(missing)}. Unexpected: {First(unexpected)}.";
    }

    /// <summary>
    /// When the checkpoint's head (<c>head.weight</c> [classes, <paramref name="width"/>] and <c>head.bias</c>) has
    /// another class count than the model's, takes both out of <paramref name="source"/> and <paramref name="targets"/>,
    /// so the model keeps its newly initialised head; returns whether it did.
    /// </summary>
    public static bool LeaveOutHeadOfOtherClassCount(Dictionary<string, Tensor> source, Dictionary<string, Tensor> targets, long width)
    {
        if (!source.TryGetValue("head.weight", out var head) || !targets.TryGetValue("head.weight", out var own)
            || head.dim() != 2 || head.shape[1] != width || head.shape[0] == own.shape[0])
            return false;
        foreach (var name in new[] { "head.weight", "head.bias" })
        {
            source.Remove(name);
            targets.Remove(name);
        }
        return true;
    }
}
