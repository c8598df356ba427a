using Retpoline.Elf;
using Retpoline.X86;

namespace Retpoline.Patching;

/// <summary>
/// Call-site patching: the user-space counterpart of the kernel's `apply_retpolines`. Every direct
/// `call`/`jmp` to a register thunk becomes the vendor's inline form where it fits (<see cref="CallSiteEncoding"/>), and
/// every rewritten site is recorded in `.retpoline_sites` (<see cref="SiteRecord"/>) with its original bytes.
///
/// The result depends only on the original file, the vendor and the mode: recorded sites are first checked against
/// the bytes patch wrote (alternative.c style: never overwrite bytes you did not expect) and restored, then the sites
/// are found again and rewritten for the requested vendor. So Generic (or --call-sites thunk) gives back the original
/// file byte for byte, and patching a file inlined for another vendor re-patches it. Writes stay inside each site.
/// </summary>
public static class CallSitePatcher
{
    /// <summary>What <see cref="Plan"/> decided; <see cref="Finish"/> produces the output file.</summary>
    public sealed class SitePlan
    {
        internal SiteRecord Existing { get; init; } = SiteRecord.None;
        internal List<SiteEntry> Entries { get; init; } = [];
        public required IReadOnlyList<SitePatch> Changes { get; init; }
        public int Inlined => Entries.Count;
        public required int ThroughThunk { get; init; }
        /// <summary>True when sites or the record change, so the file must be rewritten.</summary>
        public required bool ChangesFile { get; init; }
        internal string Path { get; init; } = "";

        /// <summary>Adds the record's edits to <paramref name="edits"/>: written, replaced or removed (<paramref name="data"/>: the input, code already rewritten).</summary>
        public void Finish(byte[] data, FileEdits edits)
        {
            if (Existing.Section is not null || Entries.Count > 0) SiteRecord.Write(Path, data, Existing, Entries, edits);
        }
    }

