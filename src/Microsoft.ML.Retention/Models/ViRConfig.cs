using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The shape of a ViR (or of the ViT baseline with the same dimensions): the one description of a model, from
/// which it is built, which the trainer's options carry, and which a saved model stores as data (<see cref="ToJson"/>).
/// Presets follow the ViR paper: <see cref="Tiny"/>, <see cref="Small"/>, <see cref="Base"/> and <see cref="Large"/>,
/// all with 16×16 patches, plus <see cref="Mini"/>, which trains in minutes on 28×28 images on a CPU. Change single
/// fields with <c>with</c>: <c>ViRConfig.Mini with { Dim = 128 }</c>.
/// </summary>
public sealed record ViRConfig : IVisionBackboneConfig
{
    /// <summary>Input height in pixels the position embedding is laid out for.</summary>
    public int ImageHeight { get; init; } = 224;

    /// <summary>Input width in pixels the position embedding is laid out for.</summary>
    public int ImageWidth { get; init; } = 224;

    /// <summary>Square input size; sets <see cref="ImageHeight"/> and <see cref="ImageWidth"/>.</summary>
    [JsonIgnore]
    public int ImageSize
    {
        get => ImageHeight == ImageWidth ? ImageHeight : throw new InvalidOperationException($"The image is not square: {ImageHeight}×{ImageWidth}.");
        init => ImageHeight = ImageWidth = value;
    }

    /// <summary>Input channels: 3 for RGB, 1 for grayscale.</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Side of the square patches.</summary>
    public int PatchSize { get; init; } = 16;

    /// <summary>How patches become tokens: one p×p projection (ViT, ViR) or a small convolutional stem.</summary>
    public PatchStem Stem { get; init; } = PatchStem.Patchify;

    /// <summary>Token width.</summary>
    public int Dim { get; init; } = 384;

    /// <summary>Number of blocks.</summary>
    public int Depth { get; init; } = 12;

    /// <summary>Number of heads; each retention head has its own decay.</summary>
    public int Heads { get; init; } = 6;

    /// <summary>MLP hidden width as a multiple of <see cref="Dim"/>.</summary>
    public double MlpRatio { get; init; } = 4;

    /// <summary>Dropout after the position embedding and inside the MLPs.</summary>
    public double Dropout { get; init; }

    /// <summary>Stochastic depth rate of the last block; earlier blocks scale linearly from 0.</summary>
    public double DropPath { get; init; } = 0.1;

    /// <summary>Initial LayerScale; 0 turns LayerScale off.</summary>
    public double LayerScaleInit { get; init; } = 1e-5;

    /// <summary>How each retention head's decay is chosen.</summary>
    public DecaySchedule DecaySchedule { get; init; } = DecaySchedule.RetNet;

    /// <summary>
    /// Null (the ViR paper's): each head decays along the raster order, γ^(n − m). Otherwise by the 2-D distance
    /// between patches, γ^(|Δrow| + |Δcolumn|), over the whole grid or its upper-left quadrant
    /// (<see cref="SpatialRetention"/>); the [class] token, last, reads the grid from one place past its last patch.
    /// Every form stays exact: chunkwise becomes tiles, recurrent the quadrant's row-by-row form (or the scan).
    /// A model with a 2-D decay is not streamed band by band.
    /// </summary>
    public SpatialDecayShape? SpatialDecay { get; init; }

    /// <summary>RetNet's GroupNorm on each retention output: every head of every token normalised, without weights.</summary>
    public bool RetentionGroupNorm { get; init; }

    /// <summary>Number of output classes; 0 gives a model without a head.</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>How an image becomes this model's input; the same for training, scoring and every export.</summary>
    public ImagePreprocessing Preprocessing { get; init; } = new();

    /// <summary>Patches per image at the configured resolution.</summary>
    [JsonIgnore]
    public int PatchCount => checked(ImageHeight / PatchSize * (ImageWidth / PatchSize));

    /// <summary>The MLP's hidden width, <see cref="Dim"/> × <see cref="MlpRatio"/> rounded down.</summary>
    [JsonIgnore]
    public int MlpHidden => checked((int)(Dim * MlpRatio));

    /// <summary>
    /// The model's learnable parameters, computed from the config alone (so a model can be refused before it is built).
    /// Buffers (BatchNorm statistics, retention's decays) are not counted.
    /// </summary>
    [JsonIgnore]
    public long ParameterCount => (long)ParameterCountEstimate();

