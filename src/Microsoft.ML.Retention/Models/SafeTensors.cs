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

        string temporary = path + ".tmp";
        using (var file = File.Create(temporary))
        {
            Span<byte> size = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)(json.Length + padding));
            file.Write(size);
            file.Write(json);
            for (int i = 0; i < padding; i++) file.WriteByte((byte)' ');
            foreach (var blob in blobs) file.Write(blob);
        }
        File.Move(temporary, path, overwrite: true);
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
        var tensors = new Dictionary<string, Tensor>();
        try
        {
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
                long elements = shape.Aggregate(1L, (a, b) => a * b);
                using var probe = empty(0, type);
                if (range.Length != 2 || range[0] < 0 || range[1] > dataLength || range[1] - range[0] != elements * probe.ElementSize)
                    throw Bad($"tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) has byte range [{string.Join(", ", range)}], " +
                              $"but needs {elements * probe.ElementSize} bytes within the {dataLength} of data");
                var tensor = empty(shape, type);
                file.AsSpan((int)(dataStart + range[0]), (int)(range[1] - range[0])).CopyTo(tensor.bytes);
                tensors[name] = tensor.DetachFromDisposeScope();
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw Bad($"the header's entries are malformed ({e.Message})");
        }
        catch
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw;
        }
        return (tensors, metadata);
    }
}