    /// <summary>
    /// Restores every recorded site in <paramref name="elf"/>'s bytes, then (Inline, vendor Amd/None) rewrites every
    /// site that takes the vendor's form. Mutates <c>elf.Data</c> in place (the patcher's own copy of the file).
    /// </summary>
    /// <param name="thunks">The file's patchable register thunks, already checked by the patcher.</param>
    /// <exception cref="RetpolineException">RPL0017/RPL0018 (a recorded site or the record is not what patch wrote), or
    /// RPL0016; nothing has been written.</exception>
    public static SitePlan Plan(string path, ElfFile elf, SymbolIndex symbols, IReadOnlyList<LocatedThunk> thunks, Vendor vendor, CallSiteMode mode)
    {
        bool linked = elf.Kind != ElfKind.Relocatable;
        if (!linked)
        {
            if (mode == CallSiteMode.Inline)
                throw new RetpolineException(Codes.PatchRefused, path, "call-site inlining needs a linked executable or shared library: an object file's call sites are unresolved relocations (nothing was written)");
            return new SitePlan { Changes = [], ThroughThunk = 0, ChangesFile = false };
        }

        var record = SiteRecord.Read(elf, out var error)
            ?? throw new RetpolineException(Codes.SiteRecordMalformed, path, $"{error}; refusing to patch this file (nothing was written)");
        var byAddress = ThunksByAddress(thunks);
        AddRecordedThunks(elf, record, byAddress);
        var before = new Dictionary<ulong, byte[]>();

        // 1. Every recorded site must hold what patch wrote (or the original, which restoring leaves alone).
        foreach (var e in record.Entries)
        {
            var problem = Validate(elf, byAddress, e, out var section);
            if (problem is not null)
                throw new RetpolineException(Codes.SiteRecordMalformed, path, $"{SiteRecord.SectionName}: {problem}; refusing to patch this file (nothing was written)");
            var current = elf.Data.AsSpan((int)section!.OffsetOf(e.Address), e.Length);
            var expected = CallSiteEncoding.Encode(e.Vendor, e.Kind, e.Register, e.NoTrack, e.Length)!;
            if (!current.SequenceEqual(expected) && !current.SequenceEqual(e.Original))
                throw new RetpolineException(Codes.SiteTampered, path,
                    $"call site at 0x{e.Address:x} ({Where(symbols, section, e.Address)}) holds {CallSiteEncoding.Hex(current)}, neither the " +
                    $"'{CallSiteEncoding.Describe(e.Vendor, e.Kind, e.Register, e.NoTrack)}' patch wrote ({CallSiteEncoding.Hex(expected)}) nor the original " +
                    $"({CallSiteEncoding.Hex(e.Original)}); the file was changed after it was patched: rebuild it (nothing was written)");
            before[e.Address] = current.ToArray();
            e.Original.CopyTo(elf.Data, section.OffsetOf(e.Address));
        }

        // 2. Find the sites again and rewrite those that take the vendor's form.
        var entries = new List<SiteEntry>();
        int throughThunk = 0;
        if (byAddress.Count > 0 && mode == CallSiteMode.Inline && vendor != Vendor.Generic)
        {
            var exec = elf.Sections.Where(s => s.IsExecutable).ToList();
            var filter = new TargetFilter([], byAddress.Keys.ToHashSet());
            var sweep = CodeSweep.Run(elf, exec, symbols.Starts, filter, parallel: true);
            var thunkRanges = thunks.Select(t => (t.Address, End: t.Address + (ulong)t.Extent)).ToArray();
            var seen = new HashSet<ulong>();
            foreach (var r in sweep.References)
            {
                if (!seen.Add(r.From) || !byAddress.TryGetValue(r.To, out var thunk)) continue;
                var section = elf.Sections[r.Section];
                long available = (long)(section.EndAddress - r.From);
                var code = elf.Data.AsSpan((int)section.OffsetOf(r.From), (int)Math.Min(6, available));
                if (!CallSiteEncoding.TryDecode(code, r.From, out var kind, out int length, out ulong target) || target != r.To
                    || Array.Exists(thunkRanges, t => r.From < t.End && r.From + (ulong)length > t.Address))
                {
                    throughThunk++; // a conditional or short jump: it keeps going through the patched thunk
                    continue;
                }
                int reg = thunk.Parsed.Register;
                bool notrack = thunk.Parsed.Kind == ThunkKind.RegisterNoTrack;
                var bytes = CallSiteEncoding.Encode(vendor, kind, reg, notrack, length);
                if (bytes is null) { throughThunk++; continue; }
                entries.Add(new SiteEntry(r.From, length, kind, reg, notrack, vendor, code[..length].ToArray(), r.To));
                bytes.CopyTo(elf.Data, section.OffsetOf(r.From));
            }
        }
        entries.Sort((a, b) => a.Address.CompareTo(b.Address));
        for (int i = 1; i < entries.Count; i++)
            if (entries[i].Address < entries[i - 1].Address + (ulong)entries[i - 1].Length)
                throw new RetpolineException(Codes.PatchRefused, path, $"call sites at 0x{entries[i - 1].Address:x} and 0x{entries[i].Address:x} overlap; refusing to patch this file (nothing was written)");

        // 3. What changes: sites whose bytes differ from before, and the record itself.
        var changes = new List<SitePatch>();
        var newByAddress = entries.ToDictionary(e => e.Address);
        var oldByAddress = record.Entries.ToDictionary(e => e.Address);
        foreach (ulong address in before.Keys.Union(newByAddress.Keys).Order())
        {
            var section = elf.SectionAt(address)!;
            long offset = section.OffsetOf(address);
            SiteEntry e = newByAddress.TryGetValue(address, out var n) ? n : oldByAddress[address];
            var old = before.TryGetValue(address, out var b) ? b : e.Original;
            var now = elf.Data.AsSpan((int)offset, e.Length).ToArray();
            if (old.AsSpan().SequenceEqual(now)) continue;
            changes.Add(new SitePatch(address, Registers.Name(e.Register), e.Kind, byAddress.TryGetValue(e.Thunk, out var t) ? t.Name : $"0x{e.Thunk:x}",
                offset, old, now, newByAddress.ContainsKey(address) ? vendor : Vendor.Generic));
        }
        // An empty record is removed when we appended it; one another tool moved stays (empty) where it is.
        bool recordChanges = record.Entries.Count != entries.Count || record.Entries.Where((e, i) => !e.SameAs(entries[i])).Any()
            || (record.Section is not null && entries.Count == 0 && SiteRecord.IsAppended(elf.Data, record));
        return new SitePlan
        {
            Path = path, Existing = record, Entries = entries, Changes = changes, ThroughThunk = throughThunk,
            ChangesFile = changes.Count > 0 || recordChanges,
        };
    }

