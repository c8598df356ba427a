using System.Buffers.Binary;
using System.Text;

namespace Retpoline.Elf;

/// <summary>
/// Address → source file and line, from DWARF `.debug_line` (versions 2–5, 32- and 64-bit DWARF).
///
/// Why our own reader and not LibObjectFile: we need one section, read once, into a sorted array for binary search;
/// LibObjectFile builds an object model of every DWARF section, which on a 100 MB library costs more than the whole
/// verify. This is a few hundred lines, hardened the same way as the ELF reader: every count is bounded by the bytes
/// that remain, malformed input ends the parse (keeping what was read before), nothing throws.
/// </summary>
public sealed class DwarfLines
{
    readonly ulong[] addresses;
    readonly int[] files;     // index into fileNames; -1 marks an end_sequence row (no code covered from there on)
    readonly int[] lines;
    readonly string[] fileNames;

    DwarfLines(List<Row> rows, List<string> names)
    {
        // Stable sort by address: sequences are independent, an end_sequence row ends its range.
        rows.Sort((a, b) => a.Address != b.Address ? a.Address.CompareTo(b.Address) : a.Order.CompareTo(b.Order));
        addresses = new ulong[rows.Count]; files = new int[rows.Count]; lines = new int[rows.Count];
        for (int i = 0; i < rows.Count; i++) { addresses[i] = rows[i].Address; files[i] = rows[i].File; lines[i] = rows[i].Line; }
        fileNames = names.ToArray();
    }

    public int RowCount => addresses.Length;

    /// <summary>Thread-safe: the table is immutable once parsed.</summary>
    public bool TryLookup(ulong address, out string file, out int line)
    {
        file = ""; line = 0;
        int i = Array.BinarySearch(addresses, address);
        if (i < 0) i = ~i - 1;
        else while (i + 1 < addresses.Length && addresses[i + 1] == address) i++; // the last row at this address wins
        if (i < 0 || files[i] < 0) return false;
        file = fileNames[files[i]]; line = lines[i];
        return line > 0;
    }

    readonly record struct Row(ulong Address, int File, int Line, int Order);

