using System.Buffers.Binary;
using System.Text;

namespace Retpoline.Elf;

/// <summary>
/// A bounds-checked little-endian cursor over one DWARF section, for the line table (<see cref="DwarfLines"/>) and the
/// compilation units (<see cref="DwarfUnits"/>): reading past the end throws, which ends that unit's parse, so a
/// damaged section costs its own unit and never the verify.
/// </summary>
ref struct DwarfReader(ReadOnlySpan<byte> data, int pos)
{
    readonly ReadOnlySpan<byte> data = data;
    public int Pos = pos;

    ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || Pos > data.Length - n) throw new ArgumentOutOfRangeException(nameof(n), "past the end of the section");
        var s = data.Slice(Pos, n); Pos += n; return s;
    }
    public void Skip(int n) => Take(n);
    public byte U8() => Take(1)[0];
    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint U24() { var b = Take(3); return (uint)(b[0] | b[1] << 8 | b[2] << 16); }
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
    public ulong Uleb()
    {
        ulong result = 0; int shift = 0;
        while (true)
        {
            byte b = U8();
            if (shift < 64) result |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
            shift += 7;
        }
    }
    public long Sleb()
    {
        long result = 0; int shift = 0; byte b;
        do { b = U8(); if (shift < 64) result |= (long)(b & 0x7f) << shift; shift += 7; } while ((b & 0x80) != 0);
        if (shift < 64 && (b & 0x40) != 0) result |= -1L << shift;
        return result;
    }
    public string CString()
    {
        var rest = data[Pos..];
        int z = rest.IndexOf((byte)0);
        if (z < 0) throw new ArgumentOutOfRangeException(nameof(data), "unterminated string");
        Pos += z + 1;
        return Encoding.UTF8.GetString(rest[..z]);
    }

    /// <summary>The NUL-terminated string at <paramref name="offset"/> of a string section (.debug_str, .debug_line_str), or null past its end.</summary>
    public static string? StringAt(ReadOnlySpan<byte> table, ulong offset)
    {
        if (offset >= (ulong)table.Length) return null;
        var s = table[(int)offset..];
        int z = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(z < 0 ? s : s[..z]);
    }
}
