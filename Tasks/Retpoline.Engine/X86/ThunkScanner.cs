using Retpoline.Elf;

namespace Retpoline.X86;

/// <summary>A defined thunk symbol, where its bytes are, and what they were recognised as (null: unknown body).</summary>
public sealed record LocatedThunk(
    string Name,
    ThunkName Parsed,
    ElfSection Section,
    ulong Address,
    RecognisedBody? Body,
    /// <summary>Bytes that belong to the thunk and may be rewritten: the recognised body plus int3 fill.</summary>
    int Extent,
    bool Exported)
{
    public long FileOffset => Section.OffsetOf(Address);
}

/// <summary>Finds every thunk symbol in a file and recognises its body. Shared by verify and patch.</summary>
public static class ThunkScanner
{
    /// <summary>Longest body we look at: Clang's 21 bytes plus room for padding variants.</summary>
    const int MaxBody = 64;

    public static List<LocatedThunk> Find(ElfFile elf, SymbolIndex symbols)
    {
        var exported = new HashSet<string>(StringComparer.Ordinal);
        if (elf.Kind == ElfKind.SharedLibrary)
            foreach (var s in elf.DynamicSymbols)
                if (s.IsDefined && s.Binding != ElfSymbol.STB_LOCAL && s.Visibility == ElfSymbol.STV_DEFAULT && ThunkName.TryParse(s.Name, out _)) exported.Add(s.Name);

        var found = new List<LocatedThunk>();
        var seen = new HashSet<(int, ulong, string)>();
        foreach (var sym in elf.Symbols.Concat(elf.DynamicSymbols))
        {
            if (!sym.IsDefined || sym.SectionIndex >= elf.Sections.Count || !ThunkName.TryParse(sym.Name, out var parsed)) continue;
            var section = elf.Sections[sym.SectionIndex];
            if (!section.IsExecutable || !section.ContainsAddress(sym.Value) || !seen.Add((section.Index, sym.Value, sym.Name))) continue;

            // The body may not run past the section or into the next symbol.
            ulong limit = section.EndAddress;
            var starts = symbols.Starts(section);
            int next = Array.BinarySearch(starts, sym.Value + 1);
            if (next < 0) next = ~next;
            if (next < starts.Length) limit = Math.Min(limit, starts[next]);
            int available = (int)Math.Min((ulong)MaxBody, limit - sym.Value);
            var code = elf.Data.AsSpan((int)section.OffsetOf(sym.Value), available);

            RecognisedBody? body = ThunkBody.TryRecognise(code, out var b) ? b : null;
            int extent = body is { } rb ? ExtentOf(rb, code, sym.Size) : 0;
            found.Add(new LocatedThunk(sym.Name, parsed, section, sym.Value, body, extent, exported.Contains(sym.Name)));
        }
        found.Sort((a, b) => a.Address != b.Address ? a.Address.CompareTo(b.Address) : string.CompareOrdinal(a.Name, b.Name));
        return found;
    }

    /// <summary>
    /// The Generic register thunks of a file without symbols, found by their bodies: every `call +N` followed by the
    /// speculation trap (`pause; lfence; jmp`) whose body is a Generic retpoline, named for the register it ends in
    /// (a `notrack` twin has the same bytes and gets the same name). <paramref name="known"/> are addresses already found.
    /// Patched (Amd/None) bodies are too short and too common to find this way.
    /// </summary>
    public static List<LocatedThunk> FindByBody(ElfFile elf, IReadOnlySet<ulong> known)
    {
        var found = new List<LocatedThunk>();
        foreach (var section in elf.Sections)
        {
            if (!section.IsExecutable || !section.HasFileBytes || section.Name.StartsWith(".plt", StringComparison.Ordinal)) continue;
            var bytes = elf.Bytes(section);
            for (int at = bytes.IndexOf(Opcodes.SpeculationTrap); at >= 0;)
            {
                int start = at - 5;
                if (start >= 0 && bytes[start] == Opcodes.CallRel32 && !known.Contains(section.Address + (ulong)start)
                    && ThunkBody.TryRecognise(bytes[start..Math.Min(bytes.Length, start + MaxBody)], out var body) && body is { Form: ThunkForm.Generic, Register: >= 0 }
                    && ThunkName.TryParse("__x86_indirect_thunk_" + Registers.Name(body.Register), out var parsed))
                    found.Add(new LocatedThunk("__x86_indirect_thunk_" + Registers.Name(body.Register), parsed, section, section.Address + (ulong)start, body, body.Length, false));
                int next = bytes[(at + 1)..].IndexOf(Opcodes.SpeculationTrap);
                at = next < 0 ? -1 : at + 1 + next;
            }
        }
        return found;
    }

    /// <summary>
    /// A Generic body is exactly as long as recognised. A body an earlier patch rewrote (Amd/None) spans its symbol
    /// size when the symbol has one (our thunks and Clang's do), else the form plus the int3 fill up to GCC's
    /// 17 bytes (GCC's COMDAT thunks have size 0 and GCC's layout).
    /// </summary>
    static int ExtentOf(RecognisedBody body, ReadOnlySpan<byte> code, ulong symbolSize)
    {
        if (body.Form is not (ThunkForm.Amd or ThunkForm.None)) return body.Length;
        if (symbolSize >= (ulong)body.Length && symbolSize <= (ulong)code.Length) return (int)symbolSize;
        int end = body.Length;
        while (end < code.Length && end < ThunkBody.GccGenericLength && code[end] == ThunkBody.Int3) end++;
        return end;
    }
}
