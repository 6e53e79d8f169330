using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Retention.Benchmarks;

/// <summary>Sizes for a full run, or tiny ones for the CI smoke run.</summary>
public sealed record BenchmarkSettings
{
    public bool Smoke { get; init; }
    public double BudgetSeconds { get; init; } = 10;
    public int KernelBatch { get; init; } = 8;
    public long[] KernelLengths { get; init; } = { 197, 577, 1025, 4097, 16385 };
    public int[] ChunkSizes { get; init; } = { 32, 64, 128, 256 };
    public int[] ChunkSweep { get; init; } = { 16, 32, 64, 128, 256, 512 };
    public long MaxKernelBytes { get; init; } = 12L << 30;
    public long MaxRecurrentLength { get; init; } = 16385;
    public string ModelName { get; init; } = "ViR-Ti vs ViT-Ti";
    public ViRConfig ModelConfig { get; init; } = ViRConfig.Tiny;
    public int[] Resolutions { get; init; } = { 224, 384, 512, 768, 1024, 2048 };
    public int[] StreamingSizes { get; init; } = { 1024, 2048, 4096, 8192 };
    /// <summary>Image files the streaming suite classifies, each in a fresh process (made by the sample's make-image).</summary>
    public string[] StreamingImages { get; init; } = Array.Empty<string>();
    /// <summary>
    /// The spatial suite's square token grids (sides), its tile sides, and the largest grid its row-by-row recurrent form
    /// runs on. Not 224²: the tiled bidirectional form there was killed at this machine's 24 GB (docs/benchmarks.md).
    /// </summary>
    public int[] SpatialGrids { get; init; } = { 56, 112 };
    public int[] SpatialTiles { get; init; } = { 8, 16 };
    public int MaxSpatialRecurrentSide { get; init; } = 112;
    public int MaxQuadraticResolution { get; init; } = 1024;
    public int MaxViTResolutionAtBatch1 { get; init; } = 2048;
    public int[] ModelBatches { get; init; } = { 1, 8 };
    public int ModelChunkSize { get; init; } = Microsoft.ML.Retention.RetentionMath.ChunkSizes.Auto;
    public (string Name, ViRConfig Config, int Batch, RetentionSettings Retention)[] PrecisionCases { get; init; } =
    {
        ("ViR-Ti", ViRConfig.Tiny, 8, new RetentionSettings(RetentionMode.Parallel)),
        ("ViR-Ti", ViRConfig.Tiny with { ImageSize = 512 }, 8, new RetentionSettings(RetentionMode.Chunkwise)),
    };
    public (string Name, ViRConfig Config, int Batch, RetentionSettings Retention)[] OnnxCases { get; init; } =
    {
        ("ViR-Mini", ViRConfig.Mini, 1, new RetentionSettings(RetentionMode.Parallel)),
        ("ViR-Mini", ViRConfig.Mini, 8, new RetentionSettings(RetentionMode.Parallel)),
        ("ViR-Ti", ViRConfig.Tiny, 1, new RetentionSettings(RetentionMode.Parallel)),
        ("ViR-Ti", ViRConfig.Tiny, 8, new RetentionSettings(RetentionMode.Parallel)),
        ("ViR-Ti", ViRConfig.Tiny with { ImageSize = 512 }, 1, new RetentionSettings(RetentionMode.Chunkwise)),
    };
    public (string Name, ViRConfig Config, int Batch)[] TrainingModels { get; init; } =
    {
        ("ViR-Mini 28²", ViRConfig.Mini, 64),
        ("ViR-Ti 224²", ViRConfig.Tiny, 8),
    };

    /// <summary>Tiny sizes that exercise every suite in seconds.</summary>
    public static BenchmarkSettings SmokeTest => new()
    {
        Smoke = true,
        BudgetSeconds = 0.2,
        KernelBatch = 1,
        KernelLengths = new long[] { 17, 65 },
        ChunkSizes = new[] { 8, 32 },
        ChunkSweep = new[] { 8, 16 },
        ModelName = "tiny ViR vs ViT",
        ModelConfig = ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 },
        Resolutions = new[] { 28, 56 },
        StreamingSizes = new[] { 64 },
        SpatialGrids = new[] { 6, 9 },
        SpatialTiles = new[] { 2, 4 },
        MaxSpatialRecurrentSide = 9,
        MaxQuadraticResolution = 28,
        MaxViTResolutionAtBatch1 = 56,
        ModelBatches = new[] { 1, 2 },
        ModelChunkSize = 16,
        TrainingModels = new[] { ("tiny ViR 28²", ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, 4) },
        PrecisionCases = new[] { ("tiny ViR", ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, 2, new RetentionSettings(RetentionMode.Chunkwise, 16)) },
        OnnxCases = new[] { ("tiny ViR", ViRConfig.Mini with { Dim = 24, Heads = 2, Depth = 1 }, 1, new RetentionSettings(RetentionMode.Chunkwise, 16)) },
    };
}