    public static DwarfLines Parse(ReadOnlySpan<byte> debugLine, ReadOnlySpan<byte> debugLineStr, ReadOnlySpan<byte> debugStr)
    {
        var rows = new List<Row>();
        var names = new List<string>();
        var nameIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        int offset = 0;
        try
        {
            while (offset < debugLine.Length)
            {
                int next = ParseUnit(debugLine, offset, debugLineStr, debugStr, rows, names, nameIndex);
                if (next <= offset) break;
                offset = next;
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or FormatException)
        {
            // A damaged unit: keep the rows of the units before it.
        }
        return new DwarfLines(rows, names);
    }

    /// <summary>Parses one line-number program; returns the offset of the next unit (or -1 to stop).</summary>
    static int ParseUnit(ReadOnlySpan<byte> d, int start, ReadOnlySpan<byte> lineStr, ReadOnlySpan<byte> str,
        List<Row> rows, List<string> names, Dictionary<string, int> nameIndex)
    {
        var r = new DwarfReader(d, start);
        ulong unitLength = r.U32();
        bool dwarf64 = false;
        if (unitLength == 0xffffffff) { unitLength = r.U64(); dwarf64 = true; }
        else if (unitLength >= 0xfffffff0) return -1;
        if (unitLength > (ulong)(d.Length - r.Pos)) return -1;
        int end = r.Pos + (int)unitLength;
        ushort version = r.U16();
        if (version < 2 || version > 5) return end;
        byte addressSize = 8;
        if (version >= 5) { addressSize = r.U8(); r.U8(); /* segment selector size */ }
        ulong headerLength = dwarf64 ? r.U64() : r.U32();
        if (headerLength > (ulong)(end - r.Pos)) return end;
        int programStart = r.Pos + (int)headerLength;
        byte minInstLength = r.U8();
        byte maxOps = version >= 4 ? r.U8() : (byte)1;
        bool defaultIsStmt = r.U8() != 0;
        sbyte lineBase = (sbyte)r.U8();
        byte lineRange = r.U8();
        byte opcodeBase = r.U8();
        if (lineRange == 0 || maxOps == 0) return end;
        var standardLengths = new byte[Math.Max(0, opcodeBase - 1)];
        for (int i = 0; i < standardLengths.Length; i++) standardLengths[i] = r.U8();

        var dirs = new List<string>();
        var unitFiles = new List<int>(); // unit file number → global name index
        int Intern(string name)
        {
            if (!nameIndex.TryGetValue(name, out int idx)) { idx = names.Count; names.Add(name); nameIndex[name] = idx; }
            return idx;
        }
        // "./src/x.c" (what -ffile-prefix-map=DIR=. leaves) reads as "src/x.c": relative to the project, as MSBuild reports it.
        string Join(string dir, string file)
        {
            string p = file.StartsWith('/') || dir.Length == 0 || dir == "." ? file : dir.TrimEnd('/') + "/" + file;
            while (p.StartsWith("./", StringComparison.Ordinal)) p = p[2..];
            return p;
        }

        if (version >= 5)
        {
            var dirFormat = ReadFormat(ref r);
            ulong dirCount = r.Uleb();
            for (ulong i = 0; i < dirCount && r.Pos < programStart; i++)
            {
                var (path, _) = ReadEntry(ref r, dirFormat, dwarf64, lineStr, str);
                dirs.Add(path ?? "");
            }
            var fileFormat = ReadFormat(ref r);
            ulong fileCount = r.Uleb();
            for (ulong i = 0; i < fileCount && r.Pos < programStart; i++)
            {
                var (path, dir) = ReadEntry(ref r, fileFormat, dwarf64, lineStr, str);
                string d0 = dir < (ulong)dirs.Count ? dirs[(int)dir] : "";
                unitFiles.Add(Intern(Join(d0, path ?? "?")));
            }
        }
        else
        {
            dirs.Add(""); // index 0: the compilation directory, not recorded here
            while (r.Pos < programStart)
            {
                string dir = r.CString();
                if (dir.Length == 0) break;
                dirs.Add(dir);
            }
            unitFiles.Add(-1); // v2–4 file numbers are 1-based
            while (r.Pos < programStart)
            {
                string name = r.CString();
                if (name.Length == 0) break;
                ulong dir = r.Uleb(); r.Uleb(); r.Uleb(); // directory, mtime, length
                unitFiles.Add(Intern(Join(dir < (ulong)dirs.Count ? dirs[(int)dir] : "", name)));
            }
        }

        // The line-number state machine (DWARF 5 §6.2.2).
        r = new DwarfReader(d, programStart);
        ulong address = 0; ulong file = 1; long line = 1; bool endSeq;
        int FileIndex(ulong f) => f < (ulong)unitFiles.Count ? unitFiles[(int)f] : -1;
        void Emit(bool isEnd)
        {
            if (isEnd) rows.Add(new Row(address, -1, 0, rows.Count));
            else if (FileIndex(file) is int fi and >= 0 && line > 0 && line <= int.MaxValue) rows.Add(new Row(address, fi, (int)line, rows.Count));
        }
        void Reset() { address = 0; file = 1; line = 1; }
        _ = defaultIsStmt; _ = addressSize;

        while (r.Pos < end)
        {
            byte op = r.U8();
            if (op >= opcodeBase)
            {
                int adjusted = op - opcodeBase;
                address += (ulong)(adjusted / lineRange) * minInstLength;
                line += lineBase + adjusted % lineRange;
                Emit(false);
                continue;
            }
            switch (op)
            {
                case 0: // extended
                    ulong len = r.Uleb();
                    if (len == 0 || len > (ulong)(end - r.Pos)) return end;
                    int extEnd = r.Pos + (int)len;
                    byte sub = r.U8();
                    switch (sub)
                    {
                        case 1: endSeq = true; Emit(endSeq); Reset(); break; // DW_LNE_end_sequence
                        case 2: address = len - 1 >= 8 ? r.U64() : r.U32(); break; // DW_LNE_set_address
                        case 3: // DW_LNE_define_file (v2–4)
                            string f = r.CString(); ulong dir = r.Uleb(); r.Uleb(); r.Uleb();
                            unitFiles.Add(Intern(Join(dir < (ulong)dirs.Count ? dirs[(int)dir] : "", f)));
                            break;
                    }
                    r.Pos = extEnd; // skips DW_LNE_set_discriminator and unknown vendor opcodes
                    break;
                case 1: Emit(false); break;                                    // DW_LNS_copy
                case 2: address += r.Uleb() * minInstLength; break;            // DW_LNS_advance_pc
                case 3: line += r.Sleb(); break;                               // DW_LNS_advance_line
                case 4: file = r.Uleb(); break;                                // DW_LNS_set_file
                case 5: r.Uleb(); break;                                       // DW_LNS_set_column
                case 6: case 7: case 10: case 11: break;                       // negate_stmt, basic_block, prologue_end, epilogue_begin
                case 8: address += (ulong)((255 - opcodeBase) / lineRange) * minInstLength; break; // DW_LNS_const_add_pc
                case 9: address += r.U16(); break;                             // DW_LNS_fixed_advance_pc
                case 12: r.Uleb(); break;                                      // DW_LNS_set_isa
                default: // an unknown standard opcode: skip its ULEB operands as the header declares
                    int n = op - 1 < standardLengths.Length ? standardLengths[op - 1] : 0;
                    for (int i = 0; i < n; i++) r.Uleb();
                    break;
            }
        }
        return end;
    }

    static List<(ulong type, ulong form)> ReadFormat(ref DwarfReader r)
    {
        int count = r.U8();
        var format = new List<(ulong, ulong)>(count);
        for (int i = 0; i < count; i++) format.Add((r.Uleb(), r.Uleb()));
        return format;
    }

    /// <summary>One v5 directory or file entry: its path (DW_LNCT_path) and directory index (DW_LNCT_directory_index).</summary>
    static (string? path, ulong dir) ReadEntry(ref DwarfReader r, List<(ulong type, ulong form)> format, bool dwarf64, ReadOnlySpan<byte> lineStr, ReadOnlySpan<byte> str)
    {
        string? path = null; ulong dir = 0;
        foreach (var (type, form) in format)
        {
            string? s = null; ulong v = 0;
            switch (form)
            {
                case 0x08: s = r.CString(); break;                                            // DW_FORM_string
                case 0x1f: s = DwarfReader.StringAt(lineStr, dwarf64 ? r.U64() : r.U32()); break;               // DW_FORM_line_strp
                case 0x0e: s = DwarfReader.StringAt(str, dwarf64 ? r.U64() : r.U32()); break;                   // DW_FORM_strp
                case 0x0b: v = r.U8(); break;                                                 // DW_FORM_data1
                case 0x05: v = r.U16(); break;                                                // DW_FORM_data2
                case 0x06: v = r.U32(); break;                                                // DW_FORM_data4
                case 0x07: v = r.U64(); break;                                                // DW_FORM_data8
                case 0x1e: r.Skip(16); break;                                                 // DW_FORM_data16 (MD5)
                case 0x0f: v = r.Uleb(); break;                                               // DW_FORM_udata
                case 0x09: r.Skip(checked((int)r.Uleb())); break;                             // DW_FORM_block
                default: throw new FormatException($"unsupported form 0x{form:x} in a line table header");
            }
            if (type == 1) path = s;       // DW_LNCT_path
            else if (type == 2) dir = v;   // DW_LNCT_directory_index
        }
        return (path, dir);
    }
}
