using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Build.Locator;
using Retpoline.Policy;
using Retpoline.Reporting;
using Retpoline.Toolchain;

namespace Retpoline.Tool;

/// <summary>
/// `retpoline audit SOLUTION|PROJECT|DIR`: evaluate every project with the installed .NET SDK's MSBuild (no restore,
/// no build) and print one row per project: what kind it is, its vendor and policy, the native binaries it produces
/// or ships and whether each verifies. Each binary is decided as the build decides it (<see cref="ShippedBinaries"/>)
/// and verified with the project's own <see cref="ProjectPolicy"/> (RetpolineAllow, RetpolineStrict,
/// RetpolineHardenSls), so audit and build agree. Exit 1 when a binary violates its project's policy (or, with
/// --require-policy, when a project ships native code without the package), 2 for unusable input.
/// </summary>
static class AuditCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--json", "--require-policy" };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--sarif", "--configuration" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count != 1) throw new UsageException("audit takes one SOLUTION, PROJECT or DIR");
        string input = Path.GetFullPath(a.Files[0]);
        if (!File.Exists(input) && !Directory.Exists(input)) throw new RetpolineException(Codes.FileNotFound, input, "no such file or directory");
        string configuration = a.Get("--configuration") ?? "Debug";
        var clock = Stopwatch.StartNew();

        // Before any method that uses Microsoft.Build types is compiled: the locator must point the runtime at the
        // SDK's MSBuild first. AuditEvaluator holds every such use.
        RegisterMSBuild();
        var projects = AuditEvaluator.Evaluate(input, configuration);
        long evaluateMs = clock.ElapsedMilliseconds;

        string root = Directory.Exists(input) ? input : Path.GetDirectoryName(input)!;
        var verified = new Dictionary<(string Path, string Settings), AuditBinary>();
        var reports = new List<VerifyReport>();
        var unusable = new List<RetpolineException>();
        bool violation = false, unusableInput = false;
        foreach (var p in projects)
        {
            if (p.Error is not null) { unusableInput = true; stderr.WriteLine(TextEscape.Line($"retpoline: error {p.ErrorCode}: {p.Path}: {p.Error}")); continue; }
            foreach (var b in p.Binaries)
            {
                Check(b, p, verified, reports, unusable);
                if (b.Status == AuditStatus.Fail && p.Mode == PolicyMode.Error) violation = true;
                if (b.Status == AuditStatus.Unusable) unusableInput = true;
            }
            if (a.Has("--require-policy") && p.Kind == AuditKinds.ManagedWithout && p.Binaries.Count > 0) violation = true;
        }
        long totalMs = clock.ElapsedMilliseconds;

        if (a.Has("--json")) WriteJson(stdout, input, configuration, root, projects, totalMs);
        else WriteText(stdout, input, configuration, root, projects, evaluateMs, totalMs, a.Has("--require-policy"));

        // Never onto the solution, a project or a binary it read; renamed into place whole.
        if (a.Get("--sarif") is { } sarif)
            IO.ReportFile.Write(sarif, [input, .. projects.Select(p => p.Path), .. verified.Keys.Select(k => k.Path)], stream => SarifWriter.Write(stream, reports, unusable));
        if (unusableInput) return ExitCodes.Unusable;
        return violation ? ExitCodes.Findings : ExitCodes.Clean;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void RegisterMSBuild()
    {
        if (MSBuildLocator.IsRegistered) return;
        try { MSBuildLocator.RegisterDefaults(); }
        catch (InvalidOperationException e)
        {
            throw new RetpolineException(ToolchainCodes.AuditNoMSBuild, "dotnet", $"no .NET SDK found to evaluate projects with ({e.Message}); install the .NET SDK or set DOTNET_ROOT");
        }
    }

    /// <summary>
    /// Not built, not x86-64 ELF, .NET apphost, exempt, PASS, FAIL or unusable, decided as the build decides; each
    /// file verified once per audit and project settings (two projects may ship one file under different waivers).
    /// </summary>
    static void Check(AuditBinary b, AuditProject p, Dictionary<(string, string), AuditBinary> verified, List<VerifyReport> reports, List<RetpolineException> unusable)
    {
        var decision = ShippedBinaries.Decide(new ShippedFile(b.Path, b.RelativePath, b.ShippedAs, b.Named), p.Settings.Waivers);
        switch (decision.Verdict)
        {
            case ShippedVerdict.Missing: b.Status = AuditStatus.NotBuilt; return;
            case ShippedVerdict.NotX86_64Elf: b.Status = AuditStatus.NotX86_64Elf; b.Detail = decision.Sniff.Describe(); return;
            case ShippedVerdict.DotNetAppHost: b.Status = AuditStatus.AppHost; return;
            case ShippedVerdict.Exempt: b.Status = AuditStatus.Exempt; b.Detail = $"RetpolineExclude '{decision.Exemption!.Name}': {decision.Exemption.Reason}"; return;
        }
        var key = (b.Path, p.Settings.VerdictFingerprint);
        if (verified.TryGetValue(key, out var known)) { b.Status = known.Status; b.Errors = known.Errors; b.Detail = known.Detail; return; }
        verified[key] = b;
        try
        {
            var report = Verifier.Verify(b.Path, p.Settings.VerifyOptions);
            reports.Add(report);
            b.Errors = report.Diagnostics.Count(d => d.Severity == Severity.Error);
            b.Status = report.HasErrors ? AuditStatus.Fail : AuditStatus.Pass;
            b.Detail = TextReport.Summary(report);
        }
        catch (RetpolineException e)
        {
            unusable.Add(e);
            b.Status = AuditStatus.Unusable;
            b.Detail = $"{e.Code}: {e.Message}";
        }
    }

    static string Rel(string root, string path) => Path.GetRelativePath(root, path);

    static void WriteText(TextWriter o, string input, string configuration, string root, List<AuditProject> projects, long evaluateMs, long totalMs, bool requirePolicy)
    {
        string found = Directory.Exists(input) ? $"{projects.Count} project(s) found under the folder" : $"{projects.Count} project(s)";
        o.WriteLine($"retpoline audit {TextEscape.Line(input)} (Configuration={TextEscape.Line(configuration)}): {found}, evaluated in {evaluateMs} ms, {totalMs} ms in all");
        var rows = projects.Select(p => new[]
        {
            TextEscape.Line(Rel(root, p.Path)), p.Kind, p.Vendor, p.Policy,
            p.Error is not null ? $"error {p.ErrorCode}: {p.Error}" :
            (p.Binaries.Count == 0 ? "(no native binaries)" : string.Join("; ", p.Binaries.Select(b => Row(root, b)))) +
            (p.Note is not null ? $" (note: {p.Note})" : ""),
        }).ToList();
        string[] header = ["PROJECT", "KIND", "VENDOR", "POLICY", "NATIVE BINARIES"];
        var widths = Enumerable.Range(0, 4).Select(i => rows.Select(r => r[i].Length).Append(header[i].Length).Max()).ToArray();
        string Line(string[] r) => TextEscape.Line(string.Join("  ", r.Take(4).Select((c, i) => c.PadRight(widths[i]))) + "  " + r[4]);
        o.WriteLine(Line(header));
        foreach (var r in rows) o.WriteLine(Line(r));
        foreach (var p in projects.Where(p => p.Kind == AuditKinds.ManagedWithout && p.Binaries.Count > 0))
            o.WriteLine($"{(requirePolicy ? "error" : "note")}: {TextEscape.Line(Rel(root, p.Path))} ships native code without Retpoline.Sdk (add <PackageReference Include=\"Retpoline.Sdk\" PrivateAssets=\"all\" />)");
    }

    static string Row(string root, AuditBinary b)
        => $"{TextEscape.Line(Rel(root, b.Path))} [{b.ShippedAs}] {b.Status}{(b.Errors > 0 ? $" ({b.Errors} error(s))" : "")}{(b.Status == AuditStatus.Exempt ? $" ({b.Detail})" : "")}";

    static void WriteJson(TextWriter o, string input, string configuration, string root, List<AuditProject> projects, long totalMs)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("input", input);
            w.WriteString("configuration", configuration);
            w.WriteNumber("milliseconds", totalMs);
            w.WriteStartArray("projects");
            foreach (var p in projects)
            {
                w.WriteStartObject();
                w.WriteString("path", Rel(root, p.Path));
                w.WriteString("kind", p.Kind);
                w.WriteString("vendor", p.Vendor);
                w.WriteString("policy", p.Policy);
                if (p.Error is not null) { w.WriteString("error", p.Error); w.WriteString("code", p.ErrorCode); }
                if (p.Note is not null) w.WriteString("note", p.Note);
                w.WriteStartArray("binaries");
                foreach (var b in p.Binaries)
                {
                    w.WriteStartObject();
                    w.WriteString("path", Rel(root, b.Path));
                    // "origin" in the audit's JSON is how the file ships (AuditBinary.ShippedAs); finding origins are verify's.
                    w.WriteString("origin", b.ShippedAs);
                    w.WriteString("status", b.Status);
                    w.WriteNumber("errors", b.Errors);
                    if (b.Detail is not null) w.WriteString("detail", b.Detail);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }
}

