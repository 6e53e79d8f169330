using System.Buffers.Binary;
using System.IO.Compression;

/// <summary>Writes 8-bit grayscale PNG files (no dependencies: zlib from the BCL, CRC-32 here).</summary>
internal static class GrayscalePng
{
    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height)
    {
        // Each scanline gets the PNG filter (None, Sub, Up, Average, Paeth) with the smallest sum of
        // absolute residuals, the usual heuristic; it makes these images about a quarter smaller.
        var raw = new byte[height * (width + 1)];
        var candidate = new byte[width];
        for (int y = 0; y < height; y++)
        {
            long bestCost = long.MaxValue;
            for (byte filter = 0; filter <= 4; filter++)
            {
                long cost = 0;
                for (int x = 0; x < width; x++)
                {
                    int a = x > 0 ? pixels[y * width + x - 1] : 0;
                    int b = y > 0 ? pixels[(y - 1) * width + x] : 0;
                    int c = x > 0 && y > 0 ? pixels[(y - 1) * width + x - 1] : 0;
                    int predictor = filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => Paeth(a, b, c) };
                    candidate[x] = (byte)(pixels[y * width + x] - predictor);
                    cost += Math.Abs((int)(sbyte)candidate[x]);
                }
                if (cost >= bestCost) continue;
                bestCost = cost;
                raw[y * (width + 1)] = filter;
                candidate.CopyTo(raw, y * (width + 1) + 1);
            }
        }
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true)) zlib.Write(raw);

        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth; colour type 0 (grayscale), compression, filter and interlace 0

        using var png = new MemoryStream();
        png.Write(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });
        WriteChunk(png, "IHDR", header);
        WriteChunk(png, "IDAT", compressed.ToArray());
        WriteChunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void WriteChunk(Stream png, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in typed) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc ^ 0xFFFFFFFFu);
        png.Write(word);
    }
}
