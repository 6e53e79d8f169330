using System.IO.Compression;

// Usage: FashionMnistExport <dir with *-ubyte.gz> <output dir> [train images per class] [test images per class]
// Writes <output>/train/<class>/<index>.png and <output>/test/<class>/<index>.png, taking the first
// N images of each class in file order (all of them when N is omitted).
if (args.Length is < 2 or > 4)
{
    Console.Error.WriteLine("usage: FashionMnistExport <source dir> <output dir> [train per class] [test per class]");
    return 2;
}
string source = args[0], output = args[1];
int trainPerClass = args.Length > 2 ? int.Parse(args[2]) : int.MaxValue;
int testPerClass = args.Length > 3 ? int.Parse(args[3]) : int.MaxValue;
string[] classes = { "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot" };

foreach (var (split, prefix, perClass) in new[] { ("train", "train", trainPerClass), ("test", "t10k", testPerClass) })
{
    byte[] images = ReadGzip(Path.Combine(source, $"{prefix}-images-idx3-ubyte.gz"));
    byte[] labels = ReadGzip(Path.Combine(source, $"{prefix}-labels-idx1-ubyte.gz"));
    int count = BigEndian(labels, 4), rows = BigEndian(images, 8), cols = BigEndian(images, 12);
    if (BigEndian(images, 0) != 0x803 || BigEndian(labels, 0) != 0x801 || BigEndian(images, 4) != count)
        throw new InvalidDataException($"{prefix}: not a matching pair of IDX image and label files.");

    var written = new int[classes.Length];
    foreach (var name in classes) Directory.CreateDirectory(Path.Combine(output, split, name));
    for (int i = 0; i < count; i++)
    {
        int label = labels[8 + i];
        if (written[label] >= perClass) continue;
        var pixels = images.AsSpan(16 + i * rows * cols, rows * cols);
        File.WriteAllBytes(Path.Combine(output, split, classes[label], $"{i:D5}.png"), GrayscalePng.Encode(pixels, cols, rows));
        written[label]++;
    }
    Console.WriteLine($"{split}: {written.Sum()} images in {classes.Length} folders under {Path.Combine(output, split)}");
}
return 0;

static byte[] ReadGzip(string path)
{
    using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var memory = new MemoryStream();
    gzip.CopyTo(memory);
    return memory.ToArray();
}

static int BigEndian(byte[] data, int offset) => System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(offset));
