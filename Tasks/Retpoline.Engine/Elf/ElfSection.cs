namespace Retpoline.Elf;

/// <summary>One section header, validated against the file's size when loaded.</summary>
public sealed record ElfSection(
    int Index,
    string Name,
    uint Type,
    ulong Flags,
    ulong Address,
    long FileOffset,
    long Size,
    ulong EntrySize,
    uint Link)
{
    public const uint SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_RELA = 4, SHT_NOTE = 7, SHT_NOBITS = 8, SHT_DYNSYM = 11, SHT_SYMTAB_SHNDX = 18;
    public const ulong SHF_ALLOC = 0x2, SHF_EXECINSTR = 0x4;

    public bool IsExecutable => (Flags & SHF_EXECINSTR) != 0 && Type != SHT_NOBITS;
    public bool HasFileBytes => Type != SHT_NOBITS && Size > 0;
    public ulong EndAddress => Address + (ulong)Size;
    public bool ContainsAddress(ulong address) => address >= Address && address - Address < (ulong)Size;

    /// <summary>File offset of a virtual address inside this section. Caller checks ContainsAddress first.</summary>
    public long OffsetOf(ulong address) => FileOffset + (long)(address - Address);
}

/// <summary>A defined or undefined symbol, by index in its table.</summary>
public readonly record struct ElfSymbol(
    string Name,
    ulong Value,
    ulong Size,
    byte Type,       // STT_*
    byte Binding,    // STB_*
    byte Visibility, // STV_*
    /// <summary>The section it is defined in (SHN_XINDEX already resolved through SHT_SYMTAB_SHNDX, so it may be past
    /// 0xff00); 0 undefined; negative for a reserved index (-SHN_ABS, -SHN_COMMON).</summary>
    int SectionIndex)
{
    public const byte STT_NOTYPE = 0, STT_OBJECT = 1, STT_FUNC = 2, STT_SECTION = 3, STT_FILE = 4, STT_GNU_IFUNC = 10;
    public const byte STB_LOCAL = 0, STB_GLOBAL = 1, STB_WEAK = 2;
    public const byte STV_DEFAULT = 0, STV_HIDDEN = 2;
    public const ushort SHN_UNDEF = 0, SHN_LORESERVE = 0xff00;

    public bool IsDefined => SectionIndex > 0;

    /// <summary>st_shndx as <see cref="SectionIndex"/> holds it: a reserved value (0xff00 and up) becomes negative.</summary>
    public static int Index(ushort shndx) => shndx >= SHN_LORESERVE ? -shndx : shndx;
}
