using System.Globalization;
using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// Runs a native test project's programs (plain or GoogleTest), each in its working directory with the per-program
/// timeout, as many at once as MSBuild grants cores, and returns every case as a RetpolineTestResult item.
/// </summary>
public sealed class RunNativeTestsTask : Microsoft.Build.Utilities.Task
{
    /// <summary>The programs; metadata WorkingDirectory (default: ProjectDirectory).</summary>
    [Required] public ITaskItem[] Programs { get; set; } = [];
    [Required] public string ProjectDirectory { get; set; } = "";
    /// <summary>Where GoogleTest writes its XML reports (obj/…).</summary>
    [Required] public string ReportDirectory { get; set; } = "";
    /// <summary>Seconds a program may run before it is killed and fails; 0 = no limit.</summary>
    public string Timeout { get; set; } = "";

    [Output] public ITaskItem[] Results { get; set; } = [];

    public override bool Execute()
    {
        if (!double.TryParse(Timeout.Length == 0 ? "0" : Timeout, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || seconds < 0)
        {
            Log.LogError(null, ToolchainCodes.InvalidPropertyOrItem, null, null, 0, 0, 0, 0,
                "TestTimeout is '{0}'; it takes the seconds a test program may run, such as 60 (0 for no limit)", Timeout);
            return false;
        }
        var timeout = TimeSpan.FromSeconds(seconds);
        var results = new IReadOnlyList<TestCaseResult>[Programs.Length];
        int wanted = Math.Min(Programs.Length, Environment.ProcessorCount);
        int granted = 0;
        var engine = BuildEngine as IBuildEngine9;
        try
        {
            if (engine is not null && wanted > 1) { try { granted = engine.RequestCores(wanted); } catch (NotImplementedException) { engine = null; } }
            int degree = Math.Max(1, granted > 0 ? Math.Min(granted, wanted) : 1);
            JobQueue.Run(Programs.Length, degree, _ => 0, i =>
            {
                var p = Programs[i];
                string wd = p.GetMetadata("WorkingDirectory") is { Length: > 0 } w ? Path.GetFullPath(w, ProjectDirectory) : ProjectDirectory;
                results[i] = TestRun.Run(Path.GetFullPath(p.ItemSpec, ProjectDirectory), wd, timeout, ReportDirectory);
            });
        }
        finally { if (engine is not null && granted > 0) engine.ReleaseCores(granted); }
        Results = results.SelectMany(r => r).Select(TestResultItems.ToItem).ToArray();
        return true;
    }
}
