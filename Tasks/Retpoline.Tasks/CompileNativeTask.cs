using System.Text;
using System.Text.Json;
using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// Compiles C, C++ and assembly sources in parallel, incrementally (see <see cref="NativeCompiler"/>), logs every
/// command at normal verbosity, maps compiler diagnostics to MSBuild's format, and writes compile_commands.json.
/// Up-to-date checks live here, not in the target's Inputs/Outputs: a header change must rebuild exactly the
/// objects that included it, which only the dependency files know.
/// </summary>
public sealed class CompileNativeTask : Microsoft.Build.Utilities.Task, ICancelableTask
{
    [Required] public ITaskItem[] Sources { get; set; } = [];
    [Required] public string CC { get; set; } = "";
    public string CXX { get; set; } = "";
    [Required] public string CompilerFamily { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    [Required] public string IntermediateDirectory { get; set; } = "";
    public string Configuration { get; set; } = "Debug";
    public string OutputType { get; set; } = "Exe";
    public bool RetpolineEnabled { get; set; } = true;
    public bool ReturnThunk { get; set; }
    public bool HardenSls { get; set; }
    public bool CsPrefix { get; set; }
    public string CStandard { get; set; } = "";
    public string CxxStandard { get; set; } = "";
    public string DefineConstants { get; set; } = "";
    public string[] IncludeDirectories { get; set; } = [];
    public string CFlags { get; set; } = "";
    public string CxxFlags { get; set; } = "";
    public string CompileCommandsFile { get; set; } = "";
    /// <summary>The package's native/ folder: mapped to `retpoline-sdk` in debug info (see <see cref="PathMaps"/>).</summary>
    [Required] public string PackageNativeDirectory { get; set; } = "";
    public int MaxParallelism { get; set; }
    /// <summary>
    /// Set (RetpolineRuntimeMinimum): the sources are the run-time routine (native/retpoline_runtime.c), compiled with
    /// its own flags for that minimum instead of the project's.
    /// </summary>
    public string RuntimeMinimum { get; set; } = "";
    /// <summary>DetectToolchainTask's version lines for CC and CXX.</summary>
    public string CcIdentity { get; set; } = "";
    public string CxxIdentity { get; set; } = "";

    [Output] public ITaskItem[] Objects { get; set; } = [];

    readonly CancellationTokenSource cancel = new();
    public void Cancel() => cancel.Cancel();

    public override bool Execute()
    {
        var family = Enum.Parse<CompilerFamily>(CompilerFamily);
        Vendor? runtimeMinimum = null;
        if (RuntimeMinimum.Length > 0)
        {
            if (!Enum.TryParse(RuntimeMinimum, ignoreCase: true, out Vendor m) || !Enum.IsDefined(m))
            {
                Log.LogError(null, ToolchainCodes.InvalidPropertyOrItem, null, null, 0, 0, 0, 0, "RetpolineRuntimeMinimum must be Generic, Amd or None, not '{0}'", RuntimeMinimum);
                return false;
            }
            runtimeMinimum = m;
        }
        var sources = Sources.Select(s => s.ItemSpec).Where(s => FlagSet.Language(s) is not null).Distinct().ToList();
        var includes = IncludeDirectories.Where(i => i.Length > 0).Select(i => Path.GetFullPath(i, ProjectDirectory)).Distinct().ToList();
        var settings = new NativeSettings
        {
            Configuration = Configuration, OutputType = OutputType, RetpolineEnabled = RetpolineEnabled, ReturnThunk = ReturnThunk,
            HardenSls = HardenSls, CsPrefix = CsPrefix, CStandard = CStandard, CxxStandard = CxxStandard,
            Defines = DefineConstants.Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            IncludeDirectories = includes,
            CFlags = FlagSet.SplitFlags(CFlags), CxxFlags = FlagSet.SplitFlags(CxxFlags),
            // Every folder a compile names: the include directories, then each source's folder.
            PathMaps = Toolchain.PathMaps.For(ProjectDirectory, PackageNativeDirectory,
                includes.Concat(sources.Select(s => Path.GetDirectoryName(Path.GetFullPath(s, ProjectDirectory))!))),
            RuntimeRoutineMinimum = runtimeMinimum,
        };
        var cc = new CompilerInfo(CC, family, new Version(0, 0), "x86_64", true, ReturnThunk, CsPrefix, HardenSls) { VersionLine = CcIdentity };
        var cxx = cc with { Path = CXX.Length > 0 ? CXX : CC, VersionLine = CxxIdentity.Length > 0 ? CxxIdentity : CcIdentity };

        List<CompileStep> steps;
        try
        {
            steps = sources.Select(s => NativeCompiler.Plan(cc, cxx, settings, s, ProjectDirectory, IntermediateDirectory)).ToList();
        }
        catch (ToolchainException e) { Log.LogError(null, e.Code, null, null, 0, 0, 0, 0, "{0}", e.Message); return false; }

        var stale = steps.Where(s => !NativeCompiler.IsUpToDate(s, ProjectDirectory)).ToList();
        Log.LogMessage(MessageImportance.Normal, "Retpoline: {0} of {1} source(s) to compile", stale.Count, steps.Count);
        var outcomes = new CompileOutcome?[stale.Count];
        if (stale.Count > 0)
        {
            // Compiling means a link, a patch and a verify follow: let the JIT compile the engine now, while this
            // node only waits for compilers, instead of after the link where the build waits for it.
            if (RetpolineEnabled) Warmup.Start();
            // As many compilers at once as MSBuild grants cores (IBuildEngine9: shared with the other projects this
            // build runs in parallel), never more than the machine has or MaxParallelism says.
            int wanted = Math.Min(stale.Count, MaxParallelism > 0 ? MaxParallelism : Environment.ProcessorCount);
            int granted = 0;
            var engine = BuildEngine as IBuildEngine9;
            try
            {
                if (engine is not null) { try { granted = engine.RequestCores(wanted); } catch (NotImplementedException) { engine = null; } }
                int degree = Math.Max(1, engine is not null ? Math.Min(granted, wanted) : wanted);
                var clock = System.Diagnostics.Stopwatch.StartNew();
                JobQueue.Run(stale.Count, degree, i => SourceSize(stale[i].Source), i => outcomes[i] = NativeCompiler.Run(stale[i], family, ProjectDirectory), cancel.Token);
                Log.LogMessage(MessageImportance.Normal, "Retpoline: compiled {0} source(s) in {1} ms with {2} parallel job(s)", stale.Count, clock.ElapsedMilliseconds, degree);
            }
            catch (OperationCanceledException) { Log.LogError("Retpoline: compilation cancelled"); return false; }
            finally { if (engine is not null && granted > 0) engine.ReleaseCores(granted); }
        }

        bool ok = true;
        foreach (var o in outcomes)
        {
            if (o is null) continue;
            // Logged in source order after the parallel run, so the log reads the same every time.
            Log.LogMessage(MessageImportance.Normal, "{0}", o.Step.CommandLine);
            foreach (var d in o.Diagnostics) DiagnosticLogging.LogCompilerDiagnostic(Log, d, o.Step.Source, ProjectDirectory);
            ok &= o.Succeeded;
        }
        Objects = steps.Select(s => (ITaskItem)new Microsoft.Build.Utilities.TaskItem(s.Object)).ToArray();
        if (CompileCommandsFile.Length > 0) WriteCompileCommands(steps);
        return ok && !Log.HasLoggedErrors;
    }

    static long SourceSize(string path)
    {
        try { return new FileInfo(path).Length; } catch (IOException) { return 0; }
    }

    /// <summary>For clangd and IDEs; rewritten only when it changes, so it never makes a build look out of date.</summary>
    void WriteCompileCommands(List<CompileStep> steps)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartArray();
            foreach (var s in steps)
            {
                w.WriteStartObject();
                w.WriteString("directory", ProjectDirectory);
                w.WriteString("file", s.Source);
                w.WriteString("output", s.Object);
                w.WriteStartArray("arguments");
                w.WriteStringValue(s.Compiler);
                foreach (var a in s.Arguments) w.WriteStringValue(a);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        var bytes = ms.ToArray();
        Directory.CreateDirectory(Path.GetDirectoryName(CompileCommandsFile)!);
        if (!File.Exists(CompileCommandsFile) || !File.ReadAllBytes(CompileCommandsFile).AsSpan().SequenceEqual(bytes))
            File.WriteAllBytes(CompileCommandsFile, bytes);
    }
}
