using System.Buffers.Binary;
using System.Text;

namespace Retpoline.Elf;

/// <summary>
/// Address → the source file of the compilation unit that holds it, from DWARF `.debug_info` (versions 2–5): each
/// unit's first entry, DW_TAG_compile_unit, gives DW_AT_name (resolved against DW_AT_comp_dir) and the addresses it
/// covers (DW_AT_low_pc/high_pc, or DW_AT_ranges in .debug_ranges / .debug_rnglists). Only that entry is read, not
/// the tree under it. What a file carries about its inputs when no linker map is at hand; the unit's source is the
/// `.c` file even where the line is in a header it includes. Hardened like <see cref="DwarfLines"/>: every read is
/// bounds-checked, a damaged unit ends the parse (keeping the units before it), nothing throws.
/// </summary>
public sealed class DwarfUnits
{
    readonly ulong[] starts;
    readonly ulong[] ends;
    readonly string[] sources;

    DwarfUnits(List<(ulong start, ulong end, string source)> ranges)
    {
        ranges.Sort((a, b) => a.start != b.start ? a.start.CompareTo(b.start) : a.end.CompareTo(b.end));
        starts = ranges.Select(r => r.start).ToArray();
        ends = ranges.Select(r => r.end).ToArray();
        sources = ranges.Select(r => r.source).ToArray();
    }

    public int RangeCount => starts.Length;

    /// <summary>The compilation unit's source for an address, or null. Thread-safe.</summary>
    public string? SourceAt(ulong address)
    {
        int i = Array.BinarySearch(starts, address);
        if (i < 0) i = ~i - 1;
        else while (i + 1 < starts.Length && starts[i + 1] == address) i++;
        // Ranges of different units do not overlap; step back past empty ones that start at the same place.
        for (; i >= 0 && starts[i] <= address; i--)
            if (address < ends[i]) return sources[i];
            else if (i > 0 && ends[i - 1] <= starts[i]) break;
        return null;
    }

    public static DwarfUnits? Read(ElfFile elf)
    {
        var info = elf.FindSection(".debug_info");
        var abbrev = elf.FindSection(".debug_abbrev");
        if (info is null || abbrev is null || !info.HasFileBytes || !abbrev.HasFileBytes) return null;
        // Read from the file here, not taken from elf.Data: verify loads a large file's sections selectively and these
        // are not among them (a clean file never needs them, and .debug_info is the largest section of a -g build).
        ReadOnlyMemory<byte> Of(string name) => elf.FindSection(name) is { HasFileBytes: true } s ? ReadSection(elf, s) : default;
        var units = Parse(new Sections(Of(".debug_info"), Of(".debug_abbrev"), Of(".debug_str"), Of(".debug_line_str"),
            Of(".debug_str_offsets"), Of(".debug_addr"), Of(".debug_ranges"), Of(".debug_rnglists")));
        return units.RangeCount > 0 ? units : null;
    }