    // In double, so that no config can overflow it; exact below 2^53.
    private double ParameterCountEstimate()
    {
        double d = Dim, hidden = Math.Floor(Dim * MlpRatio), layerScale = LayerScaleInit > 0 ? 2 * d : 0;
        double block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * hidden + hidden) + (hidden * d + d) + layerScale;
        double patches = (double)(ImageHeight / PatchSize) * (ImageWidth / PatchSize);
        double head = NumClasses > 0 ? d * NumClasses + NumClasses : 0;
        return PatchEmbedding.ParameterCount(this) + patches * d + d + Depth * block + 2 * d + head;
    }

    /// <summary>ViR-Ti: dim 192, depth 12, 3 heads.</summary>
    public static ViRConfig Tiny => new() { Dim = 192, Depth = 12, Heads = 3 };

    /// <summary>ViR-S: dim 384, depth 12, 6 heads.</summary>
    public static ViRConfig Small => new() { Dim = 384, Depth = 12, Heads = 6 };

    /// <summary>ViR-B: dim 768, depth 12, 12 heads.</summary>
    public static ViRConfig Base => new() { Dim = 768, Depth = 12, Heads = 12 };

    /// <summary>ViR-L: dim 1024, depth 24, 16 heads.</summary>
    public static ViRConfig Large => new() { Dim = 1024, Depth = 24, Heads = 16 };

    /// <summary>
    /// A small ViR for 28×28 grayscale images (49 patches of 4×4, from a convolutional stem) that trains in
    /// minutes on a CPU.
    /// </summary>
    public static ViRConfig Mini => new()
    {
        ImageSize = 28, Channels = 1, PatchSize = 4, Stem = PatchStem.Convolutional, Dim = 96, Depth = 6, Heads = 3, MlpRatio = 2,
        DropPath = 0.05, LayerScaleInit = 0, NumClasses = 10,
    };

    /// <summary>The presets by name (case-insensitive): Mini, Tiny, Small, Base and Large.</summary>
    public static IReadOnlyDictionary<string, ViRConfig> Presets { get; } = new Dictionary<string, ViRConfig>(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(Mini)] = Mini, [nameof(Tiny)] = Tiny, [nameof(Small)] = Small, [nameof(Base)] = Base, [nameof(Large)] = Large,
    };

    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>The fields by name, as JSON: what a saved model stores.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The config from <see cref="ToJson"/>'s JSON; a field the JSON lacks keeps its default (it was written before the field existed).</summary>
    /// <exception cref="ArgumentException">The JSON is not a config, or a field is invalid.</exception>
    public static ViRConfig FromJson(string json)
    {
        ViRConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<ViRConfig>(json, Json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The model config is not valid JSON for ViRConfig: {e.Message}", nameof(json), e);
        }
        (config ?? throw new ArgumentException("The model config is empty (JSON null).", nameof(json))).Validate();
        return config;
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        Require(PatchSize >= 1, nameof(PatchSize), "at least 1", PatchSize);
        Require(ImageHeight >= PatchSize && ImageHeight % PatchSize == 0, nameof(ImageHeight), $"a positive multiple of PatchSize ({PatchSize})", ImageHeight);
        Require(ImageWidth >= PatchSize && ImageWidth % PatchSize == 0, nameof(ImageWidth), $"a positive multiple of PatchSize ({PatchSize})", ImageWidth);
        Require(Enum.IsDefined(Stem), nameof(Stem), "a defined stem", Stem);
        Require(Stem == PatchStem.Patchify || (PatchSize >= 2 && int.IsPow2(PatchSize)), nameof(PatchSize),
            "a power of two of at least 2 with the convolutional stem", PatchSize);
        Require(Channels >= 1, nameof(Channels), "at least 1", Channels);
        Require(Heads >= 1, nameof(Heads), "at least 1", Heads);
        Require(Dim >= 1 && Dim % Heads == 0, nameof(Dim), $"a positive multiple of Heads ({Heads})", Dim);
        Require(Depth >= 1, nameof(Depth), "at least 1", Depth);
        Require(MlpRatio > 0, nameof(MlpRatio), "greater than 0", MlpRatio);
        Require(Dropout is >= 0 and < 1, nameof(Dropout), "in [0, 1)", Dropout);
        Require(DropPath is >= 0 and < 1, nameof(DropPath), "in [0, 1)", DropPath);
        Require(LayerScaleInit >= 0, nameof(LayerScaleInit), "0 (off) or positive", LayerScaleInit);
        Require(Enum.IsDefined(DecaySchedule), nameof(DecaySchedule), "a defined schedule", DecaySchedule);
        Require(SpatialDecay is null || Enum.IsDefined(SpatialDecay.Value), nameof(SpatialDecay), "null, Bidirectional or CausalQuadrant", SpatialDecay!);
        Require(NumClasses >= 0, nameof(NumClasses), "0 (no head) or more", NumClasses);
        Require(Math.Floor(Dim * MlpRatio) is >= 1 and <= int.MaxValue, nameof(MlpRatio), $"a ratio that gives an MLP width from 1 to {int.MaxValue} at Dim {Dim}", MlpRatio);
        double parameters = ParameterCountEstimate();
        Require(parameters <= ViRLimits.MaxParameters, nameof(ViRLimits.MaxParameters),
            $"a config of at most {ViRLimits.MaxParameters:N0} parameters (ViRLimits.MaxParameters; Dim {Dim}, Depth {Depth}, {ImageHeight}×{ImageWidth} " +
            $"in {PatchSize}×{PatchSize} patches, MlpRatio {MlpRatio}, NumClasses {NumClasses})", $"{parameters:N0} parameters");
        Require(Preprocessing is not null, nameof(Preprocessing), "an ImagePreprocessing", "null");
        Preprocessing!.Validate(Channels);
    }

    string IVisionBackboneConfig.Backbone => "ViR";

    int IVisionBackboneConfig.EmbeddingDim => Dim;

    IVisionBackboneConfig IVisionBackboneConfig.With(int numClasses, int channels) => this with { NumClasses = numClasses, Channels = channels };

    IVisionBackbone IVisionBackboneConfig.Build() => new ViRModel(this);

    private static void Require(bool ok, string field, string expected, object actual)
    {
        if (!ok) throw new ArgumentOutOfRangeException(field, actual, $"ViRConfig.{field} must be {expected}, but it is {actual}.");
    }
}
