using Retpoline.Elf;
using Retpoline.X86;

namespace Retpoline.Patching;

/// <summary>
/// Rewrites every recognised register thunk body for a vendor (the user-space counterpart of the kernel patching its
/// thunks at boot). All-or-nothing: one unknown, mis-registered or too-small body refuses the whole file before any
/// byte is written. Writes stay inside each thunk's recognised extent, inside its section; the file is replaced
/// atomically; a file already in the requested form is not rewritten at all.
/// </summary>
public static class Patcher
{
    /// <exception cref="RetpolineException">Unusable input (RPL01xx) or a refused patch (RPL0016): the file is untouched.</exception>
    /// <param name="callSites">Inline also rewrites the direct calls to the thunks (issue 5, <see cref="CallSitePatcher"/>);
    /// Thunk restores any a previous Inline patch rewrote.</param>
    public static PatchResult Patch(string path, Vendor vendor, bool dryRun = false, CallSiteMode callSites = CallSiteMode.Thunk)
    {
        string target = AtomicFile.ResolveTarget(path);
        return Patch(path, ElfFile.Load(target, wholeFile: true), vendor, dryRun ? null : target, callSites);
    }

    /// <summary>
    /// Patch, then verify what the file now holds — the post-link step of a build. The file is first read the way
    /// verify reads it (code, symbols, line tables: not the rest of the debug info) and the patch planned on that.
    /// When nothing needs writing (the linked thunks are already in the vendor's form, the default Generic case) the
    /// file on disk is exactly what was parsed, so verify reuses the parse, the symbol index and the recognised
    /// thunks. Otherwise the patch runs as <see cref="Patch(string, Vendor, bool, CallSiteMode)"/> does (whole file,
    /// atomic write) and verify reads the file back.
    /// </summary>
    public static (PatchResult Patch, VerifyReport Report, TimeSpan PatchTime, TimeSpan VerifyTime) PatchThenVerify(
        string path, Vendor vendor, CallSiteMode callSites, VerifyOptions options)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string target = AtomicFile.ResolveTarget(path);
        var elf = ElfFile.Load(target);
        var symbols = new SymbolIndex(elf);
        var thunks = ThunkScanner.Find(elf, symbols);
        var planned = Patch(path, elf, vendor, null, callSites, symbols, thunks);
        if (!planned.NeedsWrite && target == path)
        {
            var patchTime = clock.Elapsed;
            var report = Verifier.Verify(elf, options, symbols, thunks);
            return (planned, report, patchTime, clock.Elapsed - patchTime);
        }
        var patched = Patch(path, vendor, dryRun: false, callSites);
        var writeTime = clock.Elapsed;
        return (patched, Verifier.Verify(path, options), writeTime, clock.Elapsed - writeTime);
    }

    /// <summary>Plans the patch of a loaded file and, when <paramref name="target"/> is given, writes it there.</summary>
    internal static PatchResult Patch(string path, ElfFile elf, Vendor vendor, string? target = null, CallSiteMode callSites = CallSiteMode.Thunk,
        SymbolIndex? symbolIndex = null, List<LocatedThunk>? located = null)
    {
        bool dryRun = target is null;
        var symbols = symbolIndex ?? new SymbolIndex(elf);
        var thunks = (located ?? ThunkScanner.Find(elf, symbols)).Where(t => t.Parsed.IsPatchable).ToList();

        var planned = new List<(LocatedThunk thunk, byte[] bytes)>();
        foreach (var t in thunks)
        {
            if (t.Body is not { } body || body.Form is not (ThunkForm.Generic or ThunkForm.Amd or ThunkForm.None))
                throw Refuse(path, t, $"has an unrecognised body ({Hex(elf.Data, t.FileOffset, (int)Math.Min(24, t.Section.EndAddress - t.Address))})");
            if (body.Register != t.Parsed.Register)
                throw Refuse(path, t, $"branches through %{Registers.Name(body.Register)}, not %{t.Parsed.RegisterName}");
            bool notrack = t.Parsed.Kind == ThunkKind.RegisterNoTrack;
            int needed = ThunkBody.Needed(vendor, t.Parsed.Register, notrack);
            if (t.Extent < needed) throw Refuse(path, t, $"is {t.Extent} bytes; the {vendor} form needs {needed}");
            // Every write is bounded by the thunk's extent, which the scanner bounded by its section.
            if (t.FileOffset < t.Section.FileOffset || t.FileOffset + t.Extent > t.Section.FileOffset + t.Section.Size)
                throw Refuse(path, t, "lies outside its section");
            planned.Add((t, ThunkBody.Encode(vendor, t.Parsed.Register, t.Extent, notrack)));
        }

        // Call sites (issue 5): restores recorded sites and inlines new ones in elf.Data; refuses before any write.
        var sites = CallSitePatcher.Plan(path, elf, symbols, thunks, vendor, callSites);

        var changes = new List<ThunkPatch>();
        foreach (var (t, bytes) in planned)
        {
            var old = elf.Data.AsSpan((int)t.FileOffset, t.Extent);
            if (old.SequenceEqual(bytes)) continue;
            changes.Add(new ThunkPatch(t.Name, t.Address, t.FileOffset, t.Body!.Value.Form, ToForm(vendor), old.ToArray(), bytes));
        }

        bool needsWrite = changes.Count > 0 || sites.ChangesFile;
        bool write = needsWrite && !dryRun;
        if (write)
        {
            var data = elf.Data; // our own copy of the file: patch it in memory, then replace the file whole
            foreach (var c in changes) c.NewBytes.CopyTo(data, c.FileOffset);
            AtomicFile.Replace(target!, sites.Finish(data)); // with the .retpoline_sites record written or removed
        }

        var diagnostics = new List<Diagnostic>();
        // Our thunks are hidden, so only .symtab names them: after strip, patch would silently find nothing.
        if (planned.Count == 0 && !elf.HasStaticSymbols && elf.Kind != ElfKind.Relocatable)
            diagnostics.Add(new Diagnostic(Codes.ThunkMissing, Severity.Warning,
                "no symbol table (stripped?): thunks cannot be located, so none was patched; patch before stripping (strip keeps the patched bytes)"));
        if (vendor == Vendor.Amd)
            diagnostics.Add(new Diagnostic(Codes.AmdVendor, Severity.Warning, AmdWarning));
        return new PatchResult
        {
            Path = path, Vendor = vendor, Changes = changes, Unchanged = planned.Count - changes.Count, Written = write, NeedsWrite = needsWrite, Diagnostics = diagnostics,
            CallSites = callSites, Sites = sites.Changes, SitesInlined = sites.Inlined, SitesThroughThunk = sites.ThroughThunk,
        };
    }

    public const string AmdWarning =
        "vendor Amd writes 'lfence; jmp *%reg', which AMD stopped recommending in March 2022 (it leaves a race window); " +
        "Linux and Xen now use the Generic retpoline on AMD and keep lfence only as an explicit choice. Use Generic unless you mean this";

    static ThunkForm ToForm(Vendor v) => v switch { Vendor.Amd => ThunkForm.Amd, Vendor.None => ThunkForm.None, _ => ThunkForm.Generic };

    static RetpolineException Refuse(string path, LocatedThunk t, string why)
        => new(Codes.PatchRefused, path, $"thunk '{t.Name}' at 0x{t.Address:x} {why}; refusing to patch this file (nothing was written)");

    static string Hex(byte[] data, long offset, int count)
        => string.Join(' ', data.Skip((int)offset).Take(Math.Max(0, count)).Select(b => b.ToString("x2")));
}
