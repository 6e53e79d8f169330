using SkiaSharp;
using Spectre.Console;

namespace ViRImageClassification;

/// <summary>Makes a large JPEG to try <c>predict --stream</c> on: Fashion-MNIST images tiled into a square grid.</summary>
public static class MakeImageCommand
{
    public static int Run(string output, int tiles, string data, IAnsiConsole console)
    {
        if (tiles < 1) throw new ArgumentOutOfRangeException(nameof(tiles), tiles, $"--tiles must be at least 1, but it is {tiles}.");
        var files = Directory.EnumerateFiles(data, "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"No PNG images under '{data}'.", data);
        const int tile = 28;
        int size = checked(tiles * tile);
        // SkiaSharp encodes from a whole bitmap: the image made here has to fit in memory (4 bytes a pixel), even though
        // predict --stream never holds it.
        using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Bgra8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap))
            for (int i = 0; i < tiles * tiles; i++)
            {
                using var image = SKBitmap.Decode(files[i % files.Count]);
                canvas.DrawBitmap(image, i % tiles * tile, i / tiles * tile);
            }
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllBytes(output, encoded.ToArray());
        console.MarkupLineInterpolated($"Wrote [blue]{output}[/]: {size}×{size} pixels, {tiles}×{tiles} Fashion-MNIST images, {new FileInfo(output).Length / 1024} KiB.");
        return 0;
    }
}
