namespace Retpoline.Elf;

/// <summary>
/// Where a linked file without symbols (strip) keeps the toolchain's startup code, found from what stripping keeps:
/// the `.init`/`.fini` sections (crti's `_init`/`_fini`), the entry point up to its `hlt` (crt1's `_start`), the
/// first `.fini_array` target up to the first `.init_array` one (crtbegin's `__do_global_dtors_aux`, ending where its
/// `frame_dummy` starts; the link puts both before any of the program's own), and crtbegin's `*_tm_clones` by their bytes: `mov slot(%rip),%rax; test
/// %rax,%rax; je; jmp *%rax` through the GOT slot of `_ITM_deregisterTMCloneTable` / `_ITM_registerTMCloneTable`, as
/// the dynamic relocations still name it. Each is named as the crt function it is, so the classifier judges a
/// stripped file as it judges its unstripped twin.
/// </summary>
public sealed class StartupCode
{
    /// <summary>How far `__do_global_dtors_aux`, found by its `.fini_array` entry, may reach (GCC 12's is 0x40
    /// bytes) when no other known start ends it sooner.</summary>
    const ulong ArrayTargetReach = 0x60;
    /// <summary>crt1's `_start` is 0x22–0x26 bytes; its `hlt` comes within this.</summary>
    const int EntryReach = 0x40;

    readonly List<(ulong start, ulong end, string name)> regions = new();
    /// <summary>The GOT slots of `_ITM_deregisterTMCloneTable` / `_ITM_registerTMCloneTable` → the crtbegin function
    /// that jumps through each; empty when the file has neither (then no branch is looked at twice).</summary>
    readonly Dictionary<ulong, string> tmSlots = new();
    readonly ElfFile elf;

    StartupCode(ElfFile elf) => this.elf = elf;

    /// <summary>Null for a file with symbols (they name the crt functions) and for an object file.</summary>
    public static StartupCode? Find(ElfFile elf)
    {
        if (elf.HasStaticSymbols || elf.Kind == ElfKind.Relocatable) return null;
        var code = new StartupCode(elf);
        foreach (var (section, name) in new[] { (".init", "_init"), (".fini", "_fini") })
            if (elf.FindSection(section) is { IsExecutable: true } s) code.regions.Add((s.Address, s.EndAddress, name));

        var starts = new List<ulong>();
        ulong entry = ElfFile.U64(elf.Data, 24);
        if (elf.SectionAt(entry) is { IsExecutable: true } text && text.HasFileBytes)
        {
            var bytes = elf.Bytes(text);
            int from = (int)(entry - text.Address);
            int hlt = bytes[from..Math.Min(bytes.Length, from + EntryReach)].IndexOf((byte)0xf4);
            if (hlt >= 0) code.regions.Add((entry, entry + (ulong)hlt + 1, "_start"));
            starts.Add(entry);
        }
        ulong? fini = FirstTarget(elf, ".fini_array"), init = FirstTarget(elf, ".init_array");
        starts.AddRange(new[] { fini, init }.OfType<ulong>());
        // __do_global_dtors_aux (it calls __cxa_finalize through the PLT) runs up to frame_dummy, which crtbegin puts
        // right after it; frame_dummy itself is a jump to register_tm_clones, and what follows it is the program's.
        if (fini is { } t && elf.SectionAt(t) is { IsExecutable: true } finiText)
        {
            ulong end = Math.Min(finiText.EndAddress, t + ArrayTargetReach);
            foreach (var other in starts) if (other > t && other < end) end = other;
            code.regions.Add((t, end, "__do_global_dtors_aux"));
        }
        code.FindTmSlots();
        return code;
    }

    /// <summary>The crt function holding this address of section <paramref name="section"/>, or null. Thread-safe.</summary>
    public string? NameAt(int section, ulong address)
    {
        foreach (var (start, end, name) in regions)
            if (address >= start && address < end) return name;
        return tmSlots.Count == 0 || (uint)section >= (uint)elf.Sections.Count ? null : TmClones(elf.Sections[section], address);
    }

    void FindTmSlots()
    {
        var symbols = new Dictionary<uint, string>();
        for (int i = 0; i < elf.DynamicSymbols.Count; i++)
            if (elf.DynamicSymbols[i].Name is "_ITM_deregisterTMCloneTable" or "_ITM_registerTMCloneTable" && !elf.DynamicSymbols[i].IsDefined)
                symbols[(uint)i] = elf.DynamicSymbols[i].Name == "_ITM_deregisterTMCloneTable" ? "deregister_tm_clones" : "register_tm_clones";
        if (symbols.Count == 0) return;
        ReadOnlySpan<byte> d = elf.Data;
        foreach (var rela in elf.Sections)
        {
            if (rela.Type != ElfSection.SHT_RELA || (rela.Flags & ElfSection.SHF_ALLOC) == 0 || rela.Size % 24 != 0 || !rela.HasFileBytes) continue;
            for (long o = rela.FileOffset; o + 24 <= rela.FileOffset + rela.Size; o += 24)
                if (symbols.TryGetValue((uint)(ElfFile.U64(d, (int)o + 8) >> 32), out var function)) tmSlots[ElfFile.U64(d, (int)o)] = function;
        }
    }

    /// <summary>`deregister_tm_clones` / `register_tm_clones` for their `jmp *%rax`, by the bytes before it.</summary>
    string? TmClones(ElfSection s, ulong address)
    {
        if (!s.IsExecutable || !s.HasFileBytes || !s.ContainsAddress(address) || address - s.Address < 12) return null;
        var b = elf.Bytes(s);
        int i = (int)(address - s.Address);
        if (i + 2 > b.Length || b[i] != 0xff || b[i + 1] != 0xe0) return null;                        // jmp *%rax
        if (b[i - 2] != 0x74 || b[i - 5] != 0x48 || b[i - 4] != 0x85 || b[i - 3] != 0xc0) return null;  // test %rax,%rax; je
        if (b[i - 12] != 0x48 || b[i - 11] != 0x8b || b[i - 10] != 0x05) return null;                  // mov disp32(%rip),%rax
        ulong slot = address - 5 + (ulong)(long)BitConverter.ToInt32(b[(i - 9)..(i - 5)]);
        return tmSlots.GetValueOrDefault(slot);
    }

    /// <summary>The first function pointer of `.init_array`/`.fini_array`: the section's bytes, or (lld leaves them
    /// zero in a PIE) the addend of the R_X86_64_RELATIVE relocation that fills it at load.</summary>
    static ulong? FirstTarget(ElfFile elf, string name)
    {
        if (elf.FindSection(name) is not { } s || s.Size < 8) return null;
        if (s.HasFileBytes && ElfFile.U64(elf.Bytes(s), 0) is var v and not 0) return v;
        ReadOnlySpan<byte> d = elf.Data;
        foreach (var rela in elf.Sections)
        {
            if (rela.Type != ElfSection.SHT_RELA || (rela.Flags & ElfSection.SHF_ALLOC) == 0 || rela.Size % 24 != 0 || !rela.HasFileBytes) continue;
            for (long o = rela.FileOffset; o + 24 <= rela.FileOffset + rela.Size; o += 24)
                if (ElfFile.U64(d, (int)o) == s.Address && (uint)ElfFile.U64(d, (int)o + 8) == 8 /* R_X86_64_RELATIVE */)
                    return ElfFile.U64(d, (int)o + 16);
        }
        return null;
    }
}
