using Microsoft.ML.Retention.RetentionMath;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// A backbone as the trainer, the transformer and model.zip use it, whatever its architecture: one ML.NET layer serves
/// <see cref="ViRModel"/> and <see cref="RmtModel"/> through this.
/// </summary>
internal interface IVisionBackbone : IDisposable
{
    /// <summary>The model's shape.</summary>
    IVisionBackboneConfig Architecture { get; }

    /// <summary>The model as a TorchSharp module (parameters, state_dict, device, train/eval, save/load).</summary>
    nn.Module Module { get; }

    /// <summary>Class logits [B, NumClasses] for images [B, C, H, W]; backbones with one form ignore <paramref name="retention"/>.</summary>
    Tensor forward(Tensor images, RetentionSettings retention);

    /// <summary>The representation the head reads, [B, EmbeddingDim].</summary>
    Tensor Embed(Tensor images, RetentionSettings retention);

    /// <summary>Class logits from embeddings (the head alone).</summary>
    Tensor Classify(Tensor embedding);

    /// <summary>The names of the parameters AdamW does not decay.</summary>
    IReadOnlySet<string> NoWeightDecay();

    /// <summary>A bfloat16 copy of the weights on the same device, norms in float32; the global random generator is left as it was.</summary>
    IVisionBackbone BFloat16Copy();

    /// <summary>
    /// Loads the weights of a checkpoint file into this model; a head of another class count is left newly initialised.
    /// Returns whether it was. All or nothing otherwise.
    /// </summary>
    bool LoadInitialWeights(string path, bool movingAverage);

    /// <summary>Writes the weights, the config and the class names as safetensors.</summary>
    void SaveWeights(string path, IReadOnlyList<string>? labelNames);
}
