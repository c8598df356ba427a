using Microsoft.Build.Evaluation;
using Microsoft.Build.Framework;
using Retpoline.Elf;
using Retpoline.Policy;

namespace Retpoline.Tool;

/// <summary>
/// What a project ships, as the build itself computes it: its RetpolineShippedBinaries target (the list the build's
/// output verification uses), run on the evaluated project without a restore or a build — each file where it lands,
/// with its Origin and whether the user named it. Null, with the reason, when the target cannot run: the project does
/// not import it (no Retpoline.Sdk, or never restored, so the package's targets are not imported yet), or it fails
/// (a reference that was never restored). The caller then lists the project from evaluation alone.
/// </summary>
static class AuditShippedTarget
{
    const string Target = "RetpolineShippedBinaries";
    /// <summary>Puts package assets in ReferenceCopyLocalPaths, which a build has done before the target runs.</summary>
    const string CopyLocal = "ResolveLockFileCopyLocalFiles";

    /// <param name="fromEvaluation">The evaluation-only list: where a file is not in the output yet (not built or
    /// not copied since the project changed), the source it will be copied from is what gets verified.</param>
    public static List<AuditBinary>? Run(Project project, IReadOnlyList<AuditBinary> fromEvaluation, out string? whyNot)
    {
        whyNot = null;
        if (!project.Targets.ContainsKey(Target))
        {
            whyNot = $"listed from evaluation: the project does not import the {Target} target (no Retpoline.Sdk, or not restored yet)";
            return null;
        }
        string assets = Path.Combine(project.DirectoryPath, project.GetPropertyValue("MSBuildProjectExtensionsPath"), "project.assets.json");
        if (!File.Exists(assets))
        {
            whyNot = "listed from evaluation: the project was never restored (no project.assets.json), so its package targets cannot run";
            return null;
        }
        var errors = new ErrorCollector();
        var instance = project.CreateProjectInstance();
        string[] targets = instance.Targets.ContainsKey(CopyLocal) ? [CopyLocal, Target] : [Target];
        if (!instance.Build(targets, [errors], out var outputs) || !outputs.TryGetValue(Target, out var result))
        {
            whyNot = $"listed from evaluation: {Target} failed ({errors.First ?? "no error message"})";
            return null;
        }

        string outDir = AuditEvaluator.OutDirOf(project);
        var sources = fromEvaluation.GroupBy(b => b.RelativePath, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var listed = new List<AuditBinary>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in result.Items)
        {
            string path = Path.GetFullPath(item.ItemSpec);
            if (!seen.Add(path)) continue;
            string origin = item.GetMetadata("Origin");
            bool named = item.GetMetadata("Named").Equals("true", StringComparison.OrdinalIgnoreCase);
            string relative = ShippedBinaries.RelativeTo(outDir, path);
            if (File.Exists(path))
            {
                // Every file copied to output is in the list; only native ones (and the ones the user named) are rows.
                if (named || ElfSniff.Read(path).IsElf) listed.Add(new AuditBinary(path, origin, relative, named));
            }
            else if (sources.TryGetValue(relative, out var source) && File.Exists(source.Path))
                listed.Add(new AuditBinary(source.Path, origin, relative, named)); // the build will copy it from there
            else if (named || origin is "output" || origin.StartsWith("ProjectReference", StringComparison.Ordinal) || sources.ContainsKey(relative)
                     || Path.GetFileName(path).Contains(".so", StringComparison.Ordinal))
                listed.Add(new AuditBinary(path, origin, relative, named));
        }
        return listed;
    }

    sealed class ErrorCollector : ILogger
    {
        public string? First { get; private set; }
        public LoggerVerbosity Verbosity { get; set; } = LoggerVerbosity.Quiet;
        public string? Parameters { get; set; }
        public void Initialize(IEventSource eventSource) => eventSource.ErrorRaised += (_, e) => First ??= $"{e.Code}: {e.Message}";
        public void Shutdown() { }
    }
}
