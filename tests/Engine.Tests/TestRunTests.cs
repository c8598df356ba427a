using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>How a test program's run becomes a case: exit code, output, the timeout, a program that is not GoogleTest.</summary>
public class TestRunTests
{
    [Fact]
    public void A_plain_program_passes_on_exit_0_and_fails_with_its_exit_code_and_output()
    {
        var pass = TestRun.Run("/bin/echo", "/", TimeSpan.FromSeconds(30), Path.GetTempPath(), ["hello", "two words"]);
        Assert.Equal([("echo", TestOutcome.Passed, "hello two words\n", (string?)null)], pass.Select(r => (r.Name, r.Outcome, r.Output, r.Message)));

        var fail = TestRun.Run("/bin/false", "/", TimeSpan.FromSeconds(30), Path.GetTempPath());
        Assert.Equal([("false", TestOutcome.Failed, "exit code 1")], fail.Select(r => (r.Name, r.Outcome, r.Message)));
        Assert.False(GoogleTest.IsGoogleTestProgram("/bin/false"));
    }

    [Fact]
    public void A_program_past_its_timeout_is_killed_and_fails()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = Assert.Single(TestRun.Run("/bin/sleep", "/", TimeSpan.FromSeconds(0.5), Path.GetTempPath(), ["60"]));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
        Assert.Equal((TestOutcome.Failed, "timed out after 0.5 s"), (r.Outcome, r.Message));
    }

    [Fact]
    public void A_program_that_cannot_start_fails_with_the_reason()
    {
        var r = Assert.Single(TestRun.Run("/nonexistent/prog", "/", TimeSpan.FromSeconds(5), Path.GetTempPath()));
        Assert.Equal(TestOutcome.Failed, r.Outcome);
        Assert.StartsWith("cannot start '/nonexistent/prog': ", r.Message);
    }

    [Fact]
    public void Signal_deaths_are_named()
    {
        Assert.Equal("exit code 139 (killed by signal 11, SIGSEGV)", TestRun.ExitText(139));
        Assert.Equal("exit code 134 (killed by signal 6, SIGABRT)", TestRun.ExitText(134));
        Assert.Equal("exit code 3", TestRun.ExitText(3));
    }

    [Fact]
    public void A_background_child_that_keeps_the_pipes_open_does_not_hold_the_run()
    {
        // The program exits at once; the child it forked keeps stdout open for a minute.
        string dir = Directory.CreateTempSubdirectory("testrun-").FullName;
        string source = Path.Combine(dir, "daemon.c");
        File.WriteAllText(source, "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"parent\\n\"); fflush(stdout); if (fork() == 0) { sleep(60); return 0; } return 0; }\n");
        string exe = NativeToolchain.Link(NativeToolchain.Gcc, [source], Path.Combine(dir, "daemon"), ["-O0"]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = Assert.Single(TestRun.Run(exe, dir, TimeSpan.FromSeconds(30), dir));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        Assert.Equal((TestOutcome.Passed, "parent\n"), (r.Outcome, r.Output));
    }
}
