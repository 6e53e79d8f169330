using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(ViRImageClassificationTransformer), null, typeof(SignatureLoadModel),
    "ViR Image Classification Transformer", ViRImageClassificationTransformer.LoaderSignature)]

namespace Microsoft.ML.Retention;

/// <summary>
/// Saving into and loading from model.zip through ML.NET's (internal) model repository.
/// The entry holds the configuration, column names, label names and retention settings; the
/// weights go into a binary stream beside it.
/// </summary>
public sealed partial class ViRImageClassificationTransformer
{
    internal const string LoaderSignature = "ViRImageClassifier";
    internal const string WeightsStreamName = "ViRWeights";

    // 0x00010001: configuration, columns, labels, mode, chunk size, batch size; weights in TorchSharp's format.
    // 0x00010002: adds the patch stem after the configuration.
    // 0x00010003: adds the SHA-256 of the weights entry (32 bytes) after the batch size.
    internal const uint FormatVersion = 0x00010003;
    private const uint FirstVersionWithStem = 0x00010002;
    private const uint FirstVersionWithChecksum = 0x00010003;
    private const uint OldestReadableVersion = 0x00010001;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "VIRIMGCL",
        verWrittenCur: FormatVersion,
        verReadableCur: FormatVersion,
        verWeCanReadBack: OldestReadableVersion,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(ViRImageClassificationTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        var w = ctx.Writer;
        var c = Config;
        foreach (int value in new[] { c.ImageHeight, c.ImageWidth, c.Channels, c.PatchSize, c.Dim, c.Depth, c.Heads, (int)c.DecaySchedule, c.NumClasses })
            w.Write(value);
        foreach (double value in new[] { c.MlpRatio, c.Dropout, c.DropPath, c.LayerScaleInit })
            w.Write(value);
        w.Write((int)c.Stem);
        ctx.SaveNonEmptyString(Columns.Features);
        ctx.SaveNonEmptyString(Columns.Score);
        ctx.SaveNonEmptyString(Columns.PredictedLabel);
        ctx.SaveStringOrNull(Columns.Embedding);
        w.Write(LabelNames.Count);
        foreach (var name in LabelNames) ctx.SaveString(name);
        w.Write((int)RetentionMode);
        w.Write(ChunkSize);
        w.Write(BatchSize);
        byte[] checksum = Array.Empty<byte>();
        ctx.SaveBinaryStream(WeightsStreamName, writer =>
        {
            using var hashing = new HashingStream(writer.BaseStream);
            using var hashed = new BinaryWriter(hashing, System.Text.Encoding.UTF8, leaveOpen: true);
            Model.save(hashed);
            hashed.Flush();
            checksum = hashing.Hash();
        });
        w.Write(checksum);
    }

    // Called by ML.NET's loader (LoadableClass above) from mlContext.Model.Load.
    private static ViRImageClassificationTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        uint readable = ctx.Header.ModelVerReadable;
        if (readable > FormatVersion)
            throw new InvalidDataException(
                $"This model was written by a newer Microsoft.ML.Retention: it needs model format 0x{readable:X8}, " +
                $"but this version reads up to 0x{FormatVersion:X8}. Update the Microsoft.ML.Retention package to load it.");
        ctx.CheckAtModel(GetVersionInfo());

        var r = ctx.Reader;
        var config = new ViRConfig
        {
            ImageHeight = r.ReadInt32(), ImageWidth = r.ReadInt32(), Channels = r.ReadInt32(), PatchSize = r.ReadInt32(),
            Dim = r.ReadInt32(), Depth = r.ReadInt32(), Heads = r.ReadInt32(), DecaySchedule = (DecaySchedule)r.ReadInt32(),
            NumClasses = r.ReadInt32(), MlpRatio = r.ReadDouble(), Dropout = r.ReadDouble(), DropPath = r.ReadDouble(),
            LayerScaleInit = r.ReadDouble(),
        };
        if (ctx.Header.ModelVerWritten >= FirstVersionWithStem)
            config = config with { Stem = (PatchStem)r.ReadInt32() };
        var columns = new ViRColumns(ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadStringOrNull());
        var labelNames = Enumerable.Range(0, r.ReadInt32()).Select(_ => ctx.LoadString()).ToArray();
        var mode = (RetentionMode)r.ReadInt32();
        int chunkSize = r.ReadInt32(), batchSize = r.ReadInt32();
        byte[]? checksum = ctx.Header.ModelVerWritten >= FirstVersionWithChecksum ? r.ReadBytes(32) : null;
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The ViR model in this model.zip is damaged: {e.Message}", e);
        }

        var model = new ViRModel(config);
        try
        {
            bool found = ctx.TryLoadBinaryStream(WeightsStreamName, reader =>
            {
                using var hashing = new HashingStream(reader.BaseStream);
                model.load(new BinaryReader(hashing), strict: true);
                hashing.ReadToEnd();
                if (checksum is not null && !hashing.Hash().AsSpan().SequenceEqual(checksum))
                    throw new InvalidDataException(
                        $"The ViR weights in this model.zip do not match the checksum saved with them: the '{WeightsStreamName}' entry " +
                        $"was changed after it was written (SHA-256 {Convert.ToHexString(checksum)} expected, {Convert.ToHexString(hashing.Hash())} found).");
            });
            if (!found)
                throw new InvalidDataException($"This model.zip has no '{WeightsStreamName}' entry beside the ViR model: it is incomplete.");
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            model.Dispose();
            throw new InvalidDataException($"The ViR weights in this model.zip are damaged or truncated: {e.Message}", e);
        }

        var device = env is IHostEnvironmentInternal { GpuDeviceId: not null } && cuda.is_available() ? CUDA : CPU;
        model.to(device);
        return new ViRImageClassificationTransformer(env, model, labelNames, columns, mode, chunkSize, batchSize);
    }
}
