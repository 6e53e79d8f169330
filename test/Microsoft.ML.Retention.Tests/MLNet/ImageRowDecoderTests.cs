using SkiaSharp;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// ImageRowDecoder: a PNG read row by row gives the whole-image decoder's pixels while memory holds only the rows in
/// flight; an interlaced PNG, whose rows are finished only at the end, is refused.
/// </summary>
[TestClass]
public sealed class ImageRowDecoderTests
{
    [TestMethod]
    public void ATallPngIsReadRowByRowInMemoryThatDoesNotGrowWithItsHeight()
    {
        const int width = 1024, height = 6144; // 24 MiB decoded
        string file = Path.Combine(Path.GetTempPath(), $"vir-tall-{Guid.NewGuid():N}.png");
        try
        {
            var random = new Random(7);
            var expectedRows = new long[height];
            using (var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Bgra8888, SKAlphaType.Opaque)))
            {
                var pixels = new byte[width * height * 4];
                random.NextBytes(pixels); // noise: about as large encoded as decoded
                for (int i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
                System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
                using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(file, encoded.ToArray());
            }
            using (var whole = SKBitmap.Decode(file))
            {
                var bytes = whole.Bytes;
                for (int y = 0; y < height; y++) expectedRows[y] = RowHash(bytes.AsSpan(y * width * 4, width * 4));
            }

            int mismatched = -1;
            double rise = PeakMemory.RiseMiB(() =>
            {
                using var stream = File.OpenRead(file);
                using var decoder = ImageRowDecoder.Open(stream, file);
                var rows = new byte[16 * width * 4];
                for (int y = 0; y < height; y += 16)
                {
                    decoder.Read(rows, 0, 16);
                    for (int r = 0; r < 16 && mismatched < 0; r++)
                        if (RowHash(rows.AsSpan(r * width * 4, width * 4)) != expectedRows[y + r]) mismatched = y + r;
                }
            });
            Console.WriteLine($"{width}×{height} PNG ({new FileInfo(file).Length / 1048576.0:F1} MiB encoded, 24 MiB decoded) read 16 rows at a time: peak memory rise {rise:F1} MiB");
            Assert.AreEqual(-1, mismatched, "every row as the whole-image decoder gives it");
            Assert.IsTrue(rise < 8, $"the rise ({rise:F1} MiB) is the rows in flight, not the 24 MiB image");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestMethod]
    public void AnInterlacedPngIsRefusedByName()
    {
        var png = InterlacedPng.Grey(16, 16);
        using (var decoded = SKBitmap.Decode(png)) Assert.AreEqual((16, 16), (decoded.Width, decoded.Height), "a valid PNG");
        var refused = Assert.ThrowsExactly<InvalidDataException>(() => ImageRowDecoder.Open(new MemoryStream(png), "pass.png"));
        StringAssert.Contains(refused.Message, "'pass.png' is an interlaced (Adam7) PNG, 16×16");
    }

    private static long RowHash(ReadOnlySpan<byte> row)
    {
        long hash = 17;
        foreach (byte b in row) hash = hash * 31 + b;
        return hash;
    }
}
