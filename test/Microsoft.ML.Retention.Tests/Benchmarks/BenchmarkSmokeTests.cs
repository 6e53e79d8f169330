using Retention.Benchmarks;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Runs every benchmark suite at smoke sizes: it checks that they run and write their tables, not how fast.</summary>
[TestClass]
public sealed class BenchmarkSmokeTests
{
    [TestMethod]
    public void EverySuiteRunsAndWritesItsTable()
    {
        string output = Path.Combine(Path.GetTempPath(), $"vir-bench-{Guid.NewGuid():N}");
        try
        {
            var log = new StringWriter();
            Directory.CreateDirectory(output);
            string image = Path.Combine(output, "streamed.jpg"); // the streaming suite classifies it in a child process
            using (var bitmap = new SkiaSharp.SKBitmap(96, 64))
            using (var encoded = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90))
                File.WriteAllBytes(image, encoded.ToArray());
            Assert.AreEqual(0, BenchmarkRunner.Run(new[] { "all" }, smoke: true, small: false, output, log, streamingImages: new[] { image }));
            string markdown = File.ReadAllText(Path.Combine(output, "results.md"));
            foreach (var title in new[] { "### Kernel", "### Chunk size", "### Model", "### Training step", "### ML.NET overhead", "### Precision", "### Contention", "### The library against ONNX Runtime", "### Where scoring time goes", "### RMT against ViR", "### Streaming", "### What the [class] token sees", "### Spatial retention" })
                StringAssert.Contains(markdown, title);
            StringAssert.Contains(markdown, "| 65 | chunkwise C=32 |");
            StringAssert.Contains(markdown, "IDataView Transform (batched)");
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "results.json")));
            StringAssert.Contains(markdown, "| tiny ViR | 28² | 2 | Chunkwise (chunk size 16) |");
            StringAssert.Contains(markdown, "| Fit beside another process's fit | the library's (GOMP_SPINCOUNT=1000) |");
            StringAssert.Contains(markdown, "| Batch-8 scoring beside another process's | GOMP_SPINCOUNT=30000 |");
            StringAssert.Contains(markdown, "| tiny ViR 28² b1 chunkwise |");
            StringAssert.Contains(markdown, "of the bfloat16 matmul roofline");
            StringAssert.Contains(markdown, "| ViR-Mini (Fit) | 28² | 128 | training, parallel |");
            StringAssert.Contains(markdown, "| tiny ViR | 28² | 1 | chunkwise C=16 |");
            StringAssert.Contains(markdown, "| RMT-Mini | 8 |");
            StringAssert.Contains(markdown, "| tiny ViR | 64² | 257 | streaming |");
            StringAssert.Contains(markdown, "| tiny ViR | streamed.jpg (96×64) | 385 | streaming a file |");
            StringAssert.Contains(markdown, "| tiny ViR | RetNet: 1 − 1/32, 1 − 1/64 | 64² | 16 of 16 | 257 | 0.000 |");
            StringAssert.Contains(markdown, "| 9² | CausalQuadrant | tiled 4×4 |");
            StringAssert.Contains(markdown, "| 9² | Bidirectional | scan |");
            Assert.AreEqual(13, json.RootElement.GetArrayLength());
            foreach (var png in new[] { "kernel.png", "chunk-size.png", "model-batch1.png", "model-batch2.png" })
                Assert.IsTrue(new FileInfo(Path.Combine(output, png)).Length > 10_000, $"{png} is missing or too small to be real");
            Assert.ThrowsExactly<ArgumentException>(() => BenchmarkRunner.Run(new[] { "nope" }, true, false, output, log));
        }
        finally
        {
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        }
    }
}
