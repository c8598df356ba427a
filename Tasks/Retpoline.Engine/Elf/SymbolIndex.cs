namespace Retpoline.Elf;

/// <summary>
/// Code symbols per section, sorted by address: where the sweep restarts, and what name an address gets
/// (`symbol+0xoff`, or `section+0xoff` when no symbol precedes it — a stripped binary).
/// </summary>
public sealed class SymbolIndex
{
    readonly Dictionary<int, (ulong[] addresses, string[] names)> bySection = new();
    readonly IReadOnlyList<ElfSection> sections;

    public SymbolIndex(ElfFile elf)
    {
        sections = elf.Sections;
        var groups = new Dictionary<int, List<ElfSymbol>>();
        foreach (var sym in elf.Symbols)
        {
            if (!sym.IsDefined || sym.SectionIndex >= elf.Sections.Count || sym.Type is ElfSymbol.STT_SECTION or ElfSymbol.STT_FILE) continue;
            if (!elf.Sections[sym.SectionIndex].IsExecutable || sym.Name.Length == 0) continue;
            if (!groups.TryGetValue(sym.SectionIndex, out var list)) groups[sym.SectionIndex] = list = new();
            list.Add(sym);
        }
        foreach (var (index, list) in groups)
        {
            // At one address prefer a function over a label, a global over a local, then the name, for determinism.
            list.Sort((a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value)
                : Rank(b).CompareTo(Rank(a)) is var c && c != 0 ? c : string.CompareOrdinal(a.Name, b.Name));
            var addresses = new List<ulong>(list.Count);
            var names = new List<string>(list.Count);
            foreach (var sym in list)
            {
                if (addresses.Count > 0 && addresses[^1] == sym.Value) continue;
                addresses.Add(sym.Value); names.Add(sym.Name);
            }
            bySection[index] = (addresses.ToArray(), names.ToArray());
        }
    }

    static int Rank(ElfSymbol s) => (s.Type == ElfSymbol.STT_FUNC ? 2 : 0) + (s.Binding != ElfSymbol.STB_LOCAL ? 1 : 0);

    public ulong[] Starts(ElfSection s) => bySection.TryGetValue(s.Index, out var t) ? t.addresses : [];

    /// <summary>The symbol containing an address (the nearest preceding one, as objdump labels it) and the offset into it.</summary>
    public (string name, ulong offset, bool isSymbol) Locate(int section, ulong address)
    {
        if (bySection.TryGetValue(section, out var t))
        {
            int i = Array.BinarySearch(t.addresses, address);
            if (i < 0) i = ~i - 1;
            if (i >= 0) return (t.names[i], address - t.addresses[i], true);
        }
        if ((uint)section >= (uint)sections.Count) return ("?", address, false);
        var s = sections[section];
        return (s.Name, address - s.Address, false);
    }

    public static string Format(string name, ulong offset) => offset == 0 ? name : $"{name}+0x{offset:x}";
}
