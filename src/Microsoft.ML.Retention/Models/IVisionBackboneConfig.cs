namespace Microsoft.ML.Retention.Models;

/// <summary>
/// What every backbone's config (<see cref="ViRConfig"/>, <see cref="RmtConfig"/>) tells the ML.NET layer: the input
/// it takes, its outputs and its size. A trained transformer's <c>Architecture</c> is one; cast it to the backbone's
/// own config for the rest. Only this library implements it.
/// </summary>
public interface IVisionBackboneConfig
{
    /// <summary>The backbone's name, as model.zip stores it: "ViR" or "RMT".</summary>
    string Backbone { get; }

    /// <summary>Input channels.</summary>
    int Channels { get; }

    /// <summary>The height images are resized to.</summary>
    int ImageHeight { get; }

    /// <summary>The width images are resized to.</summary>
    int ImageWidth { get; }

    /// <summary>Output classes; 0 for a model without a head.</summary>
    int NumClasses { get; }

    /// <summary>The width of the representation the head reads (the embedding column's length).</summary>
    int EmbeddingDim { get; }

    /// <summary>How an image becomes the model's input.</summary>
    ImagePreprocessing Preprocessing { get; }

    /// <summary>Learnable parameters, from the config alone.</summary>
    long ParameterCount { get; }

    /// <summary>The fields by name, as JSON: what a saved model stores.</summary>
    string ToJson();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    void Validate();

    /// <summary>This config with <paramref name="numClasses"/> outputs and <paramref name="channels"/> input channels.</summary>
    internal IVisionBackboneConfig With(int numClasses, int channels);

    /// <summary>A randomly initialised model of this shape (seed it with <c>torch.manual_seed</c>).</summary>
    internal IVisionBackbone Build();
}
