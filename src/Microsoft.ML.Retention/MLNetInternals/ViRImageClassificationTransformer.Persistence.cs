using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(ViRImageClassificationTransformer), null, typeof(SignatureLoadModel),
    "ViR Image Classification Transformer", ViRImageClassificationTransformer.LoaderSignature)]

namespace Microsoft.ML.Retention;

/// <summary>Saving into and loading from model.zip through ML.NET's (internal) model repository.</summary>
public sealed partial class ViRImageClassificationTransformer
{
    internal const string LoaderSignature = "ViRImageClassifier";
    internal const string WeightsStreamName = "ViRWeights";

    // The model entry, format 0x00010005, in order:
    //   backbone     string: "ViR" or "RMT" (IVisionBackboneConfig.Backbone)
    //   config       string: the backbone's config as JSON (ViRConfig or RmtConfig.ToJson), fields by name; a field the JSON lacks gets its default
    //   columns      strings: features, score, predicted label, embedding (or null)
    //   labels       int32 count (the config's NumClasses), then that many strings
    //   retention    int32 mode, int32 chunk size
    //   batch size   int32, 1 to ViRLimits.MaxBatchSize
    //   precision    int32: the ViRPrecision asked for
    //   checksum     32 bytes: SHA-256 of everything above (EntryDigest) and of the ViRWeights entry
    // The ViRWeights entry beside it holds the weights in TorchSharp's format. Loading checks the fields, then reads the
    // weights once to check their size against the config and the checksum, and only then builds the model.
    // Earlier formats, still read: 0x00010001 stored the config as 13 positional numbers and no checksum;
    // 0x00010002 added the patch stem after them; 0x00010003 stored the config as JSON, and a checksum of the weights alone;
    // 0x00010004 had no backbone tag (every model was a ViR).
    // 0x00010006 has 0x00010005's layout; a model whose config uses a field 0x00010005 readers would ignore (a ViR's
    // SpatialDecay or RetentionGroupNorm) is marked readable from 0x00010006 only, so older readers refuse it by name.
    internal const uint FormatVersion = 0x00010006;
    private const uint OldestReadableVersion = 0x00010001;
    private const uint FirstVersionWithStem = 0x00010002;
    private const uint FirstVersionWithJson = 0x00010003;
    private const uint FirstVersionWithEntryDigest = 0x00010004;
    private const uint FirstVersionWithBackbone = 0x00010005;
    private const uint FirstVersionWithDecayShape = 0x00010006;

    private static VersionInfo GetVersionInfo(uint readable = FormatVersion) => new(
        modelSignature: "VIRIMGCL",
        verWrittenCur: FormatVersion,
        verReadableCur: readable,
        verWeCanReadBack: OldestReadableVersion,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(ViRImageClassificationTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ThrowIfDisposed();
        using var use = _shared.Use() ?? throw DisposedError();
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo(Architecture is ViRConfig { SpatialDecay: not null } or ViRConfig { RetentionGroupNorm: true }
            ? FirstVersionWithDecayShape : FirstVersionWithBackbone));
        var w = ctx.Writer;
        ctx.SaveNonEmptyString(Architecture.Backbone);
        ctx.SaveNonEmptyString(Architecture.ToJson());
        ctx.SaveNonEmptyString(Columns.Features);
        ctx.SaveNonEmptyString(Columns.Score);
        ctx.SaveNonEmptyString(Columns.PredictedLabel);
        ctx.SaveStringOrNull(Columns.Embedding);
        w.Write(LabelNames.Count);
        foreach (var name in LabelNames) ctx.SaveString(name);
        w.Write((int)Retention.Mode);
        w.Write(Retention.ChunkSize);
        w.Write(BatchSize);
        w.Write((int)RequestedPrecision);
        using var sha256 = SHA256.Create();
        ctx.SaveBinaryStream(WeightsStreamName, writer =>
        {
            using var hashing = new CryptoStream(writer.BaseStream, sha256, CryptoStreamMode.Write, leaveOpen: true);
            Model.Module.save(new BinaryWriter(hashing));
            hashing.FlushFinalBlock();
        });
        w.Write(EntryDigest(Architecture.Backbone, Architecture.ToJson(), Columns, LabelNames, Retention, BatchSize, RequestedPrecision, sha256.Hash!));
    }