    /// <summary>
    /// Verify's side (Verifier → PatchedSite): every recorded site whose bytes are exactly the replacement for its
    /// vendor allows the indirect branch inside it; anything else at a recorded address is RPL0017, and a record that
    /// cannot be read or names something that was not a thunk call is RPL0018.
    /// </summary>
    /// <returns>Address of each allowed indirect branch → the finding's detail text; and the file diagnostics.</returns>
    public static (Dictionary<ulong, string> allowed, List<Diagnostic> diagnostics) CheckRecorded(ElfFile elf, SymbolIndex symbols, IReadOnlyList<LocatedThunk> thunks)
    {
        var allowed = new Dictionary<ulong, string>();
        var diagnostics = new List<Diagnostic>();
        if (elf.Kind == ElfKind.Relocatable || elf.FindSection(SiteRecord.SectionName) is null) return (allowed, diagnostics);
        var record = SiteRecord.Read(elf, out var error);
        if (record is null)
        {
            diagnostics.Add(new Diagnostic(Codes.SiteRecordMalformed, Severity.Error, $"{error}; no call site it lists can be trusted: rebuild the file, or patch it again from the build output"));
            return (allowed, diagnostics);
        }
        var byAddress = ThunksByAddress(thunks.Where(t => t.Parsed.IsPatchable));
        AddRecordedThunks(elf, record, byAddress);
        foreach (var e in record.Entries)
        {
            var problem = Validate(elf, byAddress, e, out var section);
            if (problem is not null)
            {
                diagnostics.Add(new Diagnostic(Codes.SiteRecordMalformed, Severity.Error, $"{SiteRecord.SectionName}: {problem}; rebuild the file", e.Address));
                continue;
            }
            string function = Where(symbols, section!, e.Address);
            var current = elf.Data.AsSpan((int)section!.OffsetOf(e.Address), e.Length);
            var expected = CallSiteEncoding.Encode(e.Vendor, e.Kind, e.Register, e.NoTrack, e.Length)!;
            string form = CallSiteEncoding.Describe(e.Vendor, e.Kind, e.Register, e.NoTrack);
            string thunk = byAddress[e.Thunk].Name;
            if (current.SequenceEqual(expected))
            {
                allowed[e.Address + (ulong)CallSiteEncoding.BranchOffset(e.Vendor, e.Kind, e.Register, e.NoTrack, e.Length)] =
                    $"call site inlined for vendor {e.Vendor} ('{form}' in place of '{(e.Kind == CallSiteKind.Call ? "call" : "jmp")} {thunk}'); recorded in {SiteRecord.SectionName}";
                continue;
            }
            diagnostics.Add(new Diagnostic(Codes.SiteTampered, Severity.Error,
                $"call site at 0x{e.Address:x} in function '{function}' is recorded as inlined for vendor {e.Vendor} ('{form}', {CallSiteEncoding.Hex(expected)}) " +
                $"but holds {CallSiteEncoding.Hex(current)}: the file was changed after it was patched; rebuild it, then patch it again",
                e.Address, function));
        }
        return (allowed, diagnostics);
    }

