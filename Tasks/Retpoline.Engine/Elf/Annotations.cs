namespace Retpoline.Elf;

/// <summary>
/// Addresses marked RETPOLINE_SAFE in source (native/retpoline.h): objtool's ANNOTATE_RETPOLINE_SAFE for user space.
/// Each mark is an 8-byte absolute address in the non-allocated section `.retpoline_safe`. In a linked file the
/// linker has resolved them; in an object file (ET_REL) they are still relocations against a code section, so they
/// are read from `.rela.retpoline_safe` as (section, offset).
/// </summary>
public static class Annotations
{
    public const string SectionName = ".retpoline_safe";
    const int Entry = 8, RelaSize = 24;

    /// <summary>Annotated instruction addresses, keyed by the code section they are in.</summary>
    public static IReadOnlyList<(int section, ulong address)> Read(ElfFile elf)
    {
        var marks = new List<(int, ulong)>();
        var section = elf.FindSection(SectionName);
        if (section is null || !section.HasFileBytes) return marks;
        var bytes = elf.Bytes(section);
        if (elf.Kind != ElfKind.Relocatable)
        {
            for (int o = 0; o + Entry <= bytes.Length; o += Entry)
            {
                ulong address = ElfFile.U64(bytes, o);
                marks.Add((elf.SectionAt(address)?.Index ?? -1, address));
            }
            return marks;
        }
        foreach (var rela in elf.Sections)
        {
            if (rela.Type != ElfSection.SHT_RELA || rela.Name != ".rela" + SectionName) continue;
            var r = elf.Bytes(rela);
            var symtab = elf.Sections[(int)rela.Link];
            for (int o = 0; o + RelaSize <= r.Length; o += RelaSize)
            {
                ulong info = ElfFile.U64(r, o + 8);
                long addend = (long)ElfFile.U64(r, o + 16);
                int symIndex = (int)(info >> 32);
                if (symtab.Type != ElfSection.SHT_SYMTAB || symIndex >= elf.Symbols.Count) continue;
                var sym = elf.Symbols[symIndex];
                if (!sym.IsDefined || sym.SectionIndex >= elf.Sections.Count) continue;
                marks.Add((sym.SectionIndex, sym.Value + (ulong)addend));
            }
        }
        return marks;
    }
}
