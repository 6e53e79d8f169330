using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Adam7-interlaced PNG files, which SkiaSharp decodes but can't encode.</summary>
internal static class InterlacedPng
{
    /// <summary>A <paramref name="width"/>×<paramref name="height"/> 8-bit grey gradient, interlaced.</summary>
    public static byte[] Grey(int width, int height)
    {
        // Adam7's seven passes: start and step in x and y.
        int[] x0 = { 0, 4, 0, 2, 0, 1, 0 }, y0 = { 0, 0, 4, 0, 2, 0, 1 }, dx = { 8, 8, 4, 4, 2, 2, 1 }, dy = { 8, 8, 8, 4, 4, 2, 2 };
        var raw = new MemoryStream();
        for (int pass = 0; pass < 7; pass++)
        {
            if (x0[pass] >= width) continue;
            for (int y = y0[pass]; y < height; y += dy[pass])
            {
                raw.WriteByte(0); // filter: none
                for (int x = x0[pass]; x < width; x += dx[pass]) raw.WriteByte((byte)(x * 7 + y * 3));
            }
        }
        var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zlib);

        var png = new MemoryStream();
        png.Write(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 });
        var header = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[12] = 1; // interlace: Adam7
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var length = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        png.Write(length);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        png.Write(crc);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}
