using System.Buffers.Binary;
using ELFSharp.ELF;
using ELFSharp.ELF.Sections;
using Retpoline.IO;

namespace Retpoline.Elf;

/// <summary>
/// A 64-bit little-endian x86-64 ELF file held in memory once. The headers are validated by hand before ELFSharp
/// sees them (ELFSharp trusts offsets and sizes; hostile input must become one coded line, not an exception deep
/// inside a reader). Section bytes are never copied: the sweep and the patcher read <see cref="Data"/> by offset.
/// </summary>
public sealed class ElfFile
{
    const int EhdrSize = 64, ShdrSize = 64, PhdrSize = 56, SymSize = 24, RelaSize = 24;
    const ushort ET_REL = 1, ET_EXEC = 2, ET_DYN = 3, EM_X86_64 = 62;
    /// <summary>e_shstrndx / st_shndx escape: the real index is elsewhere (section 0's sh_link, SHT_SYMTAB_SHNDX).</summary>
    internal const ushort SHN_XINDEX = 0xffff;
    const uint PT_INTERP = 3;
    /// <summary>Code at least this large is read while ELFSharp reads the symbols (libLLVM's 50 MB: ~30 ms saved).</summary>
    const long OverlapCodeBytes = 8 << 20;

    public string Path { get; }
    public byte[] Data { get; }
    public ElfKind Kind { get; }
    public IReadOnlyList<ElfSection> Sections { get; }
    /// <summary>.symtab when present, else .dynsym: the names a reader of the binary expects.</summary>
    public IReadOnlyList<ElfSymbol> Symbols { get; }
    public IReadOnlyList<ElfSymbol> DynamicSymbols { get; }
    public bool HasStaticSymbols { get; }

    ElfFile(string path, byte[] data, ElfKind kind, IReadOnlyList<ElfSection> sections, IReadOnlyList<ElfSymbol> symtab,
        IReadOnlyList<ElfSymbol> dynsym)
    {
        Path = path; Data = data; Kind = kind; Sections = sections;
        HasStaticSymbols = symtab.Count > 0;
        Symbols = HasStaticSymbols ? symtab : dynsym;
        DynamicSymbols = dynsym;
    }

    public ElfSection? FindSection(string name) => Sections.FirstOrDefault(s => s.Name == name);

    public ElfSection? SectionAt(ulong address)
    {
        foreach (var s in Sections)
            if ((s.Flags & ElfSection.SHF_ALLOC) != 0 && s.ContainsAddress(address)) return s;
        return null;
    }

    public ReadOnlySpan<byte> Bytes(ElfSection s) => s.HasFileBytes ? Data.AsSpan(checked((int)s.FileOffset), checked((int)s.Size)) : default;

    /// <summary>Reads and validates a file. Every failure is a <see cref="RetpolineException"/> with an RPL01xx code.</summary>
    /// <param name="wholeFile">
    /// True to read every byte. Otherwise only the sections verify and patch read are loaded (code, symbols, strings,
    /// notes, relocations, line tables, the call-site record) into a buffer laid out like the file: on a large
    /// library that skips more than half the bytes (.rodata, .eh_frame, debug info other than lines), and the
    /// pages never read are never touched, so they cost no memory.
    /// </param>
    public static ElfFile Load(string path, bool wholeFile = false)
    {
        using var input = InputFile.Open(path);
        return Load(input, wholeFile);
    }

