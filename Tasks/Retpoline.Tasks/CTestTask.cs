using Microsoft.Build.Framework;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// `dotnet test` of a CMake project: ctest over the build tree with the cores MSBuild grants, each test case handed to
/// the shared report step as a RetpolineTestResult item (<see cref="TestResultItems"/>).
/// </summary>
public sealed class CTestTask : Microsoft.Build.Utilities.Task
{
    [Required] public string BuildDirectory { get; set; } = "";
    [Required] public string ReportFile { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    public string CTest { get; set; } = "ctest";

    [Output] public ITaskItem[] Results { get; set; } = [];

    public override bool Execute()
    {
        var (results, step) = CMakeTaskSupport.WithCores(BuildEngine, jobs => CTestResults.Run(CTest, Path.GetFullPath(BuildDirectory), jobs, Path.GetFullPath(ReportFile)));
        if (!CMakeTaskSupport.Log(Log, step, ProjectDirectory) || results is null) return false;
        Results = results.Select(TestResultItems.ToItem).ToArray();
        return true;
    }
}
