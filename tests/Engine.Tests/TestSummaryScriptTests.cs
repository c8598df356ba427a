using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// tests/summary, the line tests/run ends with: it must count what `dotnet test` prints at the verbosity tests/run
/// asks for, or a green suite reads "0 passed" and CI fails it as a run in which nothing ran.
/// </summary>
public sealed class TestSummaryScriptTests : IDisposable
{
    readonly string log = Path.Combine(Path.GetTempPath(), $"summary-{Guid.NewGuid():N}.log");

    public void Dispose() => File.Delete(log);

    string Summarise(string text)
    {
        File.WriteAllText(log, text);
        var result = ProcessRunner.Run(Path.Combine(NativeToolchain.RepoRoot, "tests", "summary"), [log]);
        Assert.Equal(0, result.ExitCode);
        return result.StandardOutput.TrimEnd('\n');
    }

    [Fact]
    public void Normal_verbosity_blocks_of_every_assembly_are_summed_and_test_lines_are_not_counted()
    {
        Assert.Equal("515 passed, 2 failed, 1 skipped", Summarise("""
              Passed Retpoline.Sdk.Tests.BuildTests.Hello [3 s]
              Failed Retpoline.Sdk.Tests.BuildTests.Broken [1 s]

            Test Run Failed.
            Total tests: 71
                 Passed: 68
                 Failed: 2
                Skipped: 1
             Total time: 3.0590 Minutes
              Passed Retpoline.Tests.ToolTests.Json_is_deterministic [1 ms]

            Test Run Successful.
            Total tests: 447
                 Passed: 447
             Total time: 47.2606 Seconds
            """));
    }

    [Fact]
    public void Minimal_verbosity_lines_are_summed()
    {
        Assert.Equal("276 passed, 1 failed, 2 skipped", Summarise("""
            Passed!  - Failed:     0, Passed:   271, Skipped:     2, Total:   273, Duration: 1 m - Retpoline.Engine.Tests.dll (net10.0)
            Failed!  - Failed:     1, Passed:     5, Skipped:     0, Total:     6, Duration: 3 s - Retpoline.Sdk.Tests.dll (net10.0)
            """));
    }

    [Fact]
    public void A_log_in_which_no_assembly_reported_is_zero()
    {
        Assert.Equal("0 passed, 0 failed, 0 skipped", Summarise("error MSB1009: Project file does not exist.\n"));
    }
}