    static byte[] ReadSection(ElfFile elf, ElfSection s)
    {
        // A file under 1 MiB is in memory whole; patch hands over a file it holds in memory too.
        if (elf.Data.Length < 1 << 20 || !File.Exists(elf.Path)) return elf.Data.AsSpan(checked((int)s.FileOffset), checked((int)s.Size)).ToArray();
        try
        {
            using var handle = File.OpenHandle(elf.Path);
            if (RandomAccess.GetLength(handle) != elf.Data.Length) return [];
            var bytes = new byte[checked((int)s.Size)];
            int done = 0;
            while (done < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(done), (long)s.FileOffset + done);
                if (n <= 0) return [];
                done += n;
            }
            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    /// <summary>The DWARF sections a unit's first entry may refer to (empty when the file has none).</summary>
    public sealed class Sections(ReadOnlyMemory<byte> info, ReadOnlyMemory<byte> abbrev, ReadOnlyMemory<byte> str, ReadOnlyMemory<byte> lineStr,
        ReadOnlyMemory<byte> strOffsets, ReadOnlyMemory<byte> addr, ReadOnlyMemory<byte> ranges, ReadOnlyMemory<byte> rngLists)
    {
        public ReadOnlySpan<byte> Info => info.Span;
        public ReadOnlySpan<byte> Abbrev => abbrev.Span;
        public ReadOnlySpan<byte> Str => str.Span;
        public ReadOnlySpan<byte> LineStr => lineStr.Span;
        public ReadOnlySpan<byte> StrOffsets => strOffsets.Span;
        public ReadOnlySpan<byte> Addr => addr.Span;
        public ReadOnlySpan<byte> Ranges => ranges.Span;
        public ReadOnlySpan<byte> RngLists => rngLists.Span;
    }

    public static DwarfUnits Parse(Sections s)
    {
        var ranges = new List<(ulong, ulong, string)>();
        int offset = 0;
        try
        {
            while (offset < s.Info.Length)
            {
                int next = ParseUnit(s, offset, ranges);
                if (next <= offset) break;
                offset = next;
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or OverflowException or FormatException)
        {
            // A damaged unit: keep the units before it.
        }
        return new DwarfUnits(ranges);
    }

    const ulong AtName = 0x03, AtLowPc = 0x11, AtHighPc = 0x12, AtCompDir = 0x1b, AtRanges = 0x55, AtStrOffsetsBase = 0x72, AtAddrBase = 0x73, AtRngListsBase = 0x74;

    enum Kind { None, Constant, Address, AddressIndex, String, StringIndex, SectionOffset, RangeListIndex }

    static int ParseUnit(Sections s, int start, List<(ulong, ulong, string)> ranges)
    {
        var r = new DwarfReader(s.Info, start);
        ulong unitLength = r.U32();
        bool dwarf64 = false;
        if (unitLength == 0xffffffff) { unitLength = r.U64(); dwarf64 = true; }
        else if (unitLength >= 0xfffffff0) return -1;
        if (unitLength > (ulong)(s.Info.Length - r.Pos)) return -1;
        int end = r.Pos + (int)unitLength;
        ushort version = r.U16();
        if (version < 2 || version > 5) return end;
        ulong abbrevOffset; byte addressSize;
        if (version >= 5)
        {
            byte unitType = r.U8();
            addressSize = r.U8();
            abbrevOffset = dwarf64 ? r.U64() : r.U32();
            if (unitType is not (1 or 3)) return end; // DW_UT_compile, DW_UT_partial; type and split units name no code range here
        }
        else
        {
            abbrevOffset = dwarf64 ? r.U64() : r.U32();
            addressSize = r.U8();
        }
        if (addressSize is not (4 or 8)) return end;
        ulong code = r.Uleb();
        if (code == 0 || abbrevOffset >= (ulong)s.Abbrev.Length) return end;
        var attributes = FindAbbreviation(s.Abbrev, (int)abbrevOffset, code);
        if (attributes is null) return end;

        var values = new Dictionary<ulong, (Kind kind, ulong value, string? text, ulong form)>();
        foreach (var (attribute, form, implicitConst) in attributes)
        {
            var v = ReadValue(ref r, form, implicitConst, dwarf64, addressSize, version, s);
            values[attribute] = (v.kind, v.value, v.text, form);
        }

        ulong strBase = values.TryGetValue(AtStrOffsetsBase, out var sb) ? sb.value : dwarf64 ? 16UL : 8UL;
        ulong addrBase = values.TryGetValue(AtAddrBase, out var ab) ? ab.value : 8UL;
        ulong rngBase = values.TryGetValue(AtRngListsBase, out var rb) ? rb.value : dwarf64 ? 20UL : 12UL;
        string? Text(ulong attribute)
        {
            if (!values.TryGetValue(attribute, out var v)) return null;
            if (v.kind == Kind.String) return v.text;
            if (v.kind != Kind.StringIndex) return null;
            int size = dwarf64 ? 8 : 4;
            ulong at = strBase + v.value * (ulong)size;
            if (at + (ulong)size > (ulong)s.StrOffsets.Length) return null;
            ulong o = size == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(s.StrOffsets[(int)at..]) : BinaryPrimitives.ReadUInt32LittleEndian(s.StrOffsets[(int)at..]);
            return DwarfReader.StringAt(s.Str, o);
        }
        ulong? Address(ulong index)
        {
            ulong at = addrBase + index * addressSize;
            if (at + addressSize > (ulong)s.Addr.Length) return null;
            return addressSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(s.Addr[(int)at..]) : BinaryPrimitives.ReadUInt32LittleEndian(s.Addr[(int)at..]);
        }
        ulong? AddressOf(ulong attribute) => values.TryGetValue(attribute, out var v)
            ? v.kind == Kind.Address ? v.value : v.kind == Kind.AddressIndex ? Address(v.value) : null : null;

        string? name = Text(AtName);
        if (name is null) return end;
        string source = Join(Text(AtCompDir) ?? "", name);
        ulong? low = AddressOf(AtLowPc);

        if (values.TryGetValue(AtRanges, out var rv))
        {
            ulong baseAddress = low ?? 0;
            if (version >= 5)
            {
                ulong listOffset = rv.kind == Kind.RangeListIndex ? RngListOffset(s.RngLists, rngBase, rv.value, dwarf64) ?? ulong.MaxValue : rv.value;
                if (listOffset < (ulong)s.RngLists.Length) RngList(s.RngLists, (int)listOffset, baseAddress, addressSize, Address, (a, b) => ranges.Add((a, b, source)));
            }
            else if (rv.value < (ulong)s.Ranges.Length)
            {
                var q = new DwarfReader(s.Ranges, (int)rv.value);
                while (true)
                {
                    ulong a = addressSize == 8 ? q.U64() : q.U32(), b = addressSize == 8 ? q.U64() : q.U32();
                    if (a == 0 && b == 0) break;
                    if (a == (addressSize == 8 ? ulong.MaxValue : uint.MaxValue)) { baseAddress = b; continue; }
                    if (b > a) ranges.Add((baseAddress + a, baseAddress + b, source));
                }
            }
        }
        else if (low is { } lo && values.TryGetValue(AtHighPc, out var hv))
        {
            // DWARF 4+: high_pc of a constant class is the length; of the address class, the end.
            ulong? hi = hv.kind == Kind.Constant ? lo + hv.value : hv.kind is Kind.Address or Kind.AddressIndex ? AddressOf(AtHighPc) : null;
            if (hi is { } h && h > lo) ranges.Add((lo, h, source));
        }
        return end;
    }

    static ulong? RngListOffset(ReadOnlySpan<byte> lists, ulong baseOffset, ulong index, bool dwarf64)
    {
        int size = dwarf64 ? 8 : 4;
        ulong at = baseOffset + index * (ulong)size;
        if (at + (ulong)size > (ulong)lists.Length) return null;
        ulong o = size == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(lists[(int)at..]) : BinaryPrimitives.ReadUInt32LittleEndian(lists[(int)at..]);
        return baseOffset + o;
    }

    /// <summary>One DWARF 5 range list (DW_RLE_*), from its first entry to DW_RLE_end_of_list.</summary>
    static void RngList(ReadOnlySpan<byte> lists, int offset, ulong baseAddress, byte addressSize, Func<ulong, ulong?> address, Action<ulong, ulong> add)
    {
        var q = new DwarfReader(lists, offset);
        ulong Addr(ref DwarfReader q) => addressSize == 8 ? q.U64() : q.U32();
        for (int guard = 0; guard < 1 << 20; guard++)
        {
            byte kind = q.U8();
            switch (kind)
            {
                case 0: return;                                                                        // end_of_list
                case 1: baseAddress = address(q.Uleb()) ?? 0; break;                                   // base_addressx
                case 2: { var a = address(q.Uleb()); var b = address(q.Uleb()); if (a is { } x && b is { } y && y > x) add(x, y); break; } // startx_endx
                case 3: { var a = address(q.Uleb()); ulong n = q.Uleb(); if (a is { } x && n > 0) add(x, x + n); break; }             // startx_length
                case 4: { ulong a = q.Uleb(), b = q.Uleb(); if (b > a) add(baseAddress + a, baseAddress + b); break; }                 // offset_pair
                case 5: baseAddress = Addr(ref q); break;                                              // base_address
                case 6: { ulong a = Addr(ref q), b = Addr(ref q); if (b > a) add(a, b); break; }       // start_end
                case 7: { ulong a = Addr(ref q), n = q.Uleb(); if (n > 0) add(a, a + n); break; }      // start_length
                default: return;
            }
        }
    }

    /// <summary>The (attribute, form, implicit constant) list of one abbreviation, or null.</summary>
    static List<(ulong attribute, ulong form, long implicitConst)>? FindAbbreviation(ReadOnlySpan<byte> abbrev, int offset, ulong code)
    {
        var r = new DwarfReader(abbrev, offset);
        while (r.Pos < abbrev.Length)
        {
            ulong c = r.Uleb();
            if (c == 0) return null;
            r.Uleb(); r.U8(); // tag, has children
            var list = new List<(ulong, ulong, long)>();
            while (true)
            {
                ulong attribute = r.Uleb(), form = r.Uleb();
                if (attribute == 0 && form == 0) break;
                long implicitConst = form == 0x21 ? r.Sleb() : 0;
                list.Add((attribute, form, implicitConst));
            }
            if (c == code) return list;
        }
        return null;
    }

    static (Kind kind, ulong value, string? text) ReadValue(ref DwarfReader r, ulong form, long implicitConst, bool dwarf64, byte addressSize, ushort version, Sections s)
    {
        ulong Offset(ref DwarfReader r) => dwarf64 ? r.U64() : r.U32();
        switch (form)
        {
            case 0x01: return (Kind.Address, addressSize == 8 ? r.U64() : r.U32(), null);       // addr
            case 0x0b: return (Kind.Constant, r.U8(), null);                                    // data1
            case 0x05: return (Kind.Constant, r.U16(), null);                                   // data2
            case 0x06: return (Kind.Constant, r.U32(), null);                                   // data4
            case 0x07: return (Kind.Constant, r.U64(), null);                                   // data8
            case 0x0d: return (Kind.Constant, (ulong)r.Sleb(), null);                           // sdata
            case 0x0f: return (Kind.Constant, r.Uleb(), null);                                  // udata
            case 0x21: return (Kind.Constant, (ulong)implicitConst, null);                      // implicit_const
            case 0x08: return (Kind.String, 0, r.CString());                                    // string
            case 0x0e: return (Kind.String, 0, DwarfReader.StringAt(s.Str, Offset(ref r)));                       // strp
            case 0x1f: return (Kind.String, 0, DwarfReader.StringAt(s.LineStr, Offset(ref r)));                   // line_strp
            case 0x1a: case 0x1f02: return (Kind.StringIndex, r.Uleb(), null);                  // strx, GNU_str_index
            case 0x25: return (Kind.StringIndex, r.U8(), null);                                 // strx1
            case 0x26: return (Kind.StringIndex, r.U16(), null);                                // strx2
            case 0x27: return (Kind.StringIndex, r.U24(), null);                                // strx3
            case 0x28: return (Kind.StringIndex, r.U32(), null);                                // strx4
            case 0x1b: case 0x1f01: return (Kind.AddressIndex, r.Uleb(), null);                 // addrx, GNU_addr_index
            case 0x29: return (Kind.AddressIndex, r.U8(), null);                                // addrx1
            case 0x2a: return (Kind.AddressIndex, r.U16(), null);                               // addrx2
            case 0x2b: return (Kind.AddressIndex, r.U24(), null);                               // addrx3
            case 0x2c: return (Kind.AddressIndex, r.U32(), null);                               // addrx4
            case 0x17: return (Kind.SectionOffset, Offset(ref r), null);                        // sec_offset
            case 0x23: return (Kind.RangeListIndex, r.Uleb(), null);                            // rnglistx
            case 0x22: case 0x15: return (Kind.None, r.Uleb(), null);                           // loclistx, ref_udata
            case 0x0c: case 0x11: r.U8(); return default;                                       // flag, ref1
            case 0x12: r.U16(); return default;                                                 // ref2
            case 0x13: case 0x1c: r.U32(); return default;                                      // ref4, ref_sup4
            case 0x14: case 0x20: case 0x24: r.U64(); return default;                           // ref8, ref_sig8, ref_sup8
            case 0x10: if (version == 2) r.Skip(addressSize); else Offset(ref r); return default; // ref_addr
            case 0x1d: case 0x1f20: case 0x1f21: Offset(ref r); return default;                 // strp_sup, GNU_ref_alt, GNU_strp_alt
            case 0x19: return default;                                                          // flag_present
            case 0x1e: r.Skip(16); return default;                                              // data16
            case 0x0a: r.Skip(r.U8()); return default;                                          // block1
            case 0x03: r.Skip(r.U16()); return default;                                         // block2
            case 0x04: r.Skip(checked((int)r.U32())); return default;                           // block4
            case 0x09: case 0x18: r.Skip(checked((int)r.Uleb())); return default;               // block, exprloc
            case 0x16: return ReadValue(ref r, r.Uleb(), implicitConst, dwarf64, addressSize, version, s); // indirect
            default: throw new FormatException($"unsupported form 0x{form:x} in a compilation unit entry");
        }
    }

    /// <summary>DW_AT_name against DW_AT_comp_dir; `./src/x.c` (what -ffile-prefix-map=DIR=. leaves) reads as `src/x.c`.</summary>
    static string Join(string dir, string file)
    {
        string p = file.StartsWith('/') || dir.Length == 0 || dir == "." ? file : dir.TrimEnd('/') + "/" + file;
        while (p.StartsWith("./", StringComparison.Ordinal)) p = p[2..];
        return p;
    }
}
