using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>Links (or archives) the objects; skipped when the output is newer than every input and the command is unchanged.</summary>
public sealed class LinkNativeTask : Microsoft.Build.Utilities.Task
{
    [Required] public ITaskItem[] Objects { get; set; } = [];
    [Required] public string Output { get; set; } = "";
    [Required] public string Driver { get; set; } = "";
    [Required] public string CompilerFamily { get; set; } = "";
    [Required] public string IntermediateDirectory { get; set; } = "";
    public string Archiver { get; set; } = "ar";
    public string OutputType { get; set; } = "Exe";
    public bool RetpolineEnabled { get; set; } = true;
    public string LdFlags { get; set; } = "";
    public string[] LinkLibraries { get; set; } = [];
    /// <summary>Static libraries and shared objects from referenced native projects: inputs for the up-to-date check too.</summary>
    public ITaskItem[] LinkInputs { get; set; } = [];
    /// <summary>Relative source paths in linker messages are resolved against it.</summary>
    public string ProjectDirectory { get; set; } = "";
    /// <summary>The linker map to write (executables and shared libraries): what verify names each finding's origin from.</summary>
    public string LinkerMap { get; set; } = "";

    public override bool Execute()
    {
        var settings = new NativeSettings
        {
            OutputType = OutputType, RetpolineEnabled = RetpolineEnabled,
            LdFlags = FlagSet.SplitFlags(LdFlags),
            LinkLibraries = LinkLibraries.Where(l => l.Length > 0).ToList(),
        };
        var inputs = Objects.Select(o => o.ItemSpec).Concat(LinkInputs.Select(i => i.ItemSpec)).ToList();
        var step = NativeLinker.Plan(settings, Driver, Archiver, inputs, Path.GetFullPath(Output), IntermediateDirectory,
            OutputType == "StaticLibrary" || LinkerMap.Length == 0 ? null : Path.GetFullPath(LinkerMap));
        if (NativeLinker.IsUpToDate(step))
        {
            Log.LogMessage(MessageImportance.Normal, "Retpoline: {0} is up to date", Output);
            return true;
        }
        Log.LogMessage(MessageImportance.Normal, "{0}", step.CommandLine);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // From the project folder, like the compiles: relative paths in LdFlags/LinkLibraries mean what the user sees.
        string workingDirectory = ProjectDirectory.Length > 0 ? ProjectDirectory : Path.GetDirectoryName(step.Output)!;
        var (ok, diagnostics) = NativeLinker.Run(step, Enum.Parse<CompilerFamily>(CompilerFamily), workingDirectory);
        // bench/build-vs-make.sh compares patch+verify time with this.
        Log.LogMessage(MessageImportance.Normal, "Retpoline: link {0} ms", DiagnosticLogging.Ms(clock.Elapsed));
        foreach (var d in diagnostics) DiagnosticLogging.LogCompilerDiagnostic(Log, d, null, workingDirectory);
        return ok && !Log.HasLoggedErrors;
    }
}
