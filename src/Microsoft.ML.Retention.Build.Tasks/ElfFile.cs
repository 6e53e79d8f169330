using System.Buffers.Binary;
using System.Text;

namespace Microsoft.ML.Retention.Build.Tasks;

/// <summary>
/// Just enough of a 64-bit little-endian ELF reader to find symbol-version records
/// (.gnu.version_d and .gnu.version_r) and flip a flag in place.
/// </summary>
internal sealed class ElfFile
{
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2;

    private readonly byte[] _bytes;
    private readonly List<Section> _sections = new();

    private readonly record struct Section(uint Type, long Offset, long Size, int Link, int Info);

    public ElfFile(byte[] bytes, string path)
    {
        _bytes = bytes;
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
            throw new InvalidDataException($"'{path}' is not an ELF file.");
        if (bytes[4] != 2 || bytes[5] != 1)
            throw new InvalidDataException($"'{path}' is not a 64-bit little-endian ELF file (class {bytes[4]}, data {bytes[5]}).");

        long sectionTable = (long)U64(0x28);
        int entrySize = U16(0x3A), count = U16(0x3C);
        for (int i = 0; i < count; i++)
        {
            long h = sectionTable + (long)i * entrySize;
            _sections.Add(new Section(U32(h + 4), (long)U64(h + 24), (long)U64(h + 32), (int)U32(h + 40), (int)U32(h + 44)));
        }
    }

    public byte[] Bytes => _bytes;

    /// <summary>True when the file defines the symbol version <paramref name="name"/> (e.g. libstdc++ defining GLIBCXX_3.4.32).</summary>
    public bool DefinesVersion(string name)
    {
        foreach (var s in _sections.Where(s => s.Type == ShtGnuVerdef))
        {
            long def = s.Offset;
            for (int i = 0; i < s.Info; i++)
            {
                // Elf64_Verdef: u16 version, u16 flags, u16 ndx, u16 cnt, u32 hash, u32 aux, u32 next
                long aux = def + U32(def + 12);
                if (ReadString(s.Link, U32(aux)) == name) return true; // Elf64_Verdaux: u32 name, u32 next
                uint next = U32(def + 16);
                if (next == 0) break;
                def += next;
            }
        }
        return false;
    }

    /// <summary>
    /// Sets VER_FLG_WEAK on every requirement of version <paramref name="name"/>, so the loader
    /// tolerates its absence. Returns how many requirements changed (0 when already weak or absent).
    /// </summary>
    public int MarkVersionRequirementWeak(string name)
    {
        int changed = 0;
        foreach (var s in _sections.Where(s => s.Type == ShtGnuVerneed))
        {
            long need = s.Offset;
            for (int i = 0; i < s.Info; i++)
            {
                // Elf64_Verneed: u16 version, u16 cnt, u32 file, u32 aux, u32 next
                int auxCount = U16(need + 2);
                long aux = need + U32(need + 8);
                for (int j = 0; j < auxCount; j++)
                {
                    // Elf64_Vernaux: u32 hash, u16 flags, u16 other, u32 name, u32 next
                    ushort flags = U16(aux + 4);
                    if (ReadString(s.Link, U32(aux + 8)) == name && (flags & VerFlagWeak) == 0)
                    {
                        BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan((int)(aux + 4)), (ushort)(flags | VerFlagWeak));
                        changed++;
                    }
                    aux += U32(aux + 12);
                }
                uint next = U32(need + 12);
                if (next == 0) break;
                need += next;
            }
        }
        return changed;
    }

    private string ReadString(int stringSection, uint offset)
    {
        long start = _sections[stringSection].Offset + offset;
        int end = Array.IndexOf(_bytes, (byte)0, (int)start);
        return Encoding.ASCII.GetString(_bytes, (int)start, end - (int)start);
    }

    private ushort U16(long at) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan((int)at));
    private uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan((int)at));
    private ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan((int)at));
}
