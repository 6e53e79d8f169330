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

    // The model entry, format 0x00010003, in order:
    //   config       string: ViRConfig.ToJson(), its fields by name (a field the JSON lacks gets its default)
    //   columns      strings: features, score, predicted label, embedding (or null)
    //   labels       int32 count, then that many strings
    //   retention    int32 mode, int32 chunk size
    //   batch size   int32
    //   precision    int32: the ViRPrecision asked for
    //   checksum     32 bytes: SHA-256 of the ViRWeights entry
    // The ViRWeights entry beside it holds the weights in TorchSharp's format.
    // Earlier formats, still read: 0x00010001 stored the config as 13 positional numbers and no checksum;
    // 0x00010002 added the patch stem after them.
    internal const uint FormatVersion = 0x00010003;
    private const uint OldestReadableVersion = 0x00010001;
    private const uint FirstVersionWithStem = 0x00010002;

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
        ctx.SaveNonEmptyString(Config.ToJson());
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
            Model.save(new BinaryWriter(hashing));
            hashing.FlushFinalBlock();
        });
        w.Write(sha256.Hash!);
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
        bool current = ctx.Header.ModelVerWritten >= FormatVersion;
        ViRConfig config;
        RetentionSettings retention;
        try
        {
            config = current ? ViRConfig.FromJson(ctx.LoadNonEmptyString()) : ReadPositionalConfig(r, ctx.Header.ModelVerWritten >= FirstVersionWithStem);
            var columns = new ViRColumns(ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadStringOrNull());
            var labelNames = Enumerable.Range(0, r.ReadInt32()).Select(_ => ctx.LoadString()).ToArray();
            retention = new RetentionSettings((RetentionMode)r.ReadInt32(), r.ReadInt32());
            int batchSize = r.ReadInt32();
            var precision = current ? (ViRPrecision)r.ReadInt32() : ViRPrecision.Float32;
            if (!Enum.IsDefined(precision)) throw new ArgumentOutOfRangeException(nameof(precision), precision, "Unknown precision.");
            byte[]? checksum = current ? r.ReadBytes(32) : null;
            config.Validate();
            var model = LoadWeights(ctx, config, checksum);
            var device = env is IHostEnvironmentInternal { GpuDeviceId: not null } && cuda.is_available() ? CUDA : CPU;
            model.to(device);
            return new ViRImageClassificationTransformer(env, model, labelNames, columns, retention, precision, batchSize);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The ViR model in this model.zip is damaged: {e.Message}", e);
        }
    }

    /// <summary>The config of formats 0x00010001 and 0x00010002: 13 numbers in a fixed order, then (0x00010002) the stem.</summary>
    private static ViRConfig ReadPositionalConfig(BinaryReader r, bool hasStem)
    {
        var config = new ViRConfig
        {
            ImageHeight = r.ReadInt32(), ImageWidth = r.ReadInt32(), Channels = r.ReadInt32(), PatchSize = r.ReadInt32(),
            Dim = r.ReadInt32(), Depth = r.ReadInt32(), Heads = r.ReadInt32(), DecaySchedule = (DecaySchedule)r.ReadInt32(),
            NumClasses = r.ReadInt32(), MlpRatio = r.ReadDouble(), Dropout = r.ReadDouble(), DropPath = r.ReadDouble(),
            LayerScaleInit = r.ReadDouble(),
        };
        return hasStem ? config with { Stem = (PatchStem)r.ReadInt32() } : config;
    }

    private static ViRModel LoadWeights(ModelLoadContext ctx, ViRConfig config, byte[]? checksum)
    {
        var model = new ViRModel(config);
        try
        {
            bool found = ctx.TryLoadBinaryStream(WeightsStreamName, reader =>
            {
                using var sha256 = SHA256.Create();
                using var hashing = new CryptoStream(reader.BaseStream, sha256, CryptoStreamMode.Read, leaveOpen: true);
                model.load(new BinaryReader(hashing), strict: true);
                hashing.CopyTo(Stream.Null); // what the load left, so the hash covers the whole entry
                if (checksum is not null && !sha256.Hash.AsSpan().SequenceEqual(checksum))
                    throw new InvalidDataException(
                        $"The ViR weights in this model.zip do not match the checksum saved with them: the '{WeightsStreamName}' entry " +
                        $"was changed after it was written (SHA-256 {Convert.ToHexString(checksum)} expected, {Convert.ToHexString(sha256.Hash!)} found).");
            });
            if (!found)
                throw new InvalidDataException($"This model.zip has no '{WeightsStreamName}' entry beside the ViR model: it is incomplete.");
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
