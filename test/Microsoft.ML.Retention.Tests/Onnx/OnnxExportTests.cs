using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.Onnx;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>ONNX export: ONNX Runtime and ML.NET's ApplyOnnxModel score as the TorchSharp model does.</summary>
[TestClass]
public sealed class OnnxExportTests
{
    private static string TempFile() => Path.Combine(Path.GetTempPath(), $"vir-{Guid.NewGuid():N}.onnx");

    /// <summary>Real Fashion-MNIST test images [count, channels, size, size] in [-1, 1], resized as the library resizes.</summary>
    private static Tensor RealImages(int count, int channels, int size)
    {
        var images = FashionMnist.Tensors("test", count).Images;
        if (size != 28)
            images = nn.functional.interpolate(images, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
        return images.expand(count, channels, size, size).contiguous();
    }

    private static float[] OnnxRuntime(string path, Tensor images, string output = "probabilities")
    {
        using var session = new InferenceSession(path);
        var input = new DenseTensor(images.data<float>().ToArray(), images.shape.Select(d => (int)d).ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("images", input) });
        return results.First(r => r.Name == output).AsEnumerable<float>().ToArray();
    }

    [TestMethod]
    [DataRow(224)]
    [DataRow(160)]
    public void OnnxRuntimeScoresAnRmtAsTheModelDoes(int size)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // RMT-T with layer scale in stage 3 and BatchNorm statistics that are not the identity, so every part shows.
        var config = RmtConfig.Tiny with { NumClasses = 10, Stages = RmtConfig.Tiny.Stages.Select((s, i) => i == 2 ? s with { LayerScale = true } : s).ToArray(), LayerScaleInit = 0.5 };
        using var model = new RmtModel(config);
        using (var noGrad = no_grad())
            foreach (var (name, buffer) in model.named_buffers())
                if (name.EndsWith("running_mean", StringComparison.Ordinal)) buffer.uniform_(-0.2, 0.2);
                else if (name.EndsWith("running_var", StringComparison.Ordinal)) buffer.uniform_(0.5, 1.5);
        model.eval();
        string path = TempFile();
        try
        {
            RmtOnnxExport.Export(model, path, Enumerable.Range(0, 10).Select(i => $"class {i}").ToArray(), imageSize: size, includeEmbedding: true,
                input: OnnxImageInput.Images);
            foreach (int batch in new[] { 1, 2 })
            {
                var images = RealImages(batch, 3, size);
                using var noGrad = no_grad();
                var expected = nn.functional.softmax(model.forward(images), 1);
                var embedding = model.Embed(images);
                double probabilities = (tensor(OnnxRuntime(path, images)).view(batch, 10) - expected).abs().max().ToDouble();
                double embeddings = (tensor(OnnxRuntime(path, images, "embedding")).view(batch, -1) - embedding).abs().max().ToDouble() / embedding.abs().max().ToDouble();
                Console.WriteLine($"RMT-T {size}², batch {batch}: max |Δprobability| {probabilities:G3}, embedding {embeddings:G3} of its largest value");
                Assert.IsTrue(probabilities < 1e-4 && embeddings < 1e-4, $"{size}², batch {batch}: {probabilities:G3}, {embeddings:G3}");
            }
            using var session = new InferenceSession(path);
            Assert.AreEqual("RMT", session.ModelMetadata.CustomMetadataMap[ViROnnxExport.BackboneKey]);
            Assert.AreEqual(config, RmtConfig.FromJson(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.ConfigKey]));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    [DataRow("Mini", 28, RetentionMode.Parallel)]
    [DataRow("Mini", 28, RetentionMode.Chunkwise)]
    [DataRow("Mini", 56, RetentionMode.Parallel)]
    [DataRow("Mini", 56, RetentionMode.Chunkwise)]
    [DataRow("Tiny", 224, RetentionMode.Chunkwise)]
    [DataRow("Tiny", 224, RetentionMode.Parallel)]
    [DataRow("Tiny", 320, RetentionMode.Chunkwise)]
    public void OnnxRuntimeScoresAsTheModelDoesAtBatchOneAndEight(string preset, int size, RetentionMode mode)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // Random weights but for the trained statistics' stand-ins: LayerScale on, so every weight shows in the output.
        using var model = new ViRModel(ViRConfig.Presets[preset] with { NumClasses = 10, LayerScaleInit = 0.5 });
        model.eval();
        var config = model.Config;
        var retention = new RetentionSettings(mode, 32);
        string path = TempFile();
        try
        {
            ViROnnxExport.Export(model, path, Enumerable.Range(0, 10).Select(i => $"class {i}").ToArray(), retention, imageSize: size, includeEmbedding: true,
                input: OnnxImageInput.Images);
            foreach (int batch in new[] { 1, 8 })
            {
                var images = RealImages(batch, config.Channels, size);
                using var noGrad = no_grad();
                var expected = nn.functional.softmax(model.forward(images, retention), 1).data<float>().ToArray();
                var actual = OnnxRuntime(path, images);
                Assert.AreEqual(expected.Length, actual.Length);
                double difference = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
                Console.WriteLine($"{preset} {size}² {mode}, batch {batch}: max |Δprobability| {difference:G3}");
                Assert.IsTrue(difference < 1e-4, $"{preset} {size}² {mode} batch {batch}: {difference:G3}");

                var embedding = OnnxRuntime(path, images, "embedding");
                var expectedEmbedding = model.Embed(images, retention).data<float>().ToArray();
                double embeddingDifference = expectedEmbedding.Zip(embedding).Max(p => Math.Abs(p.First - p.Second));
                Assert.IsTrue(embeddingDifference < 1e-3, $"embedding: {embeddingDifference:G3}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    [DataRow(SpatialDecayShape.Bidirectional, 28, RetentionMode.Parallel, 0)]
    [DataRow(SpatialDecayShape.Bidirectional, 36, RetentionMode.Chunkwise, 16)]
    [DataRow(SpatialDecayShape.Bidirectional, 56, RetentionMode.Chunkwise, 0)]
    [DataRow(SpatialDecayShape.CausalQuadrant, 28, RetentionMode.Parallel, 0)]
    [DataRow(SpatialDecayShape.CausalQuadrant, 44, RetentionMode.Chunkwise, 16)]
    [DataRow(SpatialDecayShape.CausalQuadrant, 56, RetentionMode.Chunkwise, 36)]
    public void OnnxRuntimeScoresAViRWithA2DDecayAsTheModelDoes(SpatialDecayShape shape, int size, RetentionMode mode, int chunk)
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        // Strong decays, LayerScale on and RetNet's GroupNorm, so the decay and the norm show in the output.
        using var model = new ViRModel(ViRConfig.Mini with { LayerScaleInit = 0.5, SpatialDecay = shape, DecaySchedule = DecaySchedule.Rmt, RetentionGroupNorm = true });
        model.eval();
        var retention = new RetentionSettings(mode, chunk);
        long grid = size / 4;
        int side = SpatialRetention.TileSide(chunk, grid * grid);
        string path = TempFile();
        try
        {
            ViROnnxExport.Export(model, path, null, retention, imageSize: size, includeEmbedding: true, input: OnnxImageInput.Images);
            foreach (int batch in new[] { 1, 3 })
            {
                var images = RealImages(batch, 1, size);
                using var noGrad = no_grad();
                var expected = nn.functional.softmax(model.forward(images, retention), 1);
                var embedding = model.Embed(images, retention);
                double probabilities = (tensor(OnnxRuntime(path, images)).view(batch, -1) - expected).abs().max().ToDouble();
                double embeddings = (tensor(OnnxRuntime(path, images, "embedding")).view(batch, -1) - embedding).abs().max().ToDouble() / embedding.abs().max().ToDouble();
                Console.WriteLine($"{shape} {size}² {mode} (tiles {side}² of {grid}²), batch {batch}: max |Δprobability| {probabilities:G3}, embedding {embeddings:G3}");
                Assert.IsTrue(probabilities < 1e-4 && embeddings < 1e-4, $"{shape} {size}² {mode} batch {batch}: {probabilities:G3}, {embeddings:G3}");
            }
            using var session = new InferenceSession(path);
            StringAssert.Contains(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.RetentionKey],
                mode == RetentionMode.Parallel ? $"Parallel, 2-D decay {shape} on a {grid}×{grid} grid" : $"Chunkwise, 2-D decay {shape} in tiles of {side}² patches on a {grid}×{grid} grid");
            Assert.AreEqual(model.Config, ViRConfig.FromJson(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.ConfigKey]));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ApplyOnnxModelOnPixelsScoresAsTheTransformerInEitherForm()
    {
        var ml = new MLContext(seed: 1);
        using var trained = TinyFit.Fit(ml, TinyFit.Images(ml, 20), o => { o.Architecture = ViRConfig.Mini with { Depth = 2 }; o.MaxEpoch = 3; });
        var test = FashionMnist.Load(ml, "test", 5);
        var expected = trained.Transform(FashionMnist.Preprocess(ml).Fit(test).Transform(test)).GetColumn<float[]>("Score").ToArray();

        foreach (var mode in new[] { RetentionMode.Parallel, RetentionMode.Chunkwise })
        {
            string path = TempFile();
            try
            {
                trained.ExportToOnnx(path, mode, chunkSize: 16);
                // The documented path (README, the ONNX sample): ApplyOnnxModel on each image's pixels.
                using var classifier = new ViRImageClassification.Onnx.OnnxImageClassifier(new MLContext(), path);
                var scores = test.GetColumn<string>("ImagePath").Select(p => classifier.Probabilities(Path.Combine(FashionMnist.Root, p))).ToArray();
                Assert.AreEqual(expected.Length, scores.Length);
                double difference = expected.Zip(scores).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
                Console.WriteLine($"ApplyOnnxModel {mode}: max |Δprobability| against the transformer {difference:G3}");
                Assert.IsTrue(difference < 1e-4, $"{mode}: {difference:G3}");

                using var session = new InferenceSession(path);
                var labels = JsonSerializer.Deserialize<string[]>(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.LabelsKey])!;
                CollectionAssert.AreEqual(trained.LabelNames.ToArray(), labels);
                StringAssert.Contains(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.RetentionKey], mode.ToString());
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    [TestMethod]
    public void TheTransformerAndTheExporterWriteTheSameFormByDefault()
    {
        var ml = new MLContext(seed: 1);
        using var model = TinyFit.Fit(ml, TinyFit.Images(ml, 2));
        string fromTransformer = TempFile(), fromExporter = TempFile();
        try
        {
            model.ExportToOnnx(fromTransformer);
            ViROnnxExport.Export((ViRModel)model.Model, fromExporter, model.LabelNames);
            using var session = new InferenceSession(fromExporter);
            StringAssert.StartsWith(session.ModelMetadata.CustomMetadataMap[ViROnnxExport.RetentionKey], ViROnnxExport.DefaultMode.ToString());
            CollectionAssert.AreEqual(File.ReadAllBytes(fromTransformer), File.ReadAllBytes(fromExporter));
        }
        finally
        {
            File.Delete(fromTransformer);
            File.Delete(fromExporter);
        }
    }

    [TestMethod]
    [DataRow(RetentionMode.Parallel)]
    [DataRow(RetentionMode.Chunkwise)]
    public void BlocksShareTheDecayConstants(RetentionMode mode)
    {
        // Two blocks more add their weights to the file and nothing else: the masks and decays are stored once.
        using var scope = NewDisposeScope();
        var config = ViRConfig.Mini with { Dim = 64, Heads = 8, NumClasses = 10 };
        long Size(int depth)
        {
            using var model = new ViRModel(config with { Depth = depth });
            string path = TempFile();
            try
            {
                ViROnnxExport.Export(model, path, retention: new RetentionSettings(mode, 32));
                return new FileInfo(path).Length;
            }
            finally
            {
                File.Delete(path);
            }
        }
        long blockWeightBytes;
        using (var one = new ViRModel(config with { Depth = 1 }))
            blockWeightBytes = one.named_parameters().Where(p => p.name.StartsWith("blocks.0.")).Sum(p => p.parameter.numel()) * sizeof(float);
        long graphBytes = Size(4) - Size(2) - 2 * blockWeightBytes;
        long side = mode == RetentionMode.Parallel ? config.PatchCount + 1 : 32;
        long maskBytes = config.Heads * side * side * sizeof(float); // the form's [H, n, n] mask, one of the constants each block reads
        Console.WriteLine($"{mode}: two more blocks add {graphBytes} bytes beside their weights (a mask is at least {maskBytes})");
        Assert.IsTrue(graphBytes < maskBytes, $"{mode}: {graphBytes} bytes beside the weights");
    }

    [TestMethod]
    public void UnsupportedRequestsAreRefusedByName()
    {
        using var scope = NewDisposeScope();
        using var model = new ViRModel(ViRConfig.Mini with { Depth = 1 });
        string path = TempFile();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViROnnxExport.Export(model, path, retention: new RetentionSettings(RetentionMode.Recurrent)));
        StringAssert.Contains(e.Message, "Parallel or Chunkwise");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViROnnxExport.Export(model, path, opset: 13, input: OnnxImageInput.Images));
        Assert.AreEqual("opset", e.ParamName);
        StringAssert.Contains(e.Message, "but it is 13");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViROnnxExport.Export(model, path, opset: 17));
        StringAssert.Contains(e.Message, "Pixels input needs opset 18 or newer");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViROnnxExport.Export(model, path, input: (OnnxImageInput)7));
        Assert.AreEqual("input", e.ParamName);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ViROnnxExport.Export(model, path, imageSize: 30));
        StringAssert.Contains(e.Message, "multiple of the patch size 4, but it is 30");
        var a = Assert.ThrowsExactly<ArgumentException>(() => ViROnnxExport.Export(model, path, labelNames: new[] { "a", "b" }));
        StringAssert.Contains(a.Message, "one name per class, 10, but it has 2");
        using var headless = new ViRModel(ViRConfig.Mini with { Depth = 1, NumClasses = 0 });
        a = Assert.ThrowsExactly<ArgumentException>(() => ViROnnxExport.Export(headless, path));
        StringAssert.Contains(a.Message, "no classification head");
        Assert.IsFalse(File.Exists(path), "no file is written for a refused request");
    }
}
