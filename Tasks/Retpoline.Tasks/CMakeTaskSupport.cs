using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>What the CMake and make tasks share: the settings from MSBuild, cores from the engine, a step's log.</summary>
static class CMakeTaskSupport
{
    public static ForeignBuildSettings Settings(string cc, string cxx, string family, string configuration, bool enabled,
        bool returnThunk, bool hardenSls, bool csPrefix, string thunkObject, string runtimeExe = "", string runtimeLibrary = "") => new()
    {
        CC = cc, CXX = cxx, Family = Enum.TryParse<CompilerFamily>(family, out var f) ? f : CompilerFamily.Gcc,
        Configuration = configuration.Length > 0 ? configuration : "Debug", RetpolineEnabled = enabled,
        ReturnThunk = returnThunk, HardenSls = hardenSls, CsPrefix = csPrefix,
        ThunkObject = thunkObject.Length > 0 ? Path.GetFullPath(thunkObject) : "",
        RuntimeExeObject = runtimeExe.Length > 0 ? Path.GetFullPath(runtimeExe) : "",
        RuntimeLibraryObject = runtimeLibrary.Length > 0 ? Path.GetFullPath(runtimeLibrary) : "",
    };

    /// <summary>Runs <paramref name="run"/> with as many cores as MSBuild grants (shared with the build's other projects).</summary>
    public static T WithCores<T>(IBuildEngine engine, Func<int, T> run)
    {
        int wanted = Environment.ProcessorCount, granted = 0;
        var e9 = engine as IBuildEngine9;
        try
        {
            if (e9 is not null) { try { granted = e9.RequestCores(wanted); } catch (NotImplementedException) { e9 = null; } }
            return run(Math.Max(1, e9 is not null ? granted : wanted));
        }
        finally { if (e9 is not null && granted > 0) e9.ReleaseCores(granted); }
    }

    /// <summary>The command and what it printed at normal verbosity; its diagnostics at their files; true when it succeeded.</summary>
    public static bool Log(TaskLoggingHelper log, ForeignStep step, string projectDirectory)
    {
        if (step.CommandLine.Length > 0) log.LogMessage(MessageImportance.Normal, "{0}", step.CommandLine);
        foreach (var line in step.Output.Split('\n'))
            if (line.Trim().Length > 0) log.LogMessage(MessageImportance.Normal, "  {0}", line.TrimEnd());
        foreach (var d in step.Diagnostics) DiagnosticLogging.LogCompilerDiagnostic(log, d, null, projectDirectory);
        return step.Ok && !log.HasLoggedErrors;
    }

    public static bool Fail(TaskLoggingHelper log, string code, string message)
    {
        log.LogError(null, code, null, null, 0, 0, 0, 0, "{0}", message);
        return false;
    }

    /// <summary>
    /// The post-link step's item for one output: a static library's members are extracted (only when it changed)
    /// under <paramref name="membersDirectory"/> and verified one by one.
    /// </summary>
    /// <param name="linkerMap">The map the link wrote beside the file (CMake's links: see CMakeProject.ProjectInclude), or null.</param>
    public static TaskItem? Linked(TaskLoggingHelper log, string path, string kind, string ar, string membersDirectory, string? linkerMap = null)
    {
        var item = new TaskItem(path);
        item.SetMetadata("Kind", kind);
        if (linkerMap is not null && kind != "StaticLibrary") item.SetMetadata("LinkerMap", linkerMap);
        if (kind == "StaticLibrary")
        {
            var (members, error) = ArchiveMembers.Extract(ar, path, Path.Combine(membersDirectory, Path.GetFileName(path)));
            if (error is not null) { Fail(log, CMakeCodes.BuildFailed, error); return null; }
            item.SetMetadata("Objects", string.Join(';', members));
        }
        return item;
    }
}