static class AuditKinds
{
    public const string Native = "native", ManagedWith = "managed-with-package", ManagedWithout = "managed-without-package", Unknown = "unknown";
}

static class AuditStatus
{
    public const string NotBuilt = "not built", NotX86_64Elf = "not x86-64 ELF", AppHost = ".NET apphost", Exempt = "exempt",
        Pass = "PASS", Fail = "FAIL", Unusable = "unusable";
}

/// <summary>One file a project ships, how it gets there, and what the audit found.</summary>
/// <param name="shippedAs">`output`, `ProjectReference x.nativeproj`, `package Foo/1.2.3`, `None`, `Content`, `RetpolineBinary`.</param>
/// <param name="relativePath">Where it lands relative to the project's output folder (what RetpolineExclude paths match).</param>
sealed class AuditBinary(string path, string shippedAs, string relativePath, bool named = false)
{
    public string Path { get; } = path;
    public string ShippedAs { get; } = shippedAs;
    public string RelativePath { get; } = relativePath;
    public bool Named { get; } = named;
    public string Status { get; set; } = "";
    public int Errors { get; set; }
    public string? Detail { get; set; }
}

sealed class AuditProject(string path)
{
    public string Path { get; } = path;
    public string Kind { get; set; } = AuditKinds.Unknown;
    public string Vendor { get; set; } = "-";
    /// <summary>As shown: the project's RetpolinePolicy, `None` when RetpolineEnabled is false, `-` without the package.</summary>
    public string Policy { get; set; } = "-";
    /// <summary>The mode a FAIL is judged by; null for a project without the package (its binaries only inform).</summary>
    public PolicyMode? Mode { get; set; }
    public ProjectPolicy Settings { get; set; } = ProjectPolicy.Default;
    public string? Error { get; set; }
    public string ErrorCode { get; set; } = ToolchainCodes.AuditUnusableProject;
    /// <summary>How the binaries were found, when not by the project's own RetpolineShippedBinaries target.</summary>
    public string? Note { get; set; }
    public List<AuditBinary> Binaries { get; } = new();
}
