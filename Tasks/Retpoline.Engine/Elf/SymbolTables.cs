namespace Retpoline.Elf;

/// <summary>
/// Reads .symtab and .dynsym directly, for the files ELFSharp cannot read: under extended section numbering
/// (e_shnum 0, the count in section 0) ELFSharp sees no sections at all, and a symbol whose st_shndx is SHN_XINDEX
/// has its real section index in the SHT_SYMTAB_SHNDX table linked to its symbol table. The tables were validated by
/// <see cref="ElfFile.Parse"/> (entry size, string-table link, index-table size); a test holds this reader to
/// ELFSharp's output on every fixture.
/// </summary>
static class SymbolTables
{
    const int SymSize = 24;

    public static (List<ElfSymbol> symtab, List<ElfSymbol> dynsym) Read(string path, byte[] data, ElfSection[] sections)
    {
        var symtab = new List<ElfSymbol>();
        var dynsym = new List<ElfSymbol>();
        foreach (var s in sections)
        {
            var target = s.Type == ElfSection.SHT_SYMTAB ? symtab : s.Type == ElfSection.SHT_DYNSYM ? dynsym : null;
            if (target is null || target.Count > 0) continue; // the first table of each kind, as ELFSharp's reader takes it
            var strings = sections[s.Link];
            var index = sections.FirstOrDefault(x => x.Type == ElfSection.SHT_SYMTAB_SHNDX && x.Link == s.Index);
            int count = (int)(s.Size / SymSize);
            for (int i = 0; i < count; i++)
            {
                int o = (int)s.FileOffset + i * SymSize;
                uint name = ElfFile.U32(data, o);
                byte info = data[o + 4], other = data[o + 5];
                ushort shndx = ElfFile.U16(data, o + 6);
                int section = shndx == ElfFile.SHN_XINDEX && index is not null
                    ? (int)Math.Min(ElfFile.U32(data, (int)index.FileOffset + i * 4), int.MaxValue)
                    : ElfSymbol.Index(shndx);
                string text = i == 0 && name == 0 ? "" : ElfFile.CString(data, (ulong)strings.FileOffset, (ulong)strings.Size, name)
                    ?? throw new RetpolineException(Codes.BadSymbolTable, path, $"symbol {i} of {s.Name} has name offset {name}, outside its string table");
                target.Add(new ElfSymbol(text, ElfFile.U64(data, o + 8), ElfFile.U64(data, o + 16), (byte)(info & 0xf), (byte)(info >> 4), (byte)(other & 3), section));
            }
        }
        return (symtab, dynsym);
    }
}
