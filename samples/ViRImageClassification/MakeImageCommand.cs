using System.Runtime.InteropServices;
using SkiaSharp;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>Makes a large image to try <c>predict --stream</c> on: Fashion-MNIST images tiled into a square, JPEG or PNG.</summary>
public static class MakeImageCommand
{
    private const int Tile = 28;

    public static int Run(string output, int size, string data, IAnsiConsole console)
    {
        if (size < Tile) throw new ArgumentOutOfRangeException(nameof(size), size, $"--size must be at least {Tile} pixels, but it is {size}.");
        var format = Path.GetExtension(output).ToLowerInvariant() switch
        {
            ".jpg" or ".jpeg" => SKEncodedImageFormat.Jpeg,
            ".png" => SKEncodedImageFormat.Png,
            var other => throw new ArgumentException($"--out must end in .jpg, .jpeg or .png, but it ends in '{other}'.", nameof(output)),
        };
        var files = Directory.EnumerateFiles(data, "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"No PNG images under '{data}'.", data);
        var tiles = new byte[files.Count][];
        byte[] TileOf(int i)
        {
            int f = i % files.Count;
            if (tiles[f] is { } pixels) return pixels;
            using var decoded = SKBitmap.Decode(files[f], new SKImageInfo(Tile, Tile, SKColorType.Gray8, SKAlphaType.Opaque));
            return tiles[f] = decoded.Bytes;
        }

        // SkiaSharp encodes from a whole bitmap, so the image is made in memory (predict --stream never holds it):
        // one byte a pixel, as the tiles are grey, so a 32768² image takes 1 GiB here.
        using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Gray8, SKAlphaType.Opaque));
        IntPtr pixels = bitmap.GetPixels();
        long rowBytes = bitmap.RowBytes;
        int perSide = (size + Tile - 1) / Tile;
        for (int ty = 0; ty < perSide; ty++)
            for (int tx = 0; tx < perSide; tx++)
            {
                var tile = TileOf(ty * perSide + tx);
                int rows = Math.Min(Tile, size - ty * Tile), columns = Math.Min(Tile, size - tx * Tile);
                for (int r = 0; r < rows; r++)
                    Marshal.Copy(tile, r * Tile, pixels + (nint)((ty * Tile + r) * rowBytes + tx * Tile), columns);
            }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        using (var encoded = bitmap.Encode(format, 95))
        using (var file = File.Create(output))
            encoded.SaveTo(file);
        console.MarkupLineInterpolated($"Wrote [blue]{output}[/]: {size}×{size} pixels, {perSide}×{perSide} Fashion-MNIST images, {new FileInfo(output).Length / 1024} KiB.");
        return 0;
    }
}