    /// <summary>Reads an input the caller holds open (patch streams the patched copy from the same descriptor).</summary>
    public static ElfFile Load(InputFile input, bool wholeFile = false)
    {
        string path = input.Path;
        var handle = input.Handle;
        long length = input.Length;
        try
        {
            // Uninitialised on purpose: verify reads only the ranges it loaded (ReadNeeded), and zeroing a 100 MB
            // buffer it will mostly overwrite costs a tenth of a large verify.
            bool whole = wholeFile || length < 1 << 20;
            byte[] data;
            try { data = whole ? new byte[length] : GC.AllocateUninitializedArray<byte>((int)length); }
            catch (OutOfMemoryException) { throw new RetpolineException(Codes.TooLarge, path, $"not enough memory to read its {InputFile.Thousands(length)} bytes"); }
            if (whole)
            {
                ReadRange(handle, data, 0, data.Length);
                return Parse(path, data);
            }
            // Code is most of the bytes: it is read while ELFSharp reads the symbols (which the sweep needs first).
            var code = ReadNeeded(handle, data);
            Timing.Mark("read headers, symbols");
            void ReadCode()
            {
                foreach (var (offset, size) in code) ReadRange(handle, data, offset, size);
                Timing.Mark("read code");
            }
            // Overlapping pays only when the code takes longer to read than a thread takes to start.
            if (code.Sum(c => (long)c.size) < OverlapCodeBytes)
            {
                ReadCode();
                return Parse(path, data);
            }
            return Parse(path, data, ReadCode);
        }
        catch (UnauthorizedAccessException) { throw new RetpolineException(Codes.IoError, path, "permission denied"); }
        // An assembly that fails to load (FileNotFound/FileLoadException are IOExceptions too) is a broken install of
        // ours, not an unreadable input: let it surface as the internal error it is.
        catch (IOException e) when (!IsAssemblyLoadFailure(e, path)) { throw new RetpolineException(Codes.IoError, path, $"cannot read: {e.Message}"); }
    }

    static bool IsAssemblyLoadFailure(IOException e, string path) => e switch
    {
        FileLoadException => true,
        FileNotFoundException f => f.FileName is { } name && name != path && !File.Exists(name),
        _ => false,
    };

    static void ReadRange(Microsoft.Win32.SafeHandles.SafeFileHandle handle, byte[] data, long offset, int size)
    {
        int done = 0;
        while (done < size)
        {
            int n = RandomAccess.Read(handle, data.AsSpan((int)offset + done, size - done), offset + done);
            if (n <= 0) throw new IOException("file shrank while it was read");
            done += n;
        }
    }

