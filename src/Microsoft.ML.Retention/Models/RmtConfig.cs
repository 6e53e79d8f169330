using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The shape of an RMT (Fan et al., "RMT: Retentive Networks Meet Vision Transformers", CVPR 2024), the one
/// description it is built from and saved as (<see cref="ToJson"/>). The presets are the official models, with their
/// parameter counts: <see cref="Tiny"/> (RMT_T3), <see cref="Small"/> (RMT_S), <see cref="Base"/> (RMT_M2) and
/// <see cref="Large"/> (RMT_L6); <see cref="Mini"/> trains on 28×28 grayscale images in minutes on a CPU.
/// </summary>
public sealed record RmtConfig : IVisionBackboneConfig
{
    /// <summary>Input height the model is trained at (any size whose grid survives the stem and three merges works).</summary>
    public int ImageHeight { get; init; } = 224;

    /// <summary>Input width the model is trained at.</summary>
    public int ImageWidth { get; init; } = 224;

    /// <summary>Input channels.</summary>
    public int Channels { get; init; } = 3;

    /// <summary>The four stages, from the stem's 1/4-resolution grid down to 1/32.</summary>
    public IReadOnlyList<RmtStage> Stages { get; init; } = TinyStages;

    private static readonly RmtStage[] TinyStages =
    {
        new(64, 2, 4, 3, 4, Decomposed: true), new(128, 2, 4, 3, 4, Decomposed: true),
        new(256, 8, 8, 3, 6, Decomposed: false), new(512, 2, 16, 3, 6, Decomposed: false),
    };

    /// <summary>a in the decay schedule γ_h = 1 − 2^−(a + r·h/Heads); 2 in every official model.</summary>
    public double InitialValue { get; init; } = 2;

    /// <summary>Stochastic depth of the last block; earlier blocks scale linearly from 0.</summary>
    public double DropPathRate { get; init; } = 0.1;

    /// <summary>Initial layer scale, in the stages that have it.</summary>
    public double LayerScaleInit { get; init; } = 1e-6;

    /// <summary>Width of the head's per-token projection before pooling (Linear, BatchNorm, Swish).</summary>
    public int Projection { get; init; } = 1024;

    /// <summary>Output classes; 0 gives a model without a head.</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>How an image becomes this model's input; the official presets use ImageNet's per-channel mean and deviation.</summary>
    public ImagePreprocessing Preprocessing { get; init; } = ImagePreprocessing.ImageNet;

    /// <summary>RMT-T: 14,334,216 parameters with 1,000 classes (the official RMT_T3).</summary>
    public static RmtConfig Tiny => new() { Stages = TinyStages, DropPathRate = 0.1, Preprocessing = ImagePreprocessing.ImageNet };

    /// <summary>RMT-S: 26,967,240 parameters (RMT_S).</summary>
    public static RmtConfig Small => new()
    {
        Stages = new RmtStage[]
        {
            new(64, 3, 4, 4, 4, Decomposed: true), new(128, 4, 4, 4, 4, Decomposed: true),
            new(256, 18, 8, 3, 6, Decomposed: true), new(512, 4, 16, 3, 6, Decomposed: false),
        },
        DropPathRate = 0.15,
        Preprocessing = ImagePreprocessing.ImageNet,
    };

    /// <summary>RMT-B: 54,154,896 parameters (RMT_M2), layer scale in stages 3 and 4.</summary>
    public static RmtConfig Base => new()
    {
        Stages = new RmtStage[]
        {
            new(80, 4, 5, 4, 5, Decomposed: true), new(160, 8, 5, 4, 5, Decomposed: true),
            new(320, 25, 10, 3, 6, Decomposed: true, LayerScale: true), new(512, 8, 16, 3, 6, Decomposed: false, LayerScale: true),
        },
        DropPathRate = 0.4,
        Preprocessing = ImagePreprocessing.ImageNet,
    };

    /// <summary>RMT-L: 95,464,864 parameters (RMT_L6), layer scale in stages 3 and 4.</summary>
    public static RmtConfig Large => new()
    {
        Stages = new RmtStage[]
        {
            new(112, 4, 7, 4, 6, Decomposed: true), new(224, 8, 7, 4, 6, Decomposed: true),
            new(448, 25, 14, 3, 6, Decomposed: true, LayerScale: true), new(640, 8, 20, 3, 6, Decomposed: false, LayerScale: true),
        },
        DropPathRate = 0.5,
        Preprocessing = ImagePreprocessing.ImageNet,
    };

    /// <summary>
    /// A small RMT for 28×28 grayscale images (grids 7, 4, 2, 1; head width 16), 10 classes, that trains in minutes on
    /// a CPU.
    /// </summary>
    public static RmtConfig Mini => new()
    {
        ImageHeight = 28, ImageWidth = 28, Channels = 1, NumClasses = 10, Projection = 256, DropPathRate = 0.05, Preprocessing = new(),
        Stages = new RmtStage[]
        {
            new(32, 2, 2, 3, 4, Decomposed: true), new(64, 2, 4, 3, 4, Decomposed: false),
            new(128, 4, 8, 3, 6, Decomposed: false), new(256, 1, 16, 3, 6, Decomposed: false),
        },
    };

