using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Build.Evaluation;
using Microsoft.Build.Locator;
using Retpoline.Policy;
using Retpoline.Reporting;
using Retpoline.Toolchain;

namespace Retpoline.Tool;

/// <summary>
/// `retpoline audit SOLUTION|PROJECT|DIR`: evaluate every project with the installed .NET SDK's MSBuild (no restore,
/// no build) and print one row per project: what kind it is, its vendor and policy, the native binaries it produces
/// or ships and whether each verifies. Exit 1 when a binary violates its project's policy (or, with
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
        var verified = new Dictionary<string, AuditBinary>(StringComparer.Ordinal);
        var reports = new List<VerifyReport>();
        var unusable = new List<RetpolineException>();
        bool violation = false, unusableInput = false;
        foreach (var p in projects)
        {
            if (p.Error is not null) { unusableInput = true; stderr.WriteLine(TextEscape.Line($"retpoline: error {ToolchainCodes.AuditUnusableProject}: {p.Path}: {p.Error}")); }
            foreach (var b in p.Binaries)
            {
                Check(b, p, verified, reports, unusable);
                if (b.Status == "FAIL" && p.Policy == "Error") violation = true;
                if (b.Status == "unusable") unusableInput = true;
            }
            if (a.Has("--require-policy") && p.Kind == AuditKinds.ManagedWithout && p.Binaries.Count > 0) violation = true;
        }
        long totalMs = clock.ElapsedMilliseconds;

        if (a.Has("--json")) WriteJson(stdout, input, configuration, root, projects, totalMs);
        else WriteText(stdout, input, configuration, root, projects, evaluateMs, totalMs, a.Has("--require-policy"));

        // Never onto the solution, a project or a binary it read; renamed into place whole.
        if (a.Get("--sarif") is { } sarif)
            IO.ReportFile.Write(sarif, [input, .. projects.Select(p => p.Path), .. verified.Keys], stream => SarifWriter.Write(stream, reports, unusable));
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

    /// <summary>Not built yet, exempt, not x86-64 ELF, PASS, FAIL or unusable; each file verified once per audit.</summary>
    static void Check(AuditBinary b, AuditProject p, Dictionary<string, AuditBinary> verified, List<VerifyReport> reports, List<RetpolineException> unusable)
    {
        var exclude = p.Excludes.FirstOrDefault(e => Glob.IsMatch(e.Pattern, Path.GetFileName(b.Path)));
        if (exclude is not null) { b.Status = "exempt"; b.Detail = $"RetpolineExclude '{exclude.Name}': {exclude.Reason}"; return; }
        if (!File.Exists(b.Path)) { b.Status = "not built"; return; }
        if (verified.TryGetValue(b.Path, out var known)) { b.Status = known.Status; b.Errors = known.Errors; b.Detail = known.Detail; return; }
        verified[b.Path] = b;
        if (!Retpoline.Elf.ElfSniff.Read(b.Path).IsX86_64Elf) { b.Status = "not x86-64 ELF"; return; }
        try
        {
            var report = Verifier.Verify(b.Path, new VerifyOptions { Strict = p.Strict });
            reports.Add(report);
            b.Errors = report.Diagnostics.Count(d => d.Severity == Severity.Error);
            b.Status = report.HasErrors ? "FAIL" : "PASS";
            b.Detail = TextReport.Summary(report);
        }
        catch (RetpolineException e)
        {
            unusable.Add(e);
            b.Status = "unusable";
            b.Detail = $"{e.Code}: {e.Message}";
        }
    }

    static string Rel(string root, string path) => Path.GetRelativePath(root, path);

    static void WriteText(TextWriter o, string input, string configuration, string root, List<AuditProject> projects, long evaluateMs, long totalMs, bool requirePolicy)
    {
        o.WriteLine($"retpoline audit {TextEscape.Line(input)} (Configuration={TextEscape.Line(configuration)}): {projects.Count} project(s), evaluated in {evaluateMs} ms, {totalMs} ms in all");
        var rows = projects.Select(p => new[]
        {
            Rel(root, p.Path), p.Kind, p.Vendor, p.Policy,
            p.Error is not null ? $"error: {p.Error}" :
            p.Binaries.Count == 0 ? "(no native binaries)" :
            string.Join("; ", p.Binaries.Select(b => $"{Rel(root, b.Path)} [{b.Origin}] {b.Status}{(b.Errors > 0 ? $" ({b.Errors} error(s))" : "")}{(b.Status == "exempt" ? $" ({b.Detail})" : "")}")),
        }).ToList();
        string[] header = ["PROJECT", "KIND", "VENDOR", "POLICY", "NATIVE BINARIES"];
        var widths = Enumerable.Range(0, 4).Select(i => rows.Select(r => r[i].Length).Append(header[i].Length).Max()).ToArray();
        string Line(string[] r) => TextEscape.Line(string.Join("  ", r.Take(4).Select((c, i) => c.PadRight(widths[i]))) + "  " + r[4]);
        o.WriteLine(Line(header));
        foreach (var r in rows) o.WriteLine(Line(r));
        foreach (var p in projects.Where(p => p.Kind == AuditKinds.ManagedWithout && p.Binaries.Count > 0))
            o.WriteLine($"{(requirePolicy ? "error" : "note")}: {TextEscape.Line(Rel(root, p.Path))} ships native code without Retpoline.Sdk (add <PackageReference Include=\"Retpoline.Sdk\" PrivateAssets=\"all\" />)");
    }

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
                if (p.Error is not null) w.WriteString("error", p.Error);
                w.WriteStartArray("binaries");
                foreach (var b in p.Binaries)
                {
                    w.WriteStartObject();
                    w.WriteString("path", Rel(root, b.Path));
                    w.WriteString("origin", b.Origin);
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

sealed record AuditExclude(string Name, string Pattern, string Reason);

sealed class AuditBinary(string path, string origin)
{
    public string Path { get; } = path;
    public string Origin { get; } = origin;
    public string Status { get; set; } = "";
    public int Errors { get; set; }
    public string? Detail { get; set; }
}

sealed class AuditProject(string path)
{
    public string Path { get; } = path;
    public string Kind { get; set; } = AuditKinds.Unknown;
    public string Vendor { get; set; } = "-";
    public string Policy { get; set; } = "-";
    public bool Strict { get; set; }
    public string? Error { get; set; }
    public List<AuditBinary> Binaries { get; } = new();
    public List<AuditExclude> Excludes { get; } = new();
}

/// <summary>Everything that touches Microsoft.Build types; only called after the locator registered an MSBuild.</summary>
static class AuditEvaluator
{
    static readonly string[] CopyModes = ["Always", "PreserveNewest", "IfDifferent"];

    public static List<AuditProject> Evaluate(string input, string configuration)
    {
        var paths = ProjectsOf(input);
        using var collection = new ProjectCollection(new Dictionary<string, string> { ["Configuration"] = configuration });
        var evaluated = new System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<(AuditProject Audit, Project? Msbuild)>>(StringComparer.Ordinal);
        (AuditProject, Project?) Load(string path) => evaluated.GetOrAdd(path, p => new Lazy<(AuditProject, Project?)>(() => LoadNow(p))).Value;
        (AuditProject, Project?) LoadNow(string path)
        {
            var audit = new AuditProject(path);
            Project? project = null;
            try
            {
                project = Project.FromFile(path, new Microsoft.Build.Definition.ProjectOptions
                {
                    ProjectCollection = collection,
                    LoadSettings = ProjectLoadSettings.IgnoreMissingImports | ProjectLoadSettings.IgnoreEmptyImports | ProjectLoadSettings.IgnoreInvalidImports,
                });
            }
            catch (Exception e) when (e is Microsoft.Build.Exceptions.InvalidProjectFileException or IOException or UnauthorizedAccessException)
            {
                audit.Error = e.Message.Split('\n')[0].Trim();
            }
            return (audit, project);
        }

        // Evaluation is most of the time an audit takes; a shared ProjectCollection (its parsed-import cache)
        // evaluates in parallel.
        Parallel.ForEach(paths, path => Load(path));
        foreach (var path in paths)
        {
            var (audit, project) = Load(path);
            if (project is null) continue;
            bool native = project.GetPropertyValue("UsingRetpolineSdk") == "true";
            bool package = project.GetItems("PackageReference").Concat(project.GetItems("GlobalPackageReference"))
                .Any(i => i.EvaluatedInclude.Equals("Retpoline.Sdk", StringComparison.OrdinalIgnoreCase));
            audit.Kind = native ? AuditKinds.Native : package ? AuditKinds.ManagedWith : AuditKinds.ManagedWithout;
            if (native || package)
            {
                // Without a restore the package's props are not imported yet: its defaults apply.
                audit.Vendor = Or(project.GetPropertyValue("RetpolineVendor"), "Generic");
                audit.Policy = Or(project.GetPropertyValue("RetpolinePolicy"), "Error");
                audit.Strict = project.GetPropertyValue("RetpolineStrict") == "true";
                if (project.GetPropertyValue("RetpolineEnabled") == "false") audit.Policy = "None";
            }
            foreach (var e in project.GetItems("RetpolineExclude"))
                audit.Excludes.Add(new AuditExclude(e.EvaluatedInclude, Or(e.GetMetadataValue("Pattern"), e.EvaluatedInclude), Or(e.GetMetadataValue("Reason"), "(no Reason)")));

            if (native)
            {
                string type = project.GetPropertyValue("RetpolineOutputType");
                string target = project.GetPropertyValue("TargetPath");
                if (type is "Exe" or "Library" && target.Length > 0) audit.Binaries.Add(new AuditBinary(target, "output"));
            }
            foreach (var reference in project.GetItems("ProjectReference"))
            {
                string refPath = Path.GetFullPath(Path.Combine(project.DirectoryPath, reference.EvaluatedInclude));
                if (!File.Exists(refPath)) continue;
                var (refAudit, refProject) = Load(refPath);
                if (refProject is null || refProject.GetPropertyValue("UsingRetpolineSdk") != "true" || refProject.GetPropertyValue("RetpolineOutputType") != "Library") continue;
                audit.Binaries.Add(new AuditBinary(refProject.GetPropertyValue("TargetPath"), "ProjectReference " + Path.GetFileName(refPath)));
            }
            if (!native)
            {
                foreach (var item in project.GetItems("None").Concat(project.GetItems("Content")))
                {
                    if (!CopyModes.Contains(item.GetMetadataValue("CopyToOutputDirectory"))) continue;
                    string file = Path.GetFullPath(Path.Combine(project.DirectoryPath, item.EvaluatedInclude));
                    bool looksNative = File.Exists(file) ? Retpoline.Elf.ElfSniff.Read(file).IsElf : Path.GetFileName(file).Contains(".so", StringComparison.Ordinal);
                    if (looksNative) audit.Binaries.Add(new AuditBinary(file, item.ItemType));
                }
                foreach (var (file, origin) in PackageNativeAssets(project)) audit.Binaries.Add(new AuditBinary(file, origin));
            }
            foreach (var item in project.GetItems("RetpolineBinary"))
                audit.Binaries.Add(new AuditBinary(Path.GetFullPath(Path.Combine(project.DirectoryPath, item.EvaluatedInclude)), "RetpolineBinary"));
        }
        return paths.Select(p => Load(p).Item1).ToList();
    }

    static string Or(string value, string fallback) => value.Length > 0 ? value : fallback;

    /// <summary>linux-x64 native assets of restored packages, from obj/project.assets.json when a restore has run.</summary>
    static IEnumerable<(string File, string Origin)> PackageNativeAssets(Project project)
    {
        string assets = Path.Combine(project.DirectoryPath, project.GetPropertyValue("MSBuildProjectExtensionsPath"), "project.assets.json");
        if (!File.Exists(assets)) yield break;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(assets));
        var root = doc.RootElement;
        if (!root.TryGetProperty("packageFolders", out var folders) || !root.TryGetProperty("libraries", out var libraries) || !root.TryGetProperty("targets", out var targets)) yield break;
        string? folder = folders.EnumerateObject().Select(f => f.Name).FirstOrDefault();
        if (folder is null) yield break;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var target in targets.EnumerateObject())
            foreach (var library in target.Value.EnumerateObject())
            {
                if (!libraries.TryGetProperty(library.Name, out var lib) || !lib.TryGetProperty("path", out var libPath)) continue;
                var files = new List<string>();
                if (library.Value.TryGetProperty("runtimeTargets", out var rt))
                    files.AddRange(rt.EnumerateObject().Where(a => a.Value.TryGetProperty("assetType", out var t) && t.GetString() == "native"
                        && a.Value.TryGetProperty("rid", out var rid) && rid.GetString() is "linux-x64" or "linux" or "unix").Select(a => a.Name));
                if (target.Name.EndsWith("/linux-x64", StringComparison.Ordinal) && library.Value.TryGetProperty("native", out var nat))
                    files.AddRange(nat.EnumerateObject().Select(a => a.Name));
                foreach (var f in files.Where(f => !f.EndsWith("/_._", StringComparison.Ordinal)))
                {
                    string full = Path.GetFullPath(Path.Combine(folder, libPath.GetString()!, f));
                    if (seen.Add(full)) yield return (full, "package " + library.Name);
                }
            }
    }

    /// <summary>The projects of a solution (.sln, .slnx), a project file, or every project file under a folder.</summary>
    static List<string> ProjectsOf(string input)
    {
        if (Directory.Exists(input))
        {
            var solutions = Directory.GetFiles(input, "*.sln").Concat(Directory.GetFiles(input, "*.slnx")).Order(StringComparer.Ordinal).ToList();
            if (solutions.Count > 0) return solutions.SelectMany(ProjectsOf).Distinct(StringComparer.Ordinal).ToList();
            return Directory.EnumerateFiles(input, "*.*proj", SearchOption.AllDirectories)
                .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(d => d is "bin" or "obj" or "node_modules" or ".git"))
                .Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        }
        if (input.EndsWith(".sln", StringComparison.OrdinalIgnoreCase) || input.EndsWith(".slnx", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                return Microsoft.Build.Construction.SolutionFile.Parse(input).ProjectsInOrder
                    .Where(p => p.ProjectType == Microsoft.Build.Construction.SolutionProjectType.KnownToBeMSBuildFormat)
                    .Select(p => Path.GetFullPath(p.AbsolutePath)).ToList();
            }
            catch (Microsoft.Build.Exceptions.InvalidProjectFileException) when (input.EndsWith(".slnx", StringComparison.OrdinalIgnoreCase) && SlnxProjects(input) is { } listed)
            {
                // The solution parser rejects a project whose extension it does not know unless the entry names a
                // Type (`dotnet sln add` writes one for our SDK); the .slnx format itself is plain enough to read.
                return listed;
            }
            catch (Microsoft.Build.Exceptions.InvalidProjectFileException e)
            {
                throw new RetpolineException(ToolchainCodes.AuditUnusableProject, input, $"cannot read the solution: {e.Message.Split('\n')[0]}");
            }
        }
        return [input];
    }

    static List<string>? SlnxProjects(string slnx)
    {
        try
        {
            var doc = System.Xml.Linq.XDocument.Load(slnx);
            string dir = Path.GetDirectoryName(slnx)!;
            return doc.Descendants("Project").Select(p => (string?)p.Attribute("Path")).OfType<string>()
                .Select(p => Path.GetFullPath(Path.Combine(dir, p.Replace('\\', '/')))).ToList();
        }
        catch (System.Xml.XmlException) { return null; }
    }
}
