using System.Buffers.Binary;
using System.Text;
using Retpoline.Elf;

namespace Retpoline.Patching;

/// <summary>One inlined call site as recorded in `.retpoline_sites`.</summary>
public sealed record SiteEntry(
    ulong Address,
    /// <summary>5 (`e8`/`e9 rel32`) or 6 (cs-prefixed).</summary>
    int Length,
    CallSiteKind Kind,
    int Register,
    /// <summary>The site branched to a `__x86_indirect_thunk_nt_&lt;reg&gt;` thunk: the inline branch is `notrack`.</summary>
    bool NoTrack,
    /// <summary>The vendor whose form the site holds (Amd or None).</summary>
    Vendor Vendor,
    /// <summary>The compiler's bytes: the direct branch to the thunk.</summary>
    byte[] Original,
    /// <summary>The thunk the original bytes branch to (a cross-check against the rel32).</summary>
    ulong Thunk)
{
    public bool SameAs(SiteEntry o) => Address == o.Address && Length == o.Length && Kind == o.Kind && Register == o.Register
        && NoTrack == o.NoTrack && Vendor == o.Vendor && Thunk == o.Thunk && Original.AsSpan().SequenceEqual(o.Original);
}

/// <summary>
/// The `.retpoline_sites` section: a non-allocated (SHF_ALLOC clear, so never loaded) SHT_PROGBITS section that
/// `patch --call-sites inline` adds after link. Little-endian throughout.
/// <code>
/// header (48 bytes)
///   0  8  magic "RPLSITES"
///   8  u16 version (1)
///  10  u16 header size (48)
///  12  u16 entry size (32)
///  14  u16 reserved (0)
///  16  u32 entry count
///  20  u32 reserved (0)
///  24  u64 base file length   the file before patch appended the record (0: the record was not appended by us)
///  32  u64 base e_shoff
///  40  u16 base e_shnum
///  42  u16 base e_shstrndx
///  44  u32 reserved (0)
/// entry (32 bytes), sorted by address
///   0  u64 address            virtual address of the site's first byte
///   8  u8  length             5 or 6
///   9  u8  kind               0 call, 1 jmp
///  10  u8  register           x86 register number: 0 rax, 1 rcx, 2 rdx, 3 rbx, 5 rbp, 6 rsi, 7 rdi, 8–15 r8–r15
///  11  u8  flags              bit 0: notrack (the site called an _nt_ thunk)
///  12  u8  vendor             1 Amd, 2 None (the form the site holds)
///  13  u8[3] reserved (0)
///  16  u8[8] original bytes   the first `length` bytes are the compiler's; the rest 0
///  24  u64 thunk address      what the original rel32 targets
/// </code>
/// Adding it moves no loaded byte: the record, a copy of `.shstrtab` with the new name and a copy of the section
/// header table (one entry longer) are appended to the end of the file, and e_shoff/e_shnum point at the copy; the old
/// table and name table stay where they were, unreferenced. The header remembers the base layout, so removing the
/// record (vendor Generic, or --call-sites thunk) truncates the file back to exactly the bytes it had before.
/// </summary>
public sealed class SiteRecord
{
    public const string SectionName = ".retpoline_sites";
    public const ushort Version = 1;
    public const int HeaderSize = 48, EntrySize = 32;
    static ReadOnlySpan<byte> Magic => "RPLSITES"u8;
    const int EhdrSize = 64, ShdrSize = 64;

    public IReadOnlyList<SiteEntry> Entries { get; }
    /// <summary>Where the record section is (null: no record in the file).</summary>
    public ElfSection? Section { get; }
    public ulong BaseLength { get; }
    public ulong BaseShoff { get; }
    public ushort BaseShnum { get; }
    public ushort BaseShstrndx { get; }

    SiteRecord(IReadOnlyList<SiteEntry> entries, ElfSection? section, ulong baseLength, ulong baseShoff, ushort baseShnum, ushort baseShstrndx)
    {
        Entries = entries; Section = section;
        BaseLength = baseLength; BaseShoff = baseShoff; BaseShnum = baseShnum; BaseShstrndx = baseShstrndx;
    }

