using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>GoogleTest programs built here with the distribution's GoogleTest: each case by name, a crash as one failure.</summary>
public class GoogleTestRunTests
{
    static string Build(string name, string source)
    {
        string dir = Directory.CreateTempSubdirectory("gtest-").FullName;
        string cpp = Path.Combine(dir, name + ".cpp");
        File.WriteAllText(cpp, source);
        return NativeToolchain.Link(NativeToolchain.Gxx, [cpp, "/usr/lib/x86_64-linux-gnu/libgtest.a", "/usr/lib/x86_64-linux-gnu/libgtest_main.a"],
            Path.Combine(dir, name), ["-O0", "-pthread"]);
    }

    [Fact]
    public void Every_case_is_reported_by_name_with_the_failing_assertion_located()
    {
        string exe = Build("cases", """
            #include <gtest/gtest.h>
            TEST(Math, Adds) { EXPECT_EQ(4, 2 + 2); }
            TEST(Math, Divides) { EXPECT_EQ(2, 7 / 2 + 1) << "integer division"; }
            TEST(Math, Later) { GTEST_SKIP() << "not yet"; }
            TEST(Math, DISABLED_Slow) { }
            class P : public testing::TestWithParam<int> {};
            TEST_P(P, Positive) { EXPECT_GT(GetParam(), 0); }
            INSTANTIATE_TEST_SUITE_P(Small, P, testing::Values(1, -1));
            """);
        Assert.True(GoogleTest.IsGoogleTestProgram(exe));
        string reports = Path.GetDirectoryName(exe)!;
        var results = TestRun.Run(exe, reports, TimeSpan.FromSeconds(60), reports);
        Assert.Equal([("Math.Adds", TestOutcome.Passed), ("Math.Divides", TestOutcome.Failed), ("Math.Later", TestOutcome.Skipped),
            ("Math.DISABLED_Slow", TestOutcome.Skipped), ("Small/P.Positive/0", TestOutcome.Passed), ("Small/P.Positive/1", TestOutcome.Failed)],
            results.Select(r => (r.Name, r.Outcome)));
        var divides = results[1];
        Assert.Equal((Path.Combine(reports, "cases.cpp"), 3), (divides.File, divides.Line));
        Assert.Equal("Expected equality of these values:\n  2\n  7 / 2 + 1\n    Which is: 4\ninteger division", divides.Message);
        Assert.Equal("not yet", results[2].Message);
    }

    [Fact]
    public void A_program_that_crashes_before_its_report_is_one_failure_naming_the_signal()
    {
        string exe = Build("crash", """
            #include <gtest/gtest.h>
            #include <cstdlib>
            TEST(Crash, Aborts) { std::abort(); }
            """);
        var r = Assert.Single(TestRun.Run(exe, Path.GetDirectoryName(exe)!, TimeSpan.FromSeconds(60), Path.GetDirectoryName(exe)!));
        Assert.Equal(("crash", TestOutcome.Failed, "exit code 134 (killed by signal 6, SIGABRT)"), (r.Name, r.Outcome, r.Message));
        Assert.Contains("[ RUN      ] Crash.Aborts", r.Output);
    }
}
