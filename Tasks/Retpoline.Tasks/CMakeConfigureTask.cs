using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// Configures the CMake project in the SDK's build tree with the probed compilers and the injected mitigation
/// (<see cref="CMakeProject"/>), only when it was never configured or those settings changed; then declares what it
/// produces, from the File API reply (<see cref="CMakeFileApi"/>), as RetpolineNativeOutput items.
/// </summary>
public sealed class CMakeConfigureTask : Microsoft.Build.Utilities.Task
{
    [Required] public string SourceDirectory { get; set; } = "";
    [Required] public string BuildDirectory { get; set; } = "";
    [Required] public string ToolchainFile { get; set; } = "";
    [Required] public string RecordFile { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    public string CMake { get; set; } = "cmake";
    /// <summary>CMakeGenerator: empty for Ninja when it is on PATH, Unix Makefiles otherwise.</summary>
    public string Generator { get; set; } = "";
    public string CC { get; set; } = "gcc";
    public string CXX { get; set; } = "g++";
    public string CompilerFamily { get; set; } = "Gcc";
    public string Configuration { get; set; } = "Debug";
    public bool RetpolineEnabled { get; set; } = true;
    public bool ReturnThunk { get; set; }
    public bool HardenSls { get; set; }
    public bool CsPrefix { get; set; }
    public string ThunkObject { get; set; } = "";
    /// <summary>RetpolineVendor=Runtime: the start-up routine for executables, and for shared libraries and modules.</summary>
    public string RuntimeExeObject { get; set; } = "";
    public string RuntimeLibraryObject { get; set; } = "";
    /// <summary>CMakeDefine items: Include is the cache entry's name, Value its value.</summary>
    public ITaskItem[] Defines { get; set; } = [];
    /// <summary>Only these targets' outputs (CMakeTargets); empty: every target that produces a binary.</summary>
    public string[] Targets { get; set; } = [];

    [Output] public ITaskItem[] Outputs { get; set; } = [];
    [Output] public bool Configured { get; set; }

    public override bool Execute()
    {
        string source = Path.GetFullPath(SourceDirectory), build = Path.GetFullPath(BuildDirectory);
        var settings = CMakeTaskSupport.Settings(CC, CXX, CompilerFamily, Configuration, RetpolineEnabled, ReturnThunk, HardenSls, CsPrefix, ThunkObject,
            RuntimeExeObject, RuntimeLibraryObject);
        var step = CMakeBuild.Configure(CMake, settings, source, build, Path.GetFullPath(ToolchainFile), Path.GetFullPath(RecordFile),
            Defines.Select(d => (d.ItemSpec, d.GetMetadata("Value"))), Generator);
        if (step.Ran) Log.LogMessage(MessageImportance.Normal, "Retpoline: CMake configure of {0} in {1}", source, build);
        Configured = step.Ran;
        if (!CMakeTaskSupport.Log(Log, step, ProjectDirectory)) return false;
        try
        {
            Outputs = Declare(CMakeFileApi.ReadTargets(build)).ToArray();
            return !Log.HasLoggedErrors;
        }
        catch (ToolchainException e) { return CMakeTaskSupport.Fail(Log, e.Code, e.Message); }
    }

    IEnumerable<ITaskItem> Declare(IReadOnlyList<CMakeTarget> all)
    {
        var wanted = Targets.Where(t => t.Length > 0).ToList();
        foreach (var name in wanted.Where(n => all.All(t => t.Name != n)))
            CMakeTaskSupport.Fail(Log, CMakeCodes.NoSuchTarget,
                $"CMakeTargets names '{name}', which the CMake project does not define (its targets: {string.Join(", ", all.Where(t => t.Kind is not null).Select(t => t.Name))})");
        var chosen = wanted.Count > 0 ? wanted.Select(n => all.FirstOrDefault(t => t.Name == n)).OfType<CMakeTarget>() : all;
        bool primary = true;
        foreach (var t in chosen)
        {
            if (t.Kind is not { } kind) continue;
            foreach (var flag in CMakeFileApi.DefeatingFlags(t))
                Log.LogWarning(null, CMakeCodes.MitigationDefeated, null, t.DefinedInFile, t.DefinedAtLine, 0, 0, 0,
                    "target '{0}' compiles with {1}, which comes after the SDK's mitigation flags and undoes them: verify reports what it leaves unprotected (remove it from the target's compile options)", t.Name, flag);
            foreach (var artifact in t.Artifacts)
            {
                // A Library's artifacts include its import/link names on other platforms; here: the file itself.
                var item = new Microsoft.Build.Utilities.TaskItem(artifact);
                item.SetMetadata("Kind", kind);
                item.SetMetadata("CMakeTarget", t.Name);
                item.SetMetadata("NeedsCxx", t.NeedsCxx ? "true" : "false");
                item.SetMetadata("Primary", primary ? "true" : "false");
                item.SetMetadata("PublicIncludeDirectories", string.Join(';', t.Includes));
                primary = false;
                yield return item;
            }
        }
    }
}