    /// <summary>
    /// Reads the ranges verify needs: headers first, then the section name table, then every needed section that is
    /// not code. Returns the code ranges, which the caller reads later. Anything implausible is skipped here:
    /// <see cref="Parse"/> validates for real and reports it.
    /// </summary>
    static List<(long offset, int size)> ReadNeeded(Microsoft.Win32.SafeHandles.SafeFileHandle handle, byte[] data)
    {
        var code = new List<(long, int)>();
        ReadRange(handle, data, 0, Math.Min(data.Length, EhdrSize));
        if (data.Length < EhdrSize || data[4] != 2 || data[5] != 1) return code;
        ulong phoff = U64(data, 32), shoff = U64(data, 40);
        ushort phnum = U16(data, 56);
        if (InFile(data.Length, phoff, (ulong)phnum * PhdrSize)) ReadRange(handle, data, (long)phoff, phnum * PhdrSize);
        // Extended numbering keeps the real counts in section 0: read it first.
        if (shoff != 0 && (U16(data, 60) == 0 || U16(data, 62) == SHN_XINDEX) && InFile(data.Length, shoff, ShdrSize))
            ReadRange(handle, data, (long)shoff, ShdrSize);
        var counts = SectionCounts(data);
        if (counts is null || !InFile(data.Length, shoff, (ulong)counts.Value.shnum * ShdrSize)) return code;
        var (shnum, shstrndx, _) = counts.Value;
        ReadRange(handle, data, (long)shoff, shnum * ShdrSize);

        (uint name, uint type, ulong flags, ulong off, ulong size, uint link) Header(int i)
        {
            int o = (int)shoff + i * ShdrSize;
            return (U32(data, o), U32(data, o + 4), U64(data, o + 8), U64(data, o + 24), U64(data, o + 32), U32(data, o + 40));
        }
        bool Usable((uint name, uint type, ulong flags, ulong off, ulong size, uint link) h)
            => h.type != ElfSection.SHT_NOBITS && h.size > 0 && InFile(data.Length, h.off, h.size);

        var names = shstrndx > 0 && shstrndx < shnum ? Header(shstrndx) : default;
        if (Usable(names)) ReadRange(handle, data, (long)names.off, (int)names.size);
        var needed = new bool[shnum];
        for (int i = 1; i < shnum; i++)
        {
            var h = Header(i);
            if (!Usable(h)) continue;
            bool symbols = h.type is ElfSection.SHT_SYMTAB or ElfSection.SHT_DYNSYM;
            if ((h.flags & ElfSection.SHF_EXECINSTR) != 0 || symbols || h.type is ElfSection.SHT_NOTE or ElfSection.SHT_RELA or 6 /* SHT_DYNAMIC */ or ElfSection.SHT_SYMTAB_SHNDX or 14 or 15 /* SHT_INIT_ARRAY, SHT_FINI_ARRAY: startup code without symbols */
                || (Usable(names) && CString(data, names.off, names.size, h.name) is ".debug_line" or ".debug_line_str" or ".debug_str" or Annotations.SectionName or Patching.SiteRecord.SectionName))
                needed[i] = true;
            if (symbols && h.link < shnum) needed[h.link] = true; // the symbol names
        }
        for (int i = 1; i < shnum; i++)
        {
            if (!needed[i] || i == shstrndx || !Usable(Header(i))) continue;
            var h = Header(i);
            if ((h.flags & ElfSection.SHF_EXECINSTR) != 0) code.Add(((long)h.off, (int)h.size));
            else ReadRange(handle, data, (long)h.off, (int)h.size);
            // Patch may cut an appended call-site record off again: that needs the layout the record remembers.
            if (Usable(names) && CString(data, names.off, names.size, h.name) == Patching.SiteRecord.SectionName)
                Patching.SiteRecord.LoadBaseLayout(data, (long)h.off, (long)h.size, (offset, size) => ReadRange(handle, data, offset, size));
        }
        return code;
    }

    /// <summary>
    /// The section count and name-table index, from the ELF header or, under extended numbering (more than 65,279
    /// sections: GCC's -ffunction-sections output of a large file), from section 0: e_shnum 0 means section 0's
    /// sh_size holds the count, e_shstrndx SHN_XINDEX means its sh_link holds the index. Null when section 0 is
    /// needed and not in the file, or the count cannot be a section table in a file this size.
    /// </summary>
    internal static (int shnum, int shstrndx, bool extended)? SectionCounts(ReadOnlySpan<byte> d)
    {
        ulong shoff = U64(d, 40);
        long shnum = U16(d, 60), shstrndx = U16(d, 62);
        bool extended = false;
        if (shoff != 0 && (shnum == 0 || shstrndx == SHN_XINDEX))
        {
            if (!InFile(d.Length, shoff, ShdrSize)) return null;
            int o = (int)shoff;
            if (shnum == 0) { ulong count = U64(d, o + 32); if (count > (ulong)d.Length / ShdrSize) return null; shnum = (long)count; extended = true; }
            if (shstrndx == SHN_XINDEX) { shstrndx = U32(d, o + 40); extended = true; }
        }
        return ((int)shnum, (int)Math.Min(shstrndx, int.MaxValue), extended);
    }

