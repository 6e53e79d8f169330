using System.Text;

namespace Microsoft.ML.Retention.Onnx;

/// <summary>
/// The protobuf wire format, as much of it as writing an ONNX model takes: varints, 32-bit floats, and
/// length-delimited strings, bytes, packed arrays and nested messages. A message is written into its own buffer and
/// then embedded with its length.
/// </summary>
internal sealed class Protobuf
{
    private readonly MemoryStream _buffer = new();

    public byte[] ToArray() => _buffer.ToArray();

    public Protobuf Int(int field, long value)
    {
        Tag(field, 0);
        Varint((ulong)value);
        return this;
    }

    public Protobuf Float(int field, float value)
    {
        Tag(field, 5);
        _buffer.Write(BitConverter.GetBytes(value));
        return this;
    }

    public Protobuf String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public Protobuf Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        _buffer.Write(value);
        return this;
    }

    public Protobuf Message(int field, Protobuf message) => Bytes(field, message.ToArray());

    public Protobuf PackedInts(int field, IEnumerable<long> values)
    {
        var packed = new Protobuf();
        foreach (long v in values) packed.Varint((ulong)v);
        return Bytes(field, packed.ToArray());
    }

    public Protobuf PackedFloats(int field, IEnumerable<float> values) =>
        Bytes(field, values.SelectMany(BitConverter.GetBytes).ToArray());

    private void Tag(int field, int wireType) => Varint((ulong)(field << 3 | wireType));

    private void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _buffer.WriteByte((byte)value);
    }
}
