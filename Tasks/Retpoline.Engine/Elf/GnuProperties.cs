namespace Retpoline.Elf;

/// <summary>The x86 feature bits of `.note.gnu.property` (GNU_PROPERTY_X86_FEATURE_1_AND): IBT and SHSTK.</summary>
public static class GnuProperties
{
    const uint NT_GNU_PROPERTY_TYPE_0 = 5, GNU_PROPERTY_X86_FEATURE_1_AND = 0xc0000002;
    const uint IBT = 1, SHSTK = 2;

    public static (bool ibt, bool shstk) Read(ElfFile elf)
    {
        uint features = 0;
        foreach (var s in elf.Sections)
        {
            if (s.Type != ElfSection.SHT_NOTE || s.Name != ".note.gnu.property") continue;
            var d = elf.Bytes(s);
            int o = 0;
            while (o + 12 <= d.Length)
            {
                uint namesz = ElfFile.U32(d, o), descsz = ElfFile.U32(d, o + 4), type = ElfFile.U32(d, o + 8);
                long nameEnd = o + 12 + Align(namesz, 4), descEnd = nameEnd + Align(descsz, 8);
                if (descEnd > d.Length || namesz > 16) break;
                if (type == NT_GNU_PROPERTY_TYPE_0 && namesz == 4 && d.Slice(o + 12, 4).SequenceEqual("GNU\0"u8))
                {
                    int p = (int)nameEnd;
                    while (p + 8 <= nameEnd + descsz)
                    {
                        uint prType = ElfFile.U32(d, p), size = ElfFile.U32(d, p + 4);
                        if (p + 8 + size > nameEnd + descsz) break;
                        if (prType == GNU_PROPERTY_X86_FEATURE_1_AND && size >= 4) features |= ElfFile.U32(d, p + 8);
                        p += 8 + (int)Align(size, 8);
                    }
                }
                o = (int)descEnd;
            }
        }
        return ((features & IBT) != 0, (features & SHSTK) != 0);
    }

    static long Align(uint v, int a) => (v + (long)a - 1) & ~((long)a - 1);
}