    /// <param name="loadCode">Reads the code sections into <paramref name="data"/>; runs while the symbols are read.</param>
    public static ElfFile Parse(string path, byte[] data, Action? loadCode = null)
    {
        ReadOnlySpan<byte> d = data;
        if (d.Length == 0) throw new RetpolineException(Codes.NotElf, path, "empty file, not an ELF file");
        if (d.Length < 4 || d[0] != 0x7f || d[1] != (byte)'E' || d[2] != (byte)'L' || d[3] != (byte)'F')
            throw new RetpolineException(Codes.NotElf, path, "not an ELF file (bad magic)");
        if (d.Length < EhdrSize) throw new RetpolineException(Codes.Truncated, path, $"truncated ELF header ({d.Length} of {EhdrSize} bytes)");
        if (d[4] != 2) throw new RetpolineException(Codes.NotElf64, path, d[4] == 1 ? "32-bit ELF (ELFCLASS32); only x86-64 ELF64 is supported" : $"invalid ELF class {d[4]}");
        if (d[5] != 1) throw new RetpolineException(Codes.NotX86_64, path, "big-endian ELF; only little-endian x86-64 is supported");
        ushort type = U16(d, 16), machine = U16(d, 18);
        if (machine != EM_X86_64) throw new RetpolineException(Codes.NotX86_64, path, $"machine {ElfMachines.Name(machine)} ({machine}), not x86-64");
        if (type is not (ET_REL or ET_EXEC or ET_DYN))
            throw new RetpolineException(Codes.NotElf, path, type == 4 ? "core dump, not an executable, shared library or object" : $"unsupported ELF type {type}");

        ulong phoff = U64(d, 32), shoff = U64(d, 40);
        ushort phentsize = U16(d, 54), phnum = U16(d, 56), shentsize = U16(d, 58);
        if (shoff == 0 || U16(d, 60) == 0 && !(InFile(d.Length, shoff, ShdrSize) && U64(d, (int)shoff + 32) != 0))
            throw new RetpolineException(Codes.BadSectionTable, path, "no section headers (sstrip'd?); cannot locate code");
        if (shentsize != ShdrSize) throw new RetpolineException(Codes.BadSectionTable, path, $"section header size {shentsize}, expected {ShdrSize}");
        if (!InFile(d.Length, shoff, ShdrSize))
            throw new RetpolineException(Codes.Truncated, path, $"section header table at 0x{shoff:x} starts past the end of the file ({d.Length} bytes)");
        ulong count = U16(d, 60) != 0 ? U16(d, 60) : U64(d, (int)shoff + 32); // extended numbering: section 0's sh_size
        if (!InFile(d.Length, shoff, count > (ulong)d.Length ? ulong.MaxValue : count * ShdrSize))
            throw new RetpolineException(Codes.Truncated, path, $"section header table ({count} entries at 0x{shoff:x}) extends past the end of the file ({d.Length} bytes)");
        var (shnum, shstrndx, extended) = SectionCounts(d)!.Value;
        if (shstrndx == 0 || shstrndx >= shnum) throw new RetpolineException(Codes.BadSectionTable, path, $"section name table index {shstrndx} out of range");

        bool hasInterp = false;
        if (phnum > 0 && type != ET_REL)
        {
            if (phentsize != PhdrSize || !InFile(d.Length, phoff, (ulong)phnum * PhdrSize))
                throw new RetpolineException(Codes.Truncated, path, "program header table extends past the end of the file");
            for (int i = 0; i < phnum; i++)
                if (U32(d, (int)phoff + i * PhdrSize) == PT_INTERP) hasInterp = true;
        }

        var raw = new (uint name, uint type, ulong flags, ulong addr, ulong off, ulong size, uint link, ulong entsize)[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int o = (int)shoff + i * ShdrSize;
            raw[i] = (U32(d, o), U32(d, o + 4), U64(d, o + 8), U64(d, o + 16), U64(d, o + 24), U64(d, o + 32), U32(d, o + 40), U64(d, o + 56));
            if (i == 0) continue;
            var r = raw[i];
            if (r.type != ElfSection.SHT_NOBITS && r.size > 0 && !InFile(d.Length, r.off, r.size))
                throw new RetpolineException(Codes.Truncated, path, $"section {i} (0x{r.off:x}+0x{r.size:x}) extends past the end of the file ({d.Length} bytes)");
            if ((r.flags & ElfSection.SHF_EXECINSTR) != 0 && r.addr + r.size < r.addr)
                throw new RetpolineException(Codes.BadSectionTable, path, $"section {i} address range wraps around");
            if (r.link >= shnum) throw new RetpolineException(Codes.BadSectionTable, path, $"section {i} links to section {r.link}, past the {shnum} sections");
        }
        CheckNoOverlap(path, raw);

        var strtab = raw[shstrndx];
        if (strtab.type != ElfSection.SHT_STRTAB) throw new RetpolineException(Codes.BadSectionTable, path, "section name table is not a string table");
        var sections = new ElfSection[shnum];
        for (int i = 0; i < shnum; i++)
        {
            var r = raw[i];
            string name = i == 0 ? "" : CString(d, strtab.off, strtab.size, r.name)
                ?? throw new RetpolineException(Codes.BadSectionTable, path, $"section {i} name offset {r.name} is outside the name table");
            sections[i] = new ElfSection(i, name, r.type, r.flags, r.addr, (long)r.off, (long)r.size, r.entsize, r.link);
        }

        // Symbol tables must be well-formed before ELFSharp reads them.
        foreach (var s in sections)
        {
            if (s.Type == ElfSection.SHT_SYMTAB_SHNDX)
            {
                var table = sections[s.Link];
                if (table.Type is not (ElfSection.SHT_SYMTAB or ElfSection.SHT_DYNSYM) || s.Size < table.Size / SymSize * 4)
                    throw new RetpolineException(Codes.BadSymbolTable, path, $"extended section index table {s.Name} ({s.Size} bytes) does not cover symbol table {table.Name}");
                extended = true;
            }
            if (s.Type is not (ElfSection.SHT_SYMTAB or ElfSection.SHT_DYNSYM)) continue;
            if (s.EntrySize != SymSize || s.Size % SymSize != 0)
                throw new RetpolineException(Codes.BadSymbolTable, path, $"symbol table {s.Name} has entry size {s.EntrySize} and size {s.Size}");
            if (sections[s.Link].Type != ElfSection.SHT_STRTAB)
                throw new RetpolineException(Codes.BadSymbolTable, path, $"symbol table {s.Name} does not link to a string table");
        }

        (List<ElfSymbol>, List<ElfSymbol>) symbols;
        // ELFSharp knows nothing of extended numbering (it would see no sections at all): read those tables ourselves.
        Func<(List<ElfSymbol>, List<ElfSymbol>)> read = extended ? () => SymbolTables.Read(path, data, sections) : () => ReadSymbols(path, data, sections);
        if (loadCode is null)
            symbols = read();
        else
        {
            // ELFSharp reads only the symbol and string tables, which are loaded already; the code is not.
            var reading = Task.Run(read);
            loadCode();
            symbols = reading.GetAwaiter().GetResult();
        }
        var (symtab, dynsym) = symbols;
        Timing.Mark("symbols");
        var kind = type switch
        {
            ET_REL => ElfKind.Relocatable,
            ET_EXEC => ElfKind.Executable,
            _ => hasInterp ? ElfKind.PositionIndependentExecutable : ElfKind.SharedLibrary,
        };
        return new ElfFile(path, data, kind, sections, symtab, dynsym);
    }

