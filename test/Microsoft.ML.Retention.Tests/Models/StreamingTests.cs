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
    public void APositionEmbeddingBandEqualsThosePositionsOfTheWholeResizedGrid()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(4);
        using var model = new ViRModel(ViRConfig.Mini);
        foreach (var (gridH, gridW) in new[] { (11L, 9L), (5L, 3L), (64L, 40L), (7L, 7L) })
        {
            var whole = model.PositionEmbedding(gridH, gridW).view(gridH, gridW, -1);
            double worst = 0;
            foreach (var (rows, columns) in new[] { (1L, gridW), (3L, gridW), (1L, 2L), (1L, 5L) })
                for (long first = 0; first < gridH; first += rows)
                    for (long column = 0; column < gridW; column += columns)
                    {
                        long n = Math.Min(rows, gridH - first), m = Math.Min(columns, gridW - column);
                        var band = model.PositionEmbeddingBand(gridH, gridW, first, n, column, m);
                        var expected = whole.narrow(0, first, n).narrow(1, column, m).reshape(1, n * m, -1);
                        worst = Math.Max(worst, (band - expected).abs().max().ToDouble() / whole.abs().max().ToDouble());
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
            int gridW = width / 4;
            // Pieces of a row (1 token, 3 tokens: not dividing the row), a row, 2 rows and a token, the whole image.
            foreach (int bandTokens in new[] { 1, 3, gridW, 2 * gridW + 1, height / 4 * gridW })
            {
                var streamed = model.EmbedStreaming(images, bandTokens, chunk);
                double difference = (streamed - whole).abs().max().ToDouble() / whole.abs().max().ToDouble();
                Console.WriteLine($"{stem} {height}×{width}, chunk {chunk}, bands of {bandTokens} tokens: {difference:G3} of the output's scale");
                Assert.IsTrue(difference < 1e-4, $"{stem} {height}×{width}, chunk {chunk}, bands of {bandTokens} tokens: {difference:G3}");
            }
        }
    }

    // Rows [first, first + count) and columns [column, column + columns) of a made grayscale image, computed when asked
    // for: nothing holds the whole image.
    private static Tensor MadeWindow(long first, long count, long column, long columns)
    {
        var y = arange(first, first + count, ScalarType.Float32).view(-1, 1);
        var x = arange(column, column + columns, ScalarType.Float32).view(1, -1);
        return (y * 0.05 + x * 0.03).sin_().add_((y * 0.7 - x * 1.1).sin_().mul_(0.3)).view(1, 1, count, columns);
    }

    [TestMethod]
    public void StreamingMemoryDoesNotGrowWithTheImagesSize()
    {
        using var noGrad = no_grad();
        manual_seed(5);
        using var model = new ViRModel(ViRConfig.Mini);
        model.eval();
        double Streamed(long height, long width) => PeakMemory.RiseMiB(() =>
        {
            using var scope = NewDisposeScope();
            model.EmbedStreaming(MadeWindow, 1, height, width, ScalarType.Float32, CPU, bandTokens: 256, chunkSize: 64);
        });
        // Warm-up: libtorch's, the allocator's and the decay caches' first allocations.
        Streamed(4096, 256);
        Streamed(256, 4096);
        double small = Streamed(256, 256), tall = Streamed(4096, 256), wide = Streamed(256, 4096);
        double whole = PeakMemory.RiseMiB(() =>
        {
            using var scope = NewDisposeScope();
            model.Embed(MadeWindow(0, 4096, 0, 256), new RetentionSettings(RetentionMode.Chunkwise, 64));
        });
        Console.WriteLine($"peak rise: streamed 256×256 {small:F1} MiB, 4096×256 {tall:F1} MiB, 256×4096 {wide:F1} MiB; " +
            $"chunkwise over the whole 4096×256 image {whole:F1} MiB");
        // The tall and the wide image have 16 times the small one's tokens; whole-image activations cost about 15 KB a
        // token (the chunkwise figure), so following the tokens would add about 900 MiB. A band is 256 tokens however
        // wide the image: a row of the wide one (1,024 tokens) goes in four pieces.
        Assert.IsTrue(tall < small + 16, $"streamed: {small:F1} MiB at 256×256, {tall:F1} MiB at 4096×256");
        Assert.IsTrue(wide < small + 16, $"streamed: {small:F1} MiB at 256×256, {wide:F1} MiB at 256×4096");
        Assert.IsTrue(tall * 10 < whole, $"streamed {tall:F1} MiB against the whole image's chunkwise form {whole:F1} MiB");
    }
}
