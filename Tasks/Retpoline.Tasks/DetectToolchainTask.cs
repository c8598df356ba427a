using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// Finds and probes the C and C++ compilers once per build configuration: the result is cached in the
/// intermediate directory, keyed by the compiler's path and timestamp, so later builds start no probe; within one
/// build the result is shared with every other project that probes the same command (<see cref="BuildShared"/>).
/// </summary>
public sealed class DetectToolchainTask : Microsoft.Build.Utilities.Task
{
    [Required] public string CC { get; set; } = "";
    [Required] public string CXX { get; set; } = "";
    [Required] public string IntermediateDirectory { get; set; } = "";
    /// <summary>Where the probe cache lives: obj/ itself, so cleaning one configuration does not re-probe.</summary>
    public string CacheDirectory { get; set; } = "";
    public bool NeedCxx { get; set; }
    public bool RetpolineEnabled { get; set; } = true;
    public bool ReturnThunk { get; set; }
    public bool HardenSls { get; set; }

    [Output] public string CompilerFamily { get; set; } = "";
    [Output] public string CcPath { get; set; } = "";
    [Output] public string CxxPath { get; set; } = "";
    [Output] public bool SupportsCsPrefix { get; set; }
    /// <summary>The compilers' `-v` version lines: recorded beside each object, so an in-place upgrade recompiles.</summary>
    [Output] public string CcIdentity { get; set; } = "";
    [Output] public string CxxIdentity { get; set; } = "";

    public override bool Execute()
    {
        try
        {
            var cc = ProbeCached(CC, cxx: false);
            CompilerInfo? cxx = NeedCxx ? ProbeCached(CXX, cxx: true) : null;
            foreach (var c in new[] { cc, cxx })
            {
                if (c is null) continue;
                if (!c.TargetsX86_64)
                    throw new ToolchainException(ToolchainCodes.NotX86_64Target, $"'{c.Path}' targets {c.Target}; retpolines are for x86-64 (install gcc for x86_64-linux-gnu or set CC/CXX)");
                if (RetpolineEnabled && !c.SupportsRetpoline)
                    throw new ToolchainException(ToolchainCodes.NoRetpolineSupport, $"'{c.Path}' ({c.Family} {c.Version}) does not accept the retpoline flags; use GCC >= 8 or Clang >= 7 (apt-get install gcc or clang-14)");
                if (RetpolineEnabled && ReturnThunk && !c.SupportsReturnThunk)
                    throw new ToolchainException(ToolchainCodes.ReturnThunkUnsupported, $"RetpolineReturnThunk is true but '{c.Path}' ({c.Family} {c.Version}) does not accept -mfunction-return=thunk-extern (GCC >= 8, Clang >= 15); set RetpolineReturnThunk=false or use such a compiler");
                if (HardenSls && !c.SupportsHardenSls)
                    throw new ToolchainException(ToolchainCodes.HardenSlsUnsupported, $"RetpolineHardenSls is true but '{c.Path}' ({c.Family} {c.Version}) does not accept -mharden-sls=all (GCC >= 12, Clang >= 15); set RetpolineHardenSls=false or use such a compiler");
            }
            CompilerFamily = cc.Family.ToString();
            CcPath = cc.Path;
            CxxPath = cxx?.Path ?? CXX;
            SupportsCsPrefix = cc.SupportsCsPrefix && (cxx?.SupportsCsPrefix ?? true);
            CcIdentity = cc.VersionLine;
            CxxIdentity = cxx?.VersionLine ?? "";
            Log.LogMessage(MessageImportance.Normal, "Retpoline: C compiler {0} ({1} {2}, {3})", cc.Path, cc.Family, cc.Version, cc.Target);
            return true;
        }
        catch (ToolchainException e)
        {
            Log.LogError(null, e.Code, null, null, 0, 0, 0, 0, "{0}", e.Message);
            return false;
        }
    }

    CompilerInfo ProbeCached(string compiler, bool cxx)
    {
        // Every program the command names (`ccache gcc`: both), so replacing either one probes again.
        string stamp = string.Join(' ', CompilerCommand.Parse(compiler).Programs.Select(Resolve)
            .Select(p => $"{p} {(File.Exists(p) ? File.GetLastWriteTimeUtc(p).Ticks.ToString() : "missing")}"));
        string cache = Path.Combine(CacheDirectory.Length > 0 ? CacheDirectory : Path.Combine(IntermediateDirectory, "retpoline"), "toolchain-" + Sanitize(compiler) + ".cache");
        if (File.Exists(cache))
        {
            var lines = File.ReadAllLines(cache);
            if (lines.Length == 2 && lines[0] == stamp && CompilerInfo.Deserialize(lines[1]) is { } cached) return cached;
        }
        // Another project of this build may have probed the same command, with the same programs, already.
        string key = $"{(cxx ? "c++" : "c")}|{compiler}|{stamp}";
        var info = BuildShared.Get<CompilerInfo>(BuildEngine, "probe", key);
        if (info is not null)
            Log.LogMessage(MessageImportance.Normal, "Retpoline: compiler '{0}': probe result shared with another project of this build", compiler);
        else
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            info = CompilerProbe.Probe(compiler, Path.Combine(IntermediateDirectory, "retpoline", "probe"), cxx);
            Log.LogMessage(MessageImportance.Normal, "Retpoline: probed compiler '{0}' in {1} ms", compiler, clock.ElapsedMilliseconds);
            BuildShared.Set(BuildEngine, "probe", key, info);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
        File.WriteAllLines(cache, [stamp, info.Serialize()]);
        return info;
    }

    /// <summary>The file PATH finds for a bare command name (only to notice the compiler changed).</summary>
    static string Resolve(string command)
    {
        if (command.Contains('/')) return Path.GetFullPath(command);
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, command);
            if (File.Exists(p)) return p;
        }
        return command;
    }

    static string Sanitize(string s) => string.Concat(s.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' or '+' ? c : '_'));
}