    static void CheckNoOverlap(string path, (uint name, uint type, ulong flags, ulong addr, ulong off, ulong size, uint link, ulong entsize)[] raw)
    {
        // Two sections sharing file bytes would let a patch of one corrupt the other.
        var spans = new List<(ulong off, ulong end, int index)>();
        for (int i = 1; i < raw.Length; i++)
            if (raw[i].type != ElfSection.SHT_NOBITS && raw[i].size > 0) spans.Add((raw[i].off, raw[i].off + raw[i].size, i));
        spans.Sort();
        for (int i = 1; i < spans.Count; i++)
            if (spans[i].off < spans[i - 1].end)
                throw new RetpolineException(Codes.BadSectionTable, path, $"sections {spans[i - 1].index} and {spans[i].index} overlap in the file");
    }

    internal static (List<ElfSymbol> symtab, List<ElfSymbol> dynsym) ReadSymbols(string path, byte[] data, ElfSection[] sections)
    {
        var symtab = new List<ElfSymbol>();
        var dynsym = new List<ElfSymbol>();
        if (!sections.Any(s => s.Type is ElfSection.SHT_SYMTAB or ElfSection.SHT_DYNSYM)) return (symtab, dynsym);
        try
        {
            using var stream = new SectionsOnlyStream(data);
            var elf = ELFReader.Load<ulong>(stream, shouldOwnStream: false);
            foreach (var section in elf.Sections)
            {
                if (section is not ISymbolTable table) continue;
                var target = section.Type == SectionType.DynamicSymbolTable ? dynsym : section.Type == SectionType.SymbolTable ? symtab : null;
                if (target is null || target.Count > 0) continue;
                foreach (var e in table.Entries.Cast<SymbolEntry<ulong>>())
                    target.Add(new ElfSymbol(e.Name ?? "", e.Value, e.Size, (byte)e.Type, (byte)e.Binding, (byte)e.Visibility, ElfSymbol.Index(e.PointedSectionIndex)));
            }
        }
        catch (Exception e) when (e is not RetpolineException)
        {
            throw new RetpolineException(Codes.BadSymbolTable, path, $"unreadable symbol table ({e.GetType().Name}: {FirstLine(e.Message)})");
        }
        return (symtab, dynsym);
    }

