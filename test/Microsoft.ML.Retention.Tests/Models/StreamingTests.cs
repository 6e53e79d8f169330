using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// Streaming (issue 22, first part): the operator continued from a state, and a ViR fed band by band, equal the
/// chunkwise form over the whole sequence.
/// </summary>
[TestClass]
public sealed class StreamingTests
{
    [TestMethod]
    public void ChunkwiseStepsOverPiecesEqualOneChunkwiseCall()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var gamma = tensor(new[] { 0.9f, 0.99f, 0.999f });
        var (q, k, v) = (randn(new long[] { 2, 3, 101, 8 }), randn(new long[] { 2, 3, 101, 8 }), randn(new long[] { 2, 3, 101, 8 }));
        var whole = RetentionOps.Chunkwise(q, k, v, gamma, 16);
        foreach (int piece in new[] { 1, 7, 32, 101 })
        {
            var state = zeros(2, 3, 8, 8);
            var outputs = new List<Tensor>();
            for (long start = 0; start < 101; start += piece)
            {
                long n = Math.Min(piece, 101 - start);
                var (output, next) = RetentionOps.ChunkwiseStep(state, q.narrow(2, start, n), k.narrow(2, start, n), v.narrow(2, start, n), gamma, 16);
                outputs.Add(output);
                state = next;
            }
            double difference = (cat(outputs, 2) - whole).abs().max().ToDouble() / whole.abs().max().ToDouble();
            Console.WriteLine($"pieces of {piece}: {difference:G3} of the output's scale");
            Assert.IsTrue(difference < 1e-5, $"pieces of {piece}: {difference:G3}");
        }
        var wrong = Assert.ThrowsExactly<ArgumentException>(() => RetentionOps.ChunkwiseStep(zeros(2, 3, 8), q, k, v, gamma, 16));
        StringAssert.Contains(wrong.Message, "state must have shape [2, 3, 8, 8]");
    }

    [TestMethod]
    public void APositionEmbeddingBandEqualsThoseRowsOfTheWholeResizedGrid()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(4);
        using var model = new ViRModel(ViRConfig.Mini);
        foreach (var (gridH, gridW) in new[] { (11L, 9L), (5L, 3L), (64L, 40L), (7L, 7L) })
        {
            var whole = model.PositionEmbedding(gridH, gridW);
            double worst = 0;
            foreach (long rows in new[] { 1L, 3L })
                for (long first = 0; first < gridH; first += rows)
                {
                    long n = Math.Min(rows, gridH - first);
                    var band = model.PositionEmbeddingRows(gridH, gridW, first, n);
                    worst = Math.Max(worst, (band - whole.narrow(1, first * gridW, n * gridW)).abs().max().ToDouble() / whole.abs().max().ToDouble());
                }
            Console.WriteLine($"{gridH}×{gridW}: {worst:G3} of the embedding's scale");
            Assert.IsTrue(worst < 1e-5, $"{gridH}×{gridW}: {worst:G3}");
        }
    }

    [TestMethod]
    [DataRow(PatchStem.Convolutional, 28, 28)]
    [DataRow(PatchStem.Convolutional, 44, 36)]
    [DataRow(PatchStem.Patchify, 48, 40)]
    public void AViRFedBandByBandScoresAsTheChunkwiseFormDoes(PatchStem stem, int height, int width)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(3);
        var config = ViRConfig.Mini with { Stem = stem, PatchSize = 4, Depth = 3, LayerScaleInit = 0.5 };
        using var model = new ViRModel(config);
        model.eval();
        var images = randn(new long[] { 2, 1, height, width });
        foreach (int chunk in new[] { 5, 16 })
        {
            var whole = model.Embed(images, new RetentionSettings(RetentionMode.Chunkwise, chunk));
            foreach (int bandRows in new[] { 1, 2, 3, height / 4 })
            {
                var streamed = model.EmbedStreaming(images, bandRows, chunk);
                double difference = (streamed - whole).abs().max().ToDouble() / whole.abs().max().ToDouble();
                Console.WriteLine($"{stem} {height}×{width}, chunk {chunk}, bands of {bandRows} rows: {difference:G3} of the output's scale");
                Assert.IsTrue(difference < 1e-4, $"{stem} {height}×{width}, chunk {chunk}, bands of {bandRows}: {difference:G3}");
            }
        }
    }

    // Rows [first, first + count) of a made grayscale image, computed when asked for: nothing holds the whole image.
    private static Tensor MadeRows(long first, long count, long width)
    {
        var y = arange(first, first + count, ScalarType.Float32).view(-1, 1);
        var x = arange(width, ScalarType.Float32).view(1, -1);
        return (y * 0.05 + x * 0.03).sin_().add_((y * 0.7 - x * 1.1).sin_().mul_(0.3)).view(1, 1, count, width);
    }

    [TestMethod]
    public void StreamingMemoryDoesNotGrowWithTheImagesHeight()
    {
        using var noGrad = no_grad();
        manual_seed(5);
        using var model = new ViRModel(ViRConfig.Mini);
        model.eval();
        const long width = 256;
        double Streamed(long height) => PeakMemory.RiseMiB(() =>
        {
            using var scope = NewDisposeScope();
            model.EmbedStreaming((first, count) => MadeRows(first, count, width), 1, height, width, ScalarType.Float32, CPU, bandRows: 4, chunkSize: 64);
        });
        Streamed(4096); // warm-up: libtorch's, the allocator's and the decay caches' first allocations
        double small = Streamed(256), tall = Streamed(4096);
        double whole = PeakMemory.RiseMiB(() =>
        {
            using var scope = NewDisposeScope();
            model.Embed(MadeRows(0, 4096, width), new RetentionSettings(RetentionMode.Chunkwise, 64));
        });
        Console.WriteLine($"peak rise: streamed 256×{width} {small:F1} MiB, streamed 4096×{width} {tall:F1} MiB; chunkwise over the whole 4096×{width} image {whole:F1} MiB");
        // The tall image has 16 times the short one's tokens; whole-image activations cost about 15 KB a token (the
        // chunkwise figure), so following the tokens would add about 900 MiB. Measured after the warm-up: 0.0 and
        // 0.5–0.6 MiB, against 941–1,085 MiB for the whole image (without the warm-up the first tall run grew the
        // allocator's pool by 15–60 MiB once).
        Assert.IsTrue(tall < small + 16, $"streamed: {small:F1} MiB at 256 rows, {tall:F1} MiB at 4,096");
        Assert.IsTrue(tall * 10 < whole, $"streamed {tall:F1} MiB against the whole image's chunkwise form {whole:F1} MiB");
    }
}
