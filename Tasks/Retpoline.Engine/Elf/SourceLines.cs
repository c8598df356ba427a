namespace Retpoline.Elf;

/// <summary>Source file and line for an address, from DWARF .debug_line when the file has it.</summary>
public static class SourceLines
{
    public static DwarfLines? Read(ElfFile elf)
    {
        var line = elf.FindSection(".debug_line");
        if (line is null || !line.HasFileBytes) return null;
        var lineStr = elf.FindSection(".debug_line_str");
        var str = elf.FindSection(".debug_str");
        var table = DwarfLines.Parse(elf.Bytes(line), lineStr is null ? default : elf.Bytes(lineStr), str is null ? default : elf.Bytes(str));
        return table.RowCount > 0 ? table : null;
    }
}
