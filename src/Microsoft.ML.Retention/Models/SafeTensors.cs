using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Models;

/// <summary>
/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header size, a JSON
/// header that gives each tensor's dtype, shape and byte range plus a string-to-string <c>__metadata__</c>, then the raw
/// little-endian tensor bytes.
/// </summary>
internal static class SafeTensors
{
    private static readonly Dictionary<string, ScalarType> Types = new()
    {
        ["F32"] = ScalarType.Float32, ["F64"] = ScalarType.Float64, ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32, ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    /// <summary>Writes the tensors (as CPU copies) and metadata; the file appears only once it is complete.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject(metadata.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value))) };
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            using var scope = NewDisposeScope();
            var cpu = tensor.detach().cpu().contiguous();
            byte[] bytes = new byte[cpu.NumberOfElements * cpu.ElementSize];
            cpu.bytes.CopyTo(bytes);
            string type = Types.First(t => t.Value == cpu.dtype).Key;
            header[name] = new JsonObject
            {
                ["dtype"] = type,
                ["shape"] = new JsonArray(cpu.shape.Select(d => (JsonNode?)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            blobs.Add(bytes);
            offset += bytes.Length;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padding = (8 - json.Length % 8) % 8;

        AtomicFile.Write(path, file =>
        {
            var size = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)(json.Length + padding));
            file.Write(size);
            file.Write(json);
            for (int i = 0; i < padding; i++) file.WriteByte((byte)' ');
            foreach (var blob in blobs) file.Write(blob);
        });
    }

    /// <summary>Reads every tensor (on the CPU) and the metadata.</summary>
    /// <exception cref="InvalidDataException">The file is not safetensors, names a dtype this library does not read, or is cut short.</exception>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        InvalidDataException Bad(string why) => new($"'{path}' is not a valid safetensors file: {why}.");
        long length = new FileInfo(path).Length;
        if (length > Array.MaxLength)
            throw new InvalidDataException($"'{path}' has {length:N0} bytes; this reader takes safetensors files of up to {Array.MaxLength:N0} bytes (2 GiB).");
        byte[] file = File.ReadAllBytes(path);
        if (file.Length < 8) throw Bad($"it has {file.Length} bytes, fewer than the 8 of the header size");
        ulong headerSize = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerSize > (ulong)(file.Length - 8)) throw Bad($"the header size is {headerSize} bytes, but only {file.Length - 8} follow");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(file.AsSpan(8, (int)headerSize))?.AsObject() ?? throw Bad("the header is JSON null");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw Bad($"the header is not a JSON object ({e.Message})");
        }

        long dataStart = 8 + (long)headerSize, dataLength = file.Length - dataStart;
        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, ScalarType Type, long[] Shape, long Start, long End)>();
        try
        {
            // Every entry is checked, and the byte ranges against each other, before any tensor is allocated.
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__")
                {
                    foreach (var (key, value) in node?.AsObject() ?? new JsonObject()) metadata[key] = value?.GetValue<string>() ?? "";
                    continue;
                }
                var entry = node?.AsObject() ?? throw Bad($"tensor '{name}' has no entry");
                string dtype = entry["dtype"]?.GetValue<string>() ?? throw Bad($"tensor '{name}' has no dtype");
                if (!Types.TryGetValue(dtype, out var type)) throw Bad($"tensor '{name}' has dtype {dtype}, which this library does not read");
                long[] shape = entry["shape"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray() ?? throw Bad($"tensor '{name}' has no shape");
                long[] range = entry["data_offsets"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray() ?? throw Bad($"tensor '{name}' has no data_offsets");
                if (shape.Any(d => d < 0)) throw Bad($"tensor '{name}' has shape [{string.Join(", ", shape)}], with a negative dimension");
                using var probe = empty(0, type);
                long bytes;
                try
                {
                    bytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * probe.ElementSize);
                }
                catch (OverflowException)
                {
                    throw Bad($"tensor '{name}' has shape [{string.Join(", ", shape)}], whose size overflows");
                }
                if (range.Length != 2 || range[0] < 0 || range[1] > dataLength || range[1] - range[0] != bytes)
                    throw Bad($"tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) has byte range [{string.Join(", ", range)}], " +
                              $"but needs {bytes} bytes within the {dataLength} of data");
                entries.Add((name, type, shape, range[0], range[1]));
            }
        }
        catch (ArgumentException e) when (e is not ArgumentOutOfRangeException)
        {
            throw Bad($"the header names a tensor twice ({e.Message})");
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Bad($"the header's entries are malformed ({e.Message})");
        }
        var ordered = entries.Where(e => e.End > e.Start).OrderBy(e => e.Start).ToList();
        for (int i = 1; i < ordered.Count; i++)
            if (ordered[i].Start < ordered[i - 1].End)
                throw Bad($"tensors '{ordered[i - 1].Name}' and '{ordered[i].Name}' overlap (bytes [{ordered[i - 1].Start}, {ordered[i - 1].End}) " +
                          $"and [{ordered[i].Start}, {ordered[i].End})); the format gives each tensor bytes of its own");

        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, type, shape, start, stop) in entries)
            {
                var tensor = empty(shape, type);
                file.AsSpan((int)(dataStart + start), (int)(stop - start)).CopyTo(tensor.bytes);
                tensors[name] = tensor.DetachFromDisposeScope();
            }
        }
        catch
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw;
        }
        return (tensors, metadata);
    }
}
