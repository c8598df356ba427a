using System.Text.Json;
using Microsoft.Build.Evaluation;
using Retpoline.Policy;
using Retpoline.Toolchain;

namespace Retpoline.Tool;

/// <summary>
/// Everything that touches Microsoft.Build types; only called after the locator registered an MSBuild. Reads each
/// project's kind, settings and waivers. What a project ships is its RetpolineShippedBinaries target's answer
/// (<see cref="AuditShippedTarget"/>) when that can run; otherwise, and for projects without the package, the files
/// are listed from evaluation the way the build's copy steps place them:
/// its own output, the outputs of native projects it references (directly or through other references: Library and
/// Exe alike, as GetCopyToOutputDirectoryItems copies both), None/Content copied to output, restored packages'
/// linux-x64 native assets, and RetpolineBinary items.
/// </summary>
static class AuditEvaluator
{
    static readonly string[] CopyModes = ["Always", "PreserveNewest", "IfDifferent"];

    public static List<AuditProject> Evaluate(string input, string configuration)
    {
        var paths = AuditInputs.ProjectsOf(input);
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
            bool native = IsNative(project);
            bool package = project.GetItems("PackageReference").Concat(project.GetItems("GlobalPackageReference"))
                .Any(i => i.EvaluatedInclude.Equals("Retpoline.Sdk", StringComparison.OrdinalIgnoreCase));
            audit.Kind = native ? AuditKinds.Native : package ? AuditKinds.ManagedWith : AuditKinds.ManagedWithout;
            // Without a restore the package's props are not imported yet: its defaults apply. Without the package,
            // RetpolinePolicy means nothing to the build, so nothing to the audit.
            string policy = native || package ? Or(project.GetPropertyValue("RetpolinePolicy"), "Error") : "Error";
            try
            {
                audit.Settings = ProjectPolicy.From(policy, IsTrue(project, "RetpolineStrict"), IsTrue(project, "RetpolineHardenSls"),
                    WaiverItems(project, WaiverItem.Exclude).Concat(WaiverItems(project, WaiverItem.Allow)));
            }
            catch (InvalidSettingException e)
            {
                audit.Error = e.Message;
                audit.ErrorCode = e.Code;
                continue;
            }
            if (native || package)
            {
                audit.Vendor = Or(project.GetPropertyValue("RetpolineVendor"), "Generic");
                audit.Mode = project.GetPropertyValue("RetpolineEnabled").Equals("false", StringComparison.OrdinalIgnoreCase) ? PolicyMode.None : audit.Settings.Mode;
                audit.Policy = audit.Mode.ToString()!;
            }
            var fromEvaluation = ShippedFiles(project, native, Load).ToList();
            // The build's own answer when its target can run; evaluation alone, said so in the row, when not.
            string? whyNot = null;
            var shipped = native || package ? AuditShippedTarget.Run(project, fromEvaluation, out whyNot) : null;
            audit.Binaries.AddRange(shipped ?? fromEvaluation);
            audit.Note = whyNot;
        }
        return paths.Select(p => Load(p).Item1).ToList();
    }

    /// <summary>What the build's copy steps put in the project's output folder, from evaluation alone.</summary>
    static IEnumerable<AuditBinary> ShippedFiles(Project project, bool native, Func<string, (AuditProject, Project?)> load)
    {
        string outDir = OutDirOf(project);
        if (native && NativeOutput(project) is { } own) yield return new AuditBinary(own, "output", Path.GetFileName(own));
        foreach (var (file, reference) in ReferencedNativeOutputs(project, load))
            yield return new AuditBinary(file, "ProjectReference " + Path.GetFileName(reference), Path.GetFileName(file));
        foreach (var item in project.GetItems("None").Concat(project.GetItems("Content")))
        {
            if (!CopyModes.Contains(item.GetMetadataValue("CopyToOutputDirectory"))) continue;
            string file = Path.GetFullPath(Path.Combine(project.DirectoryPath, item.EvaluatedInclude));
            bool looksNative = File.Exists(file) ? Retpoline.Elf.ElfSniff.Read(file).IsElf : Path.GetFileName(file).Contains(".so", StringComparison.Ordinal);
            if (looksNative) yield return new AuditBinary(file, item.ItemType, CopiedAs(project, item, file));
        }
        foreach (var (file, relative, origin) in PackageNativeAssets(project)) yield return new AuditBinary(file, origin, relative);
        foreach (var item in project.GetItems("RetpolineBinary"))
        {
            string file = Path.GetFullPath(Path.Combine(project.DirectoryPath, item.EvaluatedInclude));
            yield return new AuditBinary(file, "RetpolineBinary", ShippedBinaries.RelativeTo(outDir, file), named: true);
        }
    }

    /// <summary>
    /// Library and Exe outputs of the native projects this one references, directly or through other references
    /// (each copies what its own references ship); a static library is linked, never copied.
    /// </summary>
    static IEnumerable<(string File, string Reference)> ReferencedNativeOutputs(Project project, Func<string, (AuditProject, Project?)> load)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { project.FullPath };
        var queue = new Queue<Project>([project]);
        while (queue.TryDequeue(out var current))
            foreach (var reference in current.GetItems("ProjectReference"))
            {
                string refPath = Path.GetFullPath(Path.Combine(current.DirectoryPath, reference.EvaluatedInclude));
                if (!seen.Add(refPath) || !File.Exists(refPath)) continue;
                var (_, refProject) = load(refPath);
                if (refProject is null) continue;
                queue.Enqueue(refProject);
                if (IsNative(refProject) && NativeOutput(refProject) is { } output) yield return (output, refPath);
            }
    }

    /// <summary>The output folder, absolute; MSBuild writes `bin\Debug/net10.0/` even on Linux.</summary>
    public static string OutDirOf(Project p) => Path.GetFullPath(Path.Combine(p.DirectoryPath, p.GetPropertyValue("OutDir").Replace('\\', '/')));

    static bool IsNative(Project p) => p.GetPropertyValue("UsingRetpolineSdk") == "true";

    /// <summary>A native project's Exe or Library (a static library is not shipped on its own).</summary>
    static string? NativeOutput(Project p)
        => p.GetPropertyValue("RetpolineOutputType") is "Exe" or "Library" && p.GetPropertyValue("TargetPath") is { Length: > 0 } target ? target : null;

    /// <summary>Where a None/Content item lands, as AssignTargetPath decides: its TargetPath or Link, else its path
    /// under the project folder, else its file name.</summary>
    static string CopiedAs(Project project, ProjectItem item, string file)
    {
        string target = Or(item.GetMetadataValue("TargetPath"), item.GetMetadataValue("Link"));
        if (target.Length > 0) return target.Replace('\\', '/');
        string relative = Path.GetRelativePath(project.DirectoryPath, file);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? Path.GetFileName(file) : relative.Replace('\\', '/');
    }

    /// <summary>RetpolineAllow / RetpolineExclude items as the waiver model's records, as the tasks pass them.</summary>
    static IEnumerable<WaiverItem> WaiverItems(Project project, string itemType)
        => project.GetItems(itemType).Select(i => WaiverItem.From(itemType, i.EvaluatedInclude, i.GetMetadataValue));

    static bool IsTrue(Project p, string property) => p.GetPropertyValue(property).Equals("true", StringComparison.OrdinalIgnoreCase);

    static string Or(string value, string fallback) => value.Length > 0 ? value : fallback;

    /// <summary>linux-x64 native assets of restored packages, from obj/project.assets.json when a restore has run:
    /// each with where it lands (`runtimes/linux-x64/native/…` for a RID-less build, flat for a RID-specific one).</summary>
    static IEnumerable<(string File, string Relative, string Origin)> PackageNativeAssets(Project project)
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
                var files = new List<(string Asset, bool Flat)>();
                if (library.Value.TryGetProperty("runtimeTargets", out var rt))
                    files.AddRange(rt.EnumerateObject().Where(a => a.Value.TryGetProperty("assetType", out var t) && t.GetString() == "native"
                        && a.Value.TryGetProperty("rid", out var rid) && rid.GetString() is "linux-x64" or "linux" or "unix").Select(a => (a.Name, false)));
                if (target.Name.EndsWith("/linux-x64", StringComparison.Ordinal) && library.Value.TryGetProperty("native", out var nat))
                    files.AddRange(nat.EnumerateObject().Select(a => (a.Name, true)));
                foreach (var (f, flat) in files.Where(f => !f.Asset.EndsWith("/_._", StringComparison.Ordinal)))
                {
                    string full = Path.GetFullPath(Path.Combine(folder, libPath.GetString()!, f));
                    if (seen.Add(full)) yield return (full, flat ? Path.GetFileName(f) : f, "package " + library.Name);
                }
            }
    }
}