    /// <summary>SHA-256 over the model entry's fields, in a fixed layout, and the weights' SHA-256.</summary>
    private static byte[] EntryDigest(string? backbone, string config, ViRColumns columns, IReadOnlyList<string> labels, RetentionSettings retention, int batchSize,
        ViRPrecision precision, byte[] weightsHash)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            if (backbone is not null) w.Write(backbone); // not in 0x00010004
            foreach (var text in new[] { config, columns.Features, columns.Score, columns.PredictedLabel }) w.Write(text);
            w.Write(columns.Embedding is not null);
            w.Write(columns.Embedding ?? "");
            w.Write(labels.Count);
            foreach (var label in labels) w.Write(label);
            w.Write((int)retention.Mode);
            w.Write(retention.ChunkSize);
            w.Write(batchSize);
            w.Write((int)precision);
            w.Write(weightsHash);
        }
        return SHA256.HashData(buffer.ToArray());
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
        uint written = ctx.Header.ModelVerWritten;
        try
        {
            // Every size is checked before what it sizes is read or allocated.
            var backbone = written >= FirstVersionWithBackbone ? ctx.LoadNonEmptyString() : null;
            var configJson = written >= FirstVersionWithJson ? ctx.LoadNonEmptyString() : null;
            IVisionBackboneConfig config = (backbone ?? "ViR", configJson) switch
            {
                ("ViR", null) => ReadPositionalConfig(r, written >= FirstVersionWithStem),
                ("ViR", var json) => ViRConfig.FromJson(json),
                ("RMT", { } json) => RmtConfig.FromJson(json),
                _ => throw new InvalidDataException($"This model.zip holds a '{backbone}' backbone, but this version of Microsoft.ML.Retention knows ViR and RMT."),
            };
            var columns = new ViRColumns(ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadStringOrNull());
            int labelCount = r.ReadInt32();
            if (labelCount != config.NumClasses)
                throw new InvalidDataException(
                    $"The ViR model in this model.zip is damaged: it stores {labelCount} class names for a head of {config.NumClasses} outputs.");
            var labelNames = new string[labelCount];
            for (int i = 0; i < labelCount; i++) labelNames[i] = ctx.LoadString();
            var retention = new RetentionSettings((RetentionMode)r.ReadInt32(), r.ReadInt32());
            int batchSize = r.ReadInt32();
            if (batchSize < 1 || batchSize > ViRLimits.MaxBatchSize)
                throw new InvalidDataException(
                    $"The model in this model.zip is damaged: its batch size is {batchSize}, but it must be from 1 to {ViRLimits.MaxBatchSize} (ViRLimits.MaxBatchSize).");
            var precision = written >= FirstVersionWithJson ? (ViRPrecision)r.ReadInt32() : ViRPrecision.Float32;
            if (!Enum.IsDefined(precision)) throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown precision.");
            byte[]? checksum = written >= FirstVersionWithJson ? r.ReadBytes(32) : null;

            var (weightsHash, weightsBytes) = ReadWeightsOnce(ctx);
            long needed = config.ParameterCount * sizeof(float);
            if (weightsBytes < needed)
                throw new InvalidDataException(
                    $"The ViR model in this model.zip is damaged: its config needs {needed:N0} bytes of weights ({config.ParameterCount:N0} parameters), " +
                    $"but the '{WeightsStreamName}' entry holds {weightsBytes:N0}.");
            if (checksum is not null)
            {
                byte[] expected = written >= FirstVersionWithEntryDigest
                    ? EntryDigest(backbone, configJson!, columns, labelNames, retention, batchSize, precision, weightsHash)
                    : weightsHash; // 0x00010003: the weights alone
                if (!expected.AsSpan().SequenceEqual(checksum))
                    throw new InvalidDataException(
                        $"This model.zip does not match the checksum saved with it: its ViR model entry or its '{WeightsStreamName}' entry was changed " +
                        $"after it was written (SHA-256 {Convert.ToHexString(checksum)} expected, {Convert.ToHexString(expected)} found).");
            }

            var model = LoadWeights(ctx, config);
            var device = env is IHostEnvironmentInternal { GpuDeviceId: not null } && cuda.is_available() ? CUDA : CPU;
            model.Module.to(device);
            return new ViRImageClassificationTransformer(env, model, labelNames, columns, retention, precision, batchSize);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The ViR model in this model.zip is damaged: {e.Message}", e);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"The ViR model in this model.zip is truncated: {e.Message}", e);
        }
    }

    /// <summary>The config of formats 0x00010001 and 0x00010002: 13 numbers in a fixed order, then (0x00010002) the stem; validated.</summary>
    private static ViRConfig ReadPositionalConfig(BinaryReader r, bool hasStem)
    {
        var config = new ViRConfig
        {
            ImageHeight = r.ReadInt32(), ImageWidth = r.ReadInt32(), Channels = r.ReadInt32(), PatchSize = r.ReadInt32(),
            Dim = r.ReadInt32(), Depth = r.ReadInt32(), Heads = r.ReadInt32(), DecaySchedule = (DecaySchedule)r.ReadInt32(),
            NumClasses = r.ReadInt32(), MlpRatio = r.ReadDouble(), Dropout = r.ReadDouble(), DropPath = r.ReadDouble(),
            LayerScaleInit = r.ReadDouble(),
        };
        config = hasStem ? config with { Stem = (PatchStem)r.ReadInt32() } : config;
        config.Validate();
        return config;
    }

    /// <summary>The SHA-256 and length of the ViRWeights entry, read once without keeping it.</summary>
    private static (byte[] Hash, long Bytes) ReadWeightsOnce(ModelLoadContext ctx)
    {
        byte[]? hash = null;
        long bytes = 0;
        bool found = ctx.TryLoadBinaryStream(WeightsStreamName, reader =>
        {
            using var sha256 = SHA256.Create();
            var buffer = new byte[1 << 16];
            int read;
            while ((read = reader.BaseStream.Read(buffer, 0, buffer.Length)) > 0)
            {
                sha256.TransformBlock(buffer, 0, read, null, 0);
                bytes += read;
            }
            sha256.TransformFinalBlock(buffer, 0, 0);
            hash = sha256.Hash;
        });
        if (!found)
            throw new InvalidDataException($"This model.zip has no '{WeightsStreamName}' entry beside the ViR model: it is incomplete.");
        return (hash!, bytes);
    }

    private static IVisionBackbone LoadWeights(ModelLoadContext ctx, IVisionBackboneConfig config)
    {
        var model = config.Build();
        try
        {
            ctx.TryLoadBinaryStream(WeightsStreamName, reader => model.Module.load(reader, strict: true));
            return model;
        }
        catch (Exception e)
        {
            model.Dispose();
            if (e is InvalidDataException) throw;
            throw new InvalidDataException($"The ViR weights in this model.zip are damaged or truncated: {e.Message}", e);
        }
    }
}