    public static readonly SiteRecord None = new([], null, 0, 0, 0, 0);

    /// <summary>
    /// Reads the record. Returns <see cref="None"/> when the file has none; null with <paramref name="error"/> set
    /// when the section is there but unreadable.
    /// </summary>
    public static SiteRecord? Read(ElfFile elf, out string? error)
    {
        error = null;
        var section = elf.FindSection(SectionName);
        if (section is null) return None;
        if (!section.HasFileBytes || section.Size < HeaderSize) { error = $"section {SectionName} is {section.Size} bytes, shorter than its {HeaderSize}-byte header"; return null; }
        if ((section.Flags & ElfSection.SHF_ALLOC) != 0) { error = $"section {SectionName} is allocated (loaded); patch only ever adds it unloaded"; return null; }
        var d = SectionBytes(elf, section);
        if (!d[..8].SequenceEqual(Magic)) { error = $"section {SectionName} does not start with the magic \"RPLSITES\""; return null; }
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(d[8..]);
        if (version != Version) { error = $"section {SectionName} has version {version}; this tool reads version {Version}"; return null; }
        ushort headerSize = BinaryPrimitives.ReadUInt16LittleEndian(d[10..]), entrySize = BinaryPrimitives.ReadUInt16LittleEndian(d[12..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(d[16..]);
        if (headerSize != HeaderSize || entrySize != EntrySize) { error = $"section {SectionName} has header/entry sizes {headerSize}/{entrySize}, expected {HeaderSize}/{EntrySize}"; return null; }
        if ((ulong)count * EntrySize > (ulong)(d.Length - HeaderSize)) { error = $"section {SectionName} claims {count} entries but holds {(d.Length - HeaderSize) / EntrySize}"; return null; }

        var entries = new List<SiteEntry>((int)count);
        for (int i = 0; i < count; i++)
        {
            var e = d.Slice(HeaderSize + i * EntrySize, EntrySize);
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(e);
            int length = e[8], kind = e[9], reg = e[10], flags = e[11], vendor = e[12];
            string where = $"entry {i} (0x{address:x})";
            if (length is not (5 or 6)) { error = $"{SectionName} {where} has length {length}; sites are 5 or 6 bytes"; return null; }
            if (kind > 1) { error = $"{SectionName} {where} has kind {kind}"; return null; }
            if (reg > 15 || reg == 4) { error = $"{SectionName} {where} has register number {reg}"; return null; }
            if ((flags & ~1) != 0) { error = $"{SectionName} {where} has unknown flags 0x{flags:x}"; return null; }
            if (vendor is not (1 or 2)) { error = $"{SectionName} {where} has vendor {vendor}; only Amd (1) and None (2) inline"; return null; }
            if (i > 0 && address < entries[^1].Address + (ulong)entries[^1].Length) { error = $"{SectionName} {where} overlaps or precedes the entry before it"; return null; }
            entries.Add(new SiteEntry(address, length, (CallSiteKind)kind, reg, (flags & 1) != 0, (Vendor)vendor,
                e.Slice(16, length).ToArray(), BinaryPrimitives.ReadUInt64LittleEndian(e[24..])));
        }
        return new SiteRecord(entries, section, BinaryPrimitives.ReadUInt64LittleEndian(d[24..]), BinaryPrimitives.ReadUInt64LittleEndian(d[32..]),
            BinaryPrimitives.ReadUInt16LittleEndian(d[40..]), BinaryPrimitives.ReadUInt16LittleEndian(d[42..]));
    }

    /// <summary>
    /// The section's bytes. Verify loads large files sparsely (ElfFile.ReadNeeded), and the record is not among the
    /// sections it reads, so unless the bytes in memory are evidently the record they are read from the file itself.
    /// </summary>
    static ReadOnlySpan<byte> SectionBytes(ElfFile elf, ElfSection section)
    {
        var inMemory = elf.Bytes(section);
        if (inMemory[..8].SequenceEqual(Magic)) return inMemory;
        try
        {
            if (!File.Exists(elf.Path) || new FileInfo(elf.Path).Length != elf.Data.Length) return inMemory;
            using var handle = File.OpenHandle(elf.Path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var bytes = new byte[section.Size];
            int done = 0;
            while (done < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(done), section.FileOffset + done);
                if (n <= 0) return inMemory;
                done += n;
            }
            return bytes;
        }
        catch (IOException) { return inMemory; }
        catch (UnauthorizedAccessException) { return inMemory; }
    }

    /// <summary>The record's section contents for these entries (sorted by address) and base layout.</summary>
    public static byte[] Serialize(IReadOnlyList<SiteEntry> entries, ulong baseLength, ulong baseShoff, ushort baseShnum, ushort baseShstrndx)
    {
        var d = new byte[HeaderSize + entries.Count * EntrySize];
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(10), HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(12), EntrySize);
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(16), (uint)entries.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(24), baseLength);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(32), baseShoff);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(40), baseShnum);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(42), baseShstrndx);
        for (int i = 0; i < entries.Count; i++)
        {
            var s = entries[i];
            var e = d.AsSpan(HeaderSize + i * EntrySize, EntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(e, s.Address);
            e[8] = (byte)s.Length;
            e[9] = (byte)s.Kind;
            e[10] = (byte)s.Register;
            e[11] = (byte)(s.NoTrack ? 1 : 0);
            e[12] = (byte)s.Vendor;
            s.Original.AsSpan(0, s.Length).CopyTo(e[16..]);
            BinaryPrimitives.WriteUInt64LittleEndian(e[24..], s.Thunk);
        }
        return d;
    }

    /// <summary>
    /// Adds to <paramref name="edits"/> what turns the input file (<paramref name="data"/>: its bytes as loaded, code
    /// already rewritten) into the output with the record replaced by <paramref name="entries"/>, or removed when
    /// there are none.
    /// <list type="bullet">
    /// <item>A record this tool appended (the base layout still checks out) is cut off first, giving back the file as
    /// it was before, byte for byte; a new record, if any, is appended to that.</item>
    /// <item>A record some other tool has since moved (objcopy, strip rewrite the layout) is updated where it is, or
    /// its section header is pointed at a copy appended at the end when the new record is longer.</item>
    /// <item>No record: append one.</item>
    /// </list>
    /// </summary>
    public static void Write(string path, byte[] data, SiteRecord existing, IReadOnlyList<SiteEntry> entries, FileEdits edits)
    {
        var layout = (shoff: U64(data, 40), shnum: U16(data, 60), shstrndx: U16(data, 62), length: (long)data.Length);
        if (existing.Section is { } section)
        {
            if (!IsAppended(data, existing)) { UpdateInPlace(path, data, section, entries, edits); return; }
            edits.KeepLength = (long)existing.BaseLength;
            SetHeader(edits, existing.BaseShoff, existing.BaseShnum, existing.BaseShstrndx);
            layout = (existing.BaseShoff, existing.BaseShnum, existing.BaseShstrndx, (long)existing.BaseLength);
        }
        if (entries.Count > 0) Append(path, data, layout, entries, edits);
    }

    /// <summary>
    /// Reads (through <paramref name="read"/>) the base layout a record at <paramref name="offset"/> remembers: the
    /// section header table and name table the file had before the record was appended, which nothing references any
    /// more, so a loader that reads only referenced sections would not have them. Implausible values read nothing.
    /// </summary>
    internal static void LoadBaseLayout(byte[] data, long offset, long size, Action<long, int> read)
    {
        if (size < HeaderSize || !data.AsSpan((int)offset, 8).SequenceEqual(Magic)) return;
        var h = data.AsSpan((int)offset, HeaderSize);
        ulong baseLength = U64(h, 24), shoff = U64(h, 32);
        ushort shnum = U16(h, 40), shstrndx = U16(h, 42);
        if (!BaseTableFits(baseLength, shoff, shnum, data.Length) || shstrndx >= shnum) return;
        read((long)shoff, shnum * ShdrSize);
        var names = data.AsSpan((int)shoff + shstrndx * ShdrSize, ShdrSize);
        ulong namesOffset = U64(names, 24), namesSize = U64(names, 32);
        if (namesOffset <= baseLength && namesSize <= baseLength - namesOffset && namesSize > 0) read((long)namesOffset, (int)namesSize);
    }

    /// <summary>The base table lies inside the base file, which lies inside this one (no sum that can wrap).</summary>
    static bool BaseTableFits(ulong baseLength, ulong shoff, ushort shnum, long fileLength)
        => baseLength >= EhdrSize && baseLength <= (ulong)fileLength && shnum > 0 && shoff <= baseLength && (ulong)shnum * ShdrSize <= baseLength - shoff;

    /// <summary>
    /// True when this record sits in the layout <see cref="Append"/> made (so removing it gives back the base file):
    /// e_shoff points past the base length at a table that is the base table plus one entry, the base table is still
    /// at its old place, and nothing the new table points at lies inside the base file except what the base table did.
    /// </summary>
    internal static bool IsAppended(byte[] data, SiteRecord r)
    {
        if (!BaseTableFits(r.BaseLength, r.BaseShoff, r.BaseShnum, data.Length)) return false;
        ulong shoff = U64(data, 40);
        ushort shnum = U16(data, 60), shstrndx = U16(data, 62);
        if (shnum != r.BaseShnum + 1 || shstrndx != r.BaseShstrndx || r.BaseShstrndx == 0 || r.BaseShstrndx >= r.BaseShnum) return false;
        if (shoff < r.BaseLength || shoff > (ulong)data.Length || (ulong)shnum * ShdrSize != (ulong)data.Length - shoff) return false;
        for (int i = 0; i < r.BaseShnum; i++)
        {
            var now = data.AsSpan((int)shoff + i * ShdrSize, ShdrSize);
            var then = data.AsSpan((int)r.BaseShoff + i * ShdrSize, ShdrSize);
            if (i == r.BaseShstrndx)
            {
                // Same name, type, flags, address; offset and size point at the appended copy of the names.
                if (!now[..24].SequenceEqual(then[..24]) || !now[40..].SequenceEqual(then[40..]) || U64(now, 24) < r.BaseLength) return false;
            }
            else if (!now.SequenceEqual(then)) return false;
        }
        var last = data.AsSpan((int)shoff + r.BaseShnum * ShdrSize, ShdrSize);
        return r.Section is not null && r.Section.Index == r.BaseShnum && U64(last, 24) >= r.BaseLength;
    }

    /// <summary>Appends the record, a name table with its name and a section header table one entry longer.</summary>
    static void Append(string path, byte[] data, (ulong shoff, ushort shnum, ushort shstrndx, long length) file, IReadOnlyList<SiteEntry> entries, FileEdits edits)
    {
        var (shoff, shnum, shstrndx, length) = file;
        if (shnum == 0 || shnum + 1 >= 0xff00 || shstrndx == 0 || shstrndx >= shnum)
            throw new RetpolineException(Codes.PatchRefused, path, shnum == 0
                ? $"cannot add the {SectionName} section to a file with extended section numbering (more than 65,279 sections); nothing was written"
                : $"cannot add the {SectionName} section to a file with {shnum} section headers (name table {shstrndx}); nothing was written");
        var names = data.AsSpan((int)shoff + shstrndx * ShdrSize, ShdrSize);
        ulong namesOffset = U64(names, 24), namesSize = U64(names, 32);

        var record = Serialize(entries, (ulong)length, shoff, shnum, shstrndx);
        var name = Encoding.ASCII.GetBytes(SectionName + "\0");
        long recordAt = Align(length, 8);
        long namesAt = recordAt + record.Length;
        long tableAt = Align(namesAt + (long)namesSize + name.Length, 8);
        long total = tableAt + (long)(shnum + 1) * ShdrSize;
        if (total > int.MaxValue) throw new RetpolineException(Codes.PatchRefused, path, "the file would grow past 2 GiB; nothing was written");

        // The tail, positioned as in the output file: record, names + ".retpoline_sites", the table one entry longer.
        var tail = new byte[total - length];
        Span<byte> At(long offset, long size) => tail.AsSpan((int)(offset - length), (int)size);
        record.CopyTo(At(recordAt, record.Length));
        data.AsSpan((int)namesOffset, (int)namesSize).CopyTo(At(namesAt, (long)namesSize));
        name.CopyTo(At(namesAt + (long)namesSize, name.Length));
        data.AsSpan((int)shoff, shnum * ShdrSize).CopyTo(At(tableAt, shnum * ShdrSize));

        var namesHeader = At(tableAt + shstrndx * ShdrSize, ShdrSize);
        BinaryPrimitives.WriteUInt64LittleEndian(namesHeader[24..], (ulong)namesAt);
        BinaryPrimitives.WriteUInt64LittleEndian(namesHeader[32..], namesSize + (ulong)name.Length);

        var h = At(tableAt + shnum * ShdrSize, ShdrSize);
        BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)namesSize);                     // sh_name
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], ElfSection.SHT_PROGBITS);        // sh_type
        // sh_flags 0 (not SHF_ALLOC: never loaded), sh_addr 0
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], (ulong)recordAt);              // sh_offset
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)record.Length);         // sh_size
        // sh_link 0, sh_info 0
        BinaryPrimitives.WriteUInt64LittleEndian(h[48..], 8);                            // sh_addralign
        BinaryPrimitives.WriteUInt64LittleEndian(h[56..], EntrySize);                    // sh_entsize

        edits.Tail = tail;
        SetHeader(edits, (ulong)tableAt, (ushort)(shnum + 1), shstrndx);
    }

    /// <summary>A record whose layout another tool rewrote: keep that layout, write the record where it is or at the end.</summary>
    static void UpdateInPlace(string path, byte[] data, ElfSection section, IReadOnlyList<SiteEntry> entries, FileEdits edits)
    {
        var record = Serialize(entries, 0, 0, 0, 0);
        var cleared = new byte[section.Size];
        if (record.Length <= section.Size)
        {
            record.CopyTo(cleared, 0);
            edits.Overwrite(section.FileOffset, cleared);
            SetSize(data, edits, section.Index, section.FileOffset, record.Length);
            return;
        }
        long at = Align(data.Length, 8);
        if (at + record.Length > int.MaxValue) throw new RetpolineException(Codes.PatchRefused, path, "the file would grow past 2 GiB; nothing was written");
        edits.Overwrite(section.FileOffset, cleared);
        var tail = new byte[at - data.Length + record.Length];
        record.CopyTo(tail, at - data.Length);
        edits.Tail = tail;
        SetSize(data, edits, section.Index, at, record.Length);
    }

    static void SetSize(byte[] data, FileEdits edits, int index, long offset, int size)
    {
        var field = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(field, (ulong)offset);
        BinaryPrimitives.WriteUInt64LittleEndian(field.AsSpan(8), (ulong)size);
        edits.Overwrite((long)U64(data, 40) + index * ShdrSize + 24, field);
    }

    /// <summary>e_shoff, e_shnum, e_shstrndx.</summary>
    static void SetHeader(FileEdits edits, ulong shoff, ushort shnum, ushort shstrndx)
    {
        var field = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(field, shoff);
        edits.Overwrite(40, field);
        var counts = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(counts, shnum);
        BinaryPrimitives.WriteUInt16LittleEndian(counts.AsSpan(2), shstrndx);
        edits.Overwrite(60, counts);
    }

    static long Align(long v, int a) => (v + a - 1) / a * a;
    static ulong U64(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt64LittleEndian(d[o..]);
    static ushort U16(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt16LittleEndian(d[o..]);
}