    /// <summary>The presets by name (case-insensitive): Mini, Tiny, Small, Base and Large.</summary>
    public static IReadOnlyDictionary<string, RmtConfig> Presets { get; } = new Dictionary<string, RmtConfig>(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(Mini)] = Mini, [nameof(Tiny)] = Tiny, [nameof(Small)] = Small, [nameof(Base)] = Base, [nameof(Large)] = Large,
    };

    /// <summary>Learnable parameters, computed from the config alone (buffers such as BatchNorm statistics not counted).</summary>
    [JsonIgnore]
    public long ParameterCount => (long)ParameterCountEstimate();

    private double ParameterCountEstimate()
    {
        double c = Stages[0].Dim, half = Math.Floor(c / 2);
        double Conv3(double inC, double outC) => inC * outC * 9 + outC;
        double stem = Conv3(Channels, half) + 2 * half + Conv3(half, half) + 2 * half + Conv3(half, c) + 2 * c + Conv3(c, c) + 2 * c;
        double total = stem;
        for (int i = 0; i < Stages.Count; i++)
        {
            var s = Stages[i];
            double d = s.Dim, f = Math.Floor(s.MlpRatio * s.Dim);
            double block = (d * 9 + d) + 2 * d + 4 * (d * d + d) + (d * 25 + d) + 2 * d + (d * f + f) + (f * 9 + f) + (f * d + d)
                           + (s.LayerScale ? 2 * d : 0);
            total += s.Depth * block;
            if (i + 1 < Stages.Count) total += Conv3(d, Stages[i + 1].Dim) + 2 * Stages[i + 1].Dim;
        }
        double p = Projection;
        total += Stages[^1].Dim * p + p + 2 * p;
        if (NumClasses > 0) total += p * NumClasses + NumClasses;
        return total;
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        Require(Stages is { Count: 4 }, nameof(Stages), "four stages", Stages?.Count ?? 0);
        for (int i = 0; i < Stages!.Count; i++)
        {
            var s = Stages[i];
            string name = $"{nameof(Stages)}[{i}]";
            Require(s is not null, name, "a stage", "null");
            Require(s!.Heads >= 1 && s.Dim >= 2 && s.Dim % s.Heads == 0 && s.Dim / s.Heads % 2 == 0, $"{name}.{nameof(RmtStage.Dim)}",
                $"a multiple of Heads ({s.Heads}) with an even head width", s.Dim);
            Require(s.Depth >= 1, $"{name}.{nameof(RmtStage.Depth)}", "at least 1", s.Depth);
            Require(Math.Floor(s.MlpRatio * s.Dim) is >= 1 and <= int.MaxValue, $"{name}.{nameof(RmtStage.MlpRatio)}", "a ratio that gives a width from 1", s.MlpRatio);
            Require(double.IsFinite(s.HeadsRange) && s.HeadsRange >= 0, $"{name}.{nameof(RmtStage.HeadsRange)}", "0 or more", s.HeadsRange);
        }
        Require(Stages[0].Dim >= 2 && Stages[0].Dim % 2 == 0, "Stages[0].Dim", "even (the stem halves it)", Stages[0].Dim);
        Require(ImageHeight >= 1 && ImageWidth >= 1, nameof(ImageHeight), "a positive size", $"{ImageHeight}×{ImageWidth}");
        Require(Channels >= 1, nameof(Channels), "at least 1", Channels);
        Require(double.IsFinite(InitialValue) && InitialValue > 0, nameof(InitialValue), "positive", InitialValue);
        Require(DropPathRate is >= 0 and < 1, nameof(DropPathRate), "in [0, 1)", DropPathRate);
        Require(LayerScaleInit > 0, nameof(LayerScaleInit), "positive", LayerScaleInit);
        Require(Projection >= 1, nameof(Projection), "at least 1", Projection);
        Require(NumClasses >= 0, nameof(NumClasses), "0 (no head) or more", NumClasses);
        Require(Preprocessing is not null, nameof(Preprocessing), "an ImagePreprocessing", "null");
        Preprocessing!.Validate(Channels);
        double parameters = ParameterCountEstimate();
        Require(parameters <= ViRLimits.MaxParameters, nameof(ViRLimits.MaxParameters),
            $"a config of at most {ViRLimits.MaxParameters:N0} parameters (ViRLimits.MaxParameters)", $"{parameters:N0} parameters");
    }

    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>The fields by name, as JSON: what a saved model stores.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The config from <see cref="ToJson"/>'s JSON; a field the JSON lacks keeps its default.</summary>
    /// <exception cref="ArgumentException">The JSON is not a config, or a field is invalid.</exception>
    public static RmtConfig FromJson(string json)
    {
        RmtConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<RmtConfig>(json, Json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The model config is not valid JSON for RmtConfig: {e.Message}", nameof(json), e);
        }
        (config ?? throw new ArgumentException("The model config is empty (JSON null).", nameof(json))).Validate();
        return config;
    }

    /// <summary>Equal when every field is, the stages compared one by one.</summary>
    public bool Equals(RmtConfig? other) =>
        other is not null && ImageHeight == other.ImageHeight && ImageWidth == other.ImageWidth && Channels == other.Channels
        && Stages.SequenceEqual(other.Stages) && InitialValue.Equals(other.InitialValue) && DropPathRate.Equals(other.DropPathRate)
        && LayerScaleInit.Equals(other.LayerScaleInit) && Projection == other.Projection && NumClasses == other.NumClasses
        && Equals(Preprocessing, other.Preprocessing);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ImageHeight, ImageWidth, Channels, Stages.Count, Stages[0], Projection, NumClasses);

    string IVisionBackboneConfig.Backbone => "RMT";

    int IVisionBackboneConfig.EmbeddingDim => Projection;

    IVisionBackboneConfig IVisionBackboneConfig.With(int numClasses, int channels) => this with { NumClasses = numClasses, Channels = channels };

    IVisionBackbone IVisionBackboneConfig.Build() => new RmtModel(this);

    private static void Require(bool ok, string field, string expected, object actual)
    {
        if (!ok) throw new ArgumentOutOfRangeException(field, actual, $"RmtConfig.{field} must be {expected}, but it is {actual}.");
    }
}
