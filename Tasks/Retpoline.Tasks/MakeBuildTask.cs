using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// `make -C MakeDirectory -jN MakeTargets CC="cc flags" CXX="cxx flags"` (<see cref="MakeBuild"/>), then every
/// NativeOutput item as the post-link step's RetpolineLinkedOutput; a missing one is RPL0236.
/// </summary>
public sealed class MakeBuildTask : Microsoft.Build.Utilities.Task
{
    [Required] public string Directory { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    [Required] public string MembersDirectory { get; set; } = "";
    public string Make { get; set; } = "make";
    public string Archiver { get; set; } = "ar";
    public string CC { get; set; } = "gcc";
    public string CXX { get; set; } = "g++";
    public string CompilerFamily { get; set; } = "Gcc";
    public bool RetpolineEnabled { get; set; } = true;
    public bool ReturnThunk { get; set; }
    public bool HardenSls { get; set; }
    public bool CsPrefix { get; set; }
    public string ThunkObject { get; set; } = "";
    public string[] Targets { get; set; } = [];
    /// <summary>NativeOutput items, with Kind already decided.</summary>
    public ITaskItem[] Outputs { get; set; } = [];

    [Output] public ITaskItem[] Linked { get; set; } = [];

    public override bool Execute()
    {
        var settings = CMakeTaskSupport.Settings(CC, CXX, CompilerFamily, "", RetpolineEnabled, ReturnThunk, HardenSls, CsPrefix, ThunkObject);
        var step = CMakeTaskSupport.WithCores(BuildEngine, jobs => MakeBuild.Build(Make, settings, Path.GetFullPath(Directory), jobs, Targets.Where(t => t.Length > 0).ToList()));
        if (!CMakeTaskSupport.Log(Log, step, ProjectDirectory)) return false;
        if (Outputs.Length == 0)
            Log.LogWarning(null, CMakeCodes.OutputMissing, null, null, 0, 0, 0, 0, "{0}", "no NativeOutput item names what make produces, so nothing was verified (add <NativeOutput Include=\"path/to/binary\" />)");
        var linked = new List<ITaskItem>();
        foreach (var o in Outputs)
        {
            if (!File.Exists(o.ItemSpec))
            {
                CMakeTaskSupport.Fail(Log, CMakeCodes.OutputMissing, $"NativeOutput '{o.ItemSpec}' does not exist after make: the Makefile did not produce it (check the item's path, relative to the project, and MakeTargets)");
                continue;
            }
            if (CMakeTaskSupport.Linked(Log, o.ItemSpec, o.GetMetadata("Kind"), Archiver, MembersDirectory) is { } item) linked.Add(item);
        }
        Linked = linked.ToArray();
        return !Log.HasLoggedErrors;
    }
}