    /// <summary>A record entry must lie inside one code section and its original bytes must be the direct branch to the
    /// register thunk it names. Null when it does; the reason otherwise.</summary>
    static string? Validate(ElfFile elf, Dictionary<ulong, LocatedThunk> thunks, SiteEntry e, out ElfSection? section)
    {
        section = elf.SectionAt(e.Address);
        if (section is null || !section.IsExecutable || e.Address + (ulong)e.Length > section.EndAddress)
            return $"site 0x{e.Address:x} is not inside a code section";
        if (!CallSiteEncoding.TryDecode(e.Original, e.Address, out var kind, out int length, out ulong target) || length != e.Length || kind != e.Kind)
            return $"site 0x{e.Address:x}: recorded original bytes {CallSiteEncoding.Hex(e.Original)} are not a {e.Length}-byte direct {(e.Kind == CallSiteKind.Call ? "call" : "jmp")}";
        if (target != e.Thunk || !thunks.TryGetValue(target, out var thunk))
            return $"site 0x{e.Address:x}: recorded original bytes branch to 0x{target:x}, which is not a register thunk";
        if (thunk.Parsed.Register != e.Register || (thunk.Parsed.Kind == ThunkKind.RegisterNoTrack) != e.NoTrack)
            return $"site 0x{e.Address:x}: recorded register %{Registers.Name(e.Register)}{(e.NoTrack ? " (notrack)" : "")} does not match its thunk '{thunk.Name}'";
        foreach (var t in thunks.Values)
            if (e.Address < t.Address + (ulong)t.Extent && t.Address < e.Address + (ulong)e.Length)
                return $"site 0x{e.Address:x} lies inside thunk '{t.Name}'";
        return null;
    }

    /// <summary>
    /// A file stripped after it was patched has no thunk symbols left, but its record still says where each site's
    /// thunk is: a body recognised there that branches through the recorded register stands in for the symbol.
    /// </summary>
    static void AddRecordedThunks(ElfFile elf, SiteRecord record, Dictionary<ulong, LocatedThunk> byAddress)
    {
        foreach (var e in record.Entries)
        {
            if (byAddress.ContainsKey(e.Thunk)) continue;
            var section = elf.SectionAt(e.Thunk);
            if (section is null || !section.IsExecutable) continue;
            var code = elf.Data.AsSpan((int)section.OffsetOf(e.Thunk), (int)Math.Min(64, section.EndAddress - e.Thunk));
            if (!ThunkBody.TryRecognise(code, out var body) || body.Register != e.Register || body.Form is not (ThunkForm.Generic or ThunkForm.Amd or ThunkForm.None)) continue;
            var name = new ThunkName(e.NoTrack ? ThunkKind.RegisterNoTrack : ThunkKind.Register, e.Register);
            byAddress[e.Thunk] = new LocatedThunk($"thunk for %{Registers.Name(e.Register)} at 0x{e.Thunk:x}", name, section, e.Thunk, body, body.Length, false);
        }
    }

    static Dictionary<ulong, LocatedThunk> ThunksByAddress(IEnumerable<LocatedThunk> thunks)
    {
        // Two register thunks at one address (aliases) must agree on the register and notrack, or no site may use them.
        var map = new Dictionary<ulong, LocatedThunk>();
        var conflicted = new HashSet<ulong>();
        foreach (var t in thunks)
        {
            if (!t.Parsed.IsPatchable) continue;
            if (map.TryGetValue(t.Address, out var other))
            {
                if (other.Parsed.Register != t.Parsed.Register || (other.Parsed.Kind == ThunkKind.RegisterNoTrack) != (t.Parsed.Kind == ThunkKind.RegisterNoTrack))
                    conflicted.Add(t.Address);
                continue;
            }
            map[t.Address] = t;
        }
        foreach (var a in conflicted) map.Remove(a);
        return map;
    }

    static string Where(SymbolIndex symbols, ElfSection section, ulong address)
    {
        var (name, offset, _) = symbols.Locate(section.Index, address);
        return SymbolIndex.Format(name, offset);
    }
}