    /// <summary>
    /// The dynamic symbol each of <paramref name="slots"/> (GOT addresses) is relocated against, from the allocated
    /// RELA tables: the first relocation naming a symbol wins. Asked for a few hundred PLT slots, it scans the raw
    /// tables once instead of materialising hundreds of thousands of relocations a large library carries.
    /// </summary>
    public Dictionary<ulong, string> RelocatedSymbols(IReadOnlySet<ulong> slots)
    {
        var names = new Dictionary<ulong, string>();
        if (slots.Count == 0) return names;
        ReadOnlySpan<byte> d = Data;
        foreach (var s in Sections)
        {
            if (s.Type != ElfSection.SHT_RELA || (s.Flags & ElfSection.SHF_ALLOC) == 0 || s.Size % RelaSize != 0) continue;
            for (long o = s.FileOffset; o + RelaSize <= s.FileOffset + s.Size; o += RelaSize)
            {
                ulong offset = U64(d, (int)o);
                if (!slots.Contains(offset) || names.ContainsKey(offset)) continue;
                uint sym = (uint)(U64(d, (int)o + 8) >> 32);
                if (sym > 0 && sym < DynamicSymbols.Count && DynamicSymbols[(int)sym].Name.Length > 0) names[offset] = DynamicSymbols[(int)sym].Name;
            }
        }
        return names;
    }

    internal static bool InFile(int length, ulong offset, ulong size) => offset <= (ulong)length && size <= (ulong)length - offset;

    internal static string? CString(ReadOnlySpan<byte> d, ulong tableOffset, ulong tableSize, uint at)
    {
        if (at >= tableSize) return null;
        var s = d.Slice((int)(tableOffset + at), (int)(tableSize - at));
        int end = s.IndexOf((byte)0);
        if (end < 0) return null;
        return System.Text.Encoding.UTF8.GetString(s[..end]);
    }

    static string FirstLine(string s) { int i = s.IndexOf('\n'); return i < 0 ? s : s[..i]; }

    internal static ushort U16(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt16LittleEndian(d[o..]);
    internal static uint U32(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt32LittleEndian(d[o..]);
    internal static ulong U64(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt64LittleEndian(d[o..]);
}
