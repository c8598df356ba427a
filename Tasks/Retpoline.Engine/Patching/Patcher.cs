using Retpoline.Elf;
using Retpoline.IO;
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
    /// <exception cref="RetpolineException">Unusable input (RPL01xx), a refused patch (RPL0016), or a file whose owner,
    /// mode, links or extended attributes the replacement could not keep (RPL0112–RPL0115): the file is untouched.</exception>
    /// <param name="callSites">Inline also rewrites the direct calls to the thunks (<see cref="CallSitePatcher"/>);
    /// Thunk restores any a previous Inline patch rewrote.</param>
    /// <param name="replace">What the replacement may change besides the bytes (nothing, by default).</param>
    public static PatchResult Patch(string path, Vendor vendor, bool dryRun = false, CallSiteMode callSites = CallSiteMode.Thunk, ReplaceOptions? replace = null)
    {
        using var input = InputFile.Open(path);
        var elf = ElfFile.Load(input);
        return Patch(path, elf, vendor, dryRun ? null : new WriteTarget(input, AtomicFile.ResolveTarget(path), replace ?? ReplaceOptions.Default), callSites);
    }

    /// <summary>Where a planned patch is written: the input it was read from (streamed again) and the file to replace.</summary>
    internal sealed record WriteTarget(InputFile Source, string Path, ReplaceOptions Options);

    /// <summary>
    /// Patch, then verify what the file now holds — the post-link step of a build. The file is read the way verify
    /// reads it (code, symbols, line tables: not the rest of the debug info) and the patch planned on that. When
    /// nothing needs writing (the linked thunks are already in the vendor's form, the default Generic case) the file on
    /// disk is exactly what was parsed, so verify reuses the parse, the symbol index and the recognised thunks.
    /// Otherwise the patched file is streamed from the same open input and replaced atomically, and verify reads it back.
    /// </summary>
    public static (PatchResult Patch, VerifyReport Report, TimeSpan PatchTime, TimeSpan VerifyTime) PatchThenVerify(
        string path, Vendor vendor, CallSiteMode callSites, VerifyOptions options)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        PatchResult patched;
        using (var input = InputFile.Open(path))
        {
            var elf = ElfFile.Load(input);
            var symbols = new SymbolIndex(elf);
            var thunks = ThunkScanner.Find(elf, symbols);
            patched = Patch(path, elf, vendor, new WriteTarget(input, AtomicFile.ResolveTarget(path), ReplaceOptions.Default), callSites, symbols, thunks);
            if (!patched.Written)
            {
                var patchTime = clock.Elapsed;
                var report = Verifier.Verify(elf, options, symbols, thunks);
                return (patched, report, patchTime, clock.Elapsed - patchTime);
            }
        }
        var writeTime = clock.Elapsed;
        return (patched, Verifier.Verify(path, options), writeTime, clock.Elapsed - writeTime);
    }

    /// <summary>Plans the patch of a loaded file and, when <paramref name="target"/> is given, writes it there.</summary>
    internal static PatchResult Patch(string path, ElfFile elf, Vendor vendor, WriteTarget? target = null, CallSiteMode callSites = CallSiteMode.Thunk,
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

        // Call sites: restores recorded sites and inlines new ones in elf.Data; refuses before any write.
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
        var diagnostics = new List<Diagnostic>();
        if (write)
        {
            var (source, file, options) = target!;
            AtomicFile.CheckReplaceable(path, source.Status, file, options);
            // The output is the input with these ranges substituted, then whatever the record appends: streamed from
            // the open input, so memory stays what verify needs however large the file is.
            var edits = new FileEdits(elf.Data.Length);
            foreach (var c in changes) { c.NewBytes.CopyTo(elf.Data, c.FileOffset); edits.Overwrite(c.FileOffset, c.NewBytes); }
            foreach (var s in sites.Changes) edits.Overwrite(s.FileOffset, s.NewBytes);
            sites.Finish(elf.Data, edits); // the .retpoline_sites record written, replaced or removed
            diagnostics.AddRange(AtomicFile.Replace(path, file, source.Status, source.Handle, output => edits.WriteTo(output, source.Handle), options));
        }

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
