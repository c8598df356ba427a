using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// `cmake --build` of the configured tree with the cores MSBuild grants, only CMakeTargets when set; compiler,
/// linker and CMake messages become diagnostics at their files. Then each declared output as the post-link step's
/// RetpolineLinkedOutput (a static library with its members to verify).
/// </summary>
public sealed class CMakeBuildTask : Microsoft.Build.Utilities.Task
{
    [Required] public string SourceDirectory { get; set; } = "";
    [Required] public string BuildDirectory { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    [Required] public string MembersDirectory { get; set; } = "";
    public string CMake { get; set; } = "cmake";
    public string Archiver { get; set; } = "ar";
    public string CompilerFamily { get; set; } = "Gcc";
    public string[] Targets { get; set; } = [];
    /// <summary>RetpolineNativeOutput items as declared from the File API.</summary>
    public ITaskItem[] Outputs { get; set; } = [];

    [Output] public ITaskItem[] Linked { get; set; } = [];

    public override bool Execute()
    {
        var family = Enum.TryParse<CompilerFamily>(CompilerFamily, out var f) ? f : Toolchain.CompilerFamily.Gcc;
        var targets = Targets.Where(t => t.Length > 0).ToList();
        var step = CMakeTaskSupport.WithCores(BuildEngine, jobs => CMakeBuild.Build(CMake, Path.GetFullPath(SourceDirectory), Path.GetFullPath(BuildDirectory), jobs, targets, family));
        if (!CMakeTaskSupport.Log(Log, step, ProjectDirectory)) return false;
        var linked = new List<ITaskItem>();
        foreach (var o in Outputs)
        {
            if (!File.Exists(o.ItemSpec))
            {
                // A target outside `all` (EXCLUDE_FROM_ALL) is not built unless CMakeTargets names it.
                if (targets.Count > 0) CMakeTaskSupport.Fail(Log, CMakeCodes.OutputMissing, $"CMake target '{o.GetMetadata("CMakeTarget")}' was built but its output {o.ItemSpec} does not exist");
                continue;
            }
            if (CMakeTaskSupport.Linked(Log, o.ItemSpec, o.GetMetadata("Kind"), Archiver, MembersDirectory, Path.GetFullPath(o.ItemSpec) + ".map") is { } item) linked.Add(item);
        }
        Linked = linked.ToArray();
        return !Log.HasLoggedErrors;
    }
}
