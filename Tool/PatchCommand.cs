using Retpoline.Patching;

namespace Retpoline.Tool;

static class PatchCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string>
    {
        "--dry-run", "--explain",
        // What the replacement may change besides the bytes: nothing unless asked (RPL0112, RPL0113, RPL0114).
        "--allow-owner-change", "--allow-read-only", "--break-hard-links",
    };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--vendor", "--call-sites", "--minimum" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count == 0) throw new UsageException("patch needs at least one FILE");
        string vendorName = a.Choice("--vendor", "Generic", "Amd", "None", "Host") ?? throw new UsageException("patch needs --vendor Generic|Amd|None|Host");
        var callSites = a.Choice("--call-sites", "thunk", "inline") == "inline" ? CallSiteMode.Inline : CallSiteMode.Thunk;
        Vendor vendor;
        bool host = vendorName == "Host";
        if (a.Get("--minimum") is not null && !host)
            throw new UsageException("--minimum applies to --vendor Host only (an explicit vendor is written as given)");
        if (host)
        {
            var choice = HostVendor.Detect(minimum: ParseMinimum(a.Get("--minimum")));
            vendor = choice.Vendor;
            if (a.Has("--explain"))
                foreach (var line in choice.Explanation) stdout.WriteLine($"host: {Reporting.TextEscape.Line(line)}");
            stdout.WriteLine($"host: vendor {vendor}");
        }
        else
        {
            vendor = Enum.Parse<Vendor>(vendorName);
            if (a.Has("--explain")) stdout.WriteLine($"vendor {vendor} was given explicitly; --explain describes Host detection only");
        }
        var replace = new ReplaceOptions
        {
            AllowOwnerChange = a.Has("--allow-owner-change"),
            AllowReadOnly = a.Has("--allow-read-only"),
            BreakHardLinks = a.Has("--break-hard-links"),
        };
        bool dryRun = a.Has("--dry-run");
        int exit = ExitCodes.Clean;
        foreach (var file in a.Files)
        {
            try
            {
                var result = Patcher.Patch(file, vendor, dryRun, callSites, replace);
                foreach (var d in result.Diagnostics)
                    stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: {(d.Severity == Severity.Error ? "error" : "warning")} {d.Code}: {file}: {d.Message}"));
                Print(stdout, file, result, dryRun);
            }
            catch (RetpolineException e)
            {
                stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: {e.OneLine}"));
                exit = ExitCodes.Unusable;
            }
        }
        return exit;
    }

    /// <summary>`--minimum Generic|Amd|None`: the floor of `--vendor Host` (and of `retpoline status`'s host summary).</summary>
    public static Vendor ParseMinimum(string? text)
    {
        if (text is null) return HostVendor.DefaultMinimum;
        // Names only: `--minimum 1` is not Amd, whatever the enum's numbering.
        foreach (var v in new[] { Vendor.Generic, Vendor.Amd, Vendor.None })
            if (v.ToString().Equals(text, StringComparison.OrdinalIgnoreCase)) return v;
        throw new UsageException($"--minimum takes Generic, Amd or None, not '{text}'");
    }

    static void Print(TextWriter o, string file, PatchResult r, bool dryRun)
    {
        file = Reporting.TextEscape.Line(file);
        string verb = dryRun ? "would patch" : "patched";
        foreach (var c in r.Changes)
        {
            o.WriteLine($"{file}: {verb} {Reporting.TextEscape.Line(c.Name)} at 0x{c.Address:x}: {c.From} -> {c.To}");
            if (dryRun) o.WriteLine($"    {Hex(c.OldBytes)}\n -> {Hex(c.NewBytes)}");
        }
        foreach (var s in r.Sites)
        {
            o.WriteLine($"{file}: {verb} {s.Kind.ToString().ToLowerInvariant()} site at 0x{s.Address:x} ({Reporting.TextEscape.Line(s.Thunk)}): {Hex(s.OldBytes)} -> {Hex(s.NewBytes)}");
        }
        string state = r.Written ? "written" : dryRun ? "dry run, nothing written" : "already in this form, not rewritten";
        o.WriteLine($"{file}: vendor {r.Vendor}: {r.Changes.Count} thunk(s) changed, {r.Unchanged} unchanged" +
            (r.CallSites == CallSiteMode.Inline || r.Sites.Count > 0 ? $", {r.Sites.Count} call site(s) changed, {r.SitesInlined} inlined, {r.SitesThroughThunk} through the thunk" : "") +
            $" ({state})");
    }

    static string Hex(byte[] b) => string.Join(' ', b.Select(x => x.ToString("x2")));
}
