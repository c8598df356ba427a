using Retpoline.Patching;

namespace Retpoline.Tool;

static class PatchCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--dry-run", "--explain" };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--vendor", "--call-sites", "--minimum" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count == 0) throw new UsageException("patch needs at least one FILE");
        string vendorName = a.Get("--vendor") ?? throw new UsageException("patch needs --vendor Generic|Amd|None|Host");
        var callSites = (a.Get("--call-sites") ?? "thunk").ToLowerInvariant() switch
        {
            "thunk" => CallSiteMode.Thunk,
            "inline" => CallSiteMode.Inline,
            var other => throw new UsageException($"--call-sites takes thunk or inline, not '{other}'"),
        };

        Vendor vendor;
        bool host = vendorName.Equals("Host", StringComparison.OrdinalIgnoreCase);
        if (a.Get("--minimum") is not null && !host)
            throw new UsageException("--minimum applies to --vendor Host only (an explicit vendor is written as given)");
        if (host)
        {
            var choice = HostVendor.Detect(minimum: ParseMinimum(a.Get("--minimum")));
            vendor = choice.Vendor;
            if (a.Has("--explain"))
                foreach (var line in choice.Explanation) stdout.WriteLine($"host: {line}");
            stdout.WriteLine($"host: vendor {vendor}");
        }
        else if (!Enum.TryParse(vendorName, ignoreCase: true, out vendor) || !Enum.IsDefined(vendor))
            throw new UsageException($"--vendor takes Generic, Amd, None or Host, not '{vendorName}'");
        else if (a.Has("--explain"))
            stdout.WriteLine($"vendor {vendor} was given explicitly; --explain describes Host detection only");

        bool dryRun = a.Has("--dry-run");
        int exit = ExitCodes.Clean;
        foreach (var file in a.Files)
        {
            try
            {
                var result = Patcher.Patch(file, vendor, dryRun, callSites);
                foreach (var d in result.Diagnostics)
                    stderr.WriteLine($"retpoline: {(d.Severity == Severity.Error ? "error" : "warning")} {d.Code}: {file}: {d.Message}");
                Print(stdout, file, result, dryRun);
            }
            catch (RetpolineException e)
            {
                stderr.WriteLine($"retpoline: {e.OneLine}");
                exit = ExitCodes.Unusable;
            }
        }
        return exit;
    }

    /// <summary>`--minimum Generic|Amd|None`: the floor of `--vendor Host` (and of `retpoline status`'s host summary).</summary>
    public static Vendor ParseMinimum(string? text)
    {
        if (text is null) return HostVendor.DefaultMinimum;
        if (Enum.TryParse(text, ignoreCase: true, out Vendor v) && Enum.IsDefined(v)) return v;
        throw new UsageException($"--minimum takes Generic, Amd or None, not '{text}'");
    }

    static void Print(TextWriter o, string file, PatchResult r, bool dryRun)
    {
        string verb = dryRun ? "would patch" : "patched";
        foreach (var c in r.Changes)
        {
            o.WriteLine($"{file}: {verb} {c.Name} at 0x{c.Address:x}: {c.From} -> {c.To}");
            if (dryRun) o.WriteLine($"    {Hex(c.OldBytes)}\n -> {Hex(c.NewBytes)}");
        }
        foreach (var s in r.Sites)
        {
            o.WriteLine($"{file}: {verb} {s.Kind.ToString().ToLowerInvariant()} site at 0x{s.Address:x} ({s.Thunk}): {Hex(s.OldBytes)} -> {Hex(s.NewBytes)}");
        }
        string state = r.Written ? "written" : dryRun ? "dry run, nothing written" : "already in this form, not rewritten";
        o.WriteLine($"{file}: vendor {r.Vendor}: {r.Changes.Count} thunk(s) changed, {r.Unchanged} unchanged" +
            (r.CallSites == CallSiteMode.Inline || r.Sites.Count > 0 ? $", {r.Sites.Count} call site(s) changed, {r.SitesInlined} inlined, {r.SitesThroughThunk} through the thunk" : "") +
            $" ({state})");
    }

    static string Hex(byte[] b) => string.Join(' ', b.Select(x => x.ToString("x2")));
}
