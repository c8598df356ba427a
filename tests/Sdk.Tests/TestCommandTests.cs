using System.Text.RegularExpressions;
using System.Xml.Linq;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// `dotnet test` on native test projects (an Exe with IsTestProject=true), through the real CLI: plain programs pass
/// on exit 0 and fail with their output, GoogleTest programs report each case by name, `--logger trx` writes TRX,
/// TestTimeout kills a hung program, and one `dotnet test` of a solution runs xunit and native tests together.
/// </summary>
public sealed class TestCommandTests
{
    /// <summary>The project type `dotnet sln add` writes for a .nativeproj (the SDK's DefaultProjectTypeGuid).</summary>
    const string NativeType = "13b669be-bb05-4ddf-9536-439f39a36129";
    static readonly XNamespace Trx = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";

    static string TestProject(string extra = "") => Sources.Project("Exe", $"""
        <PropertyGroup><IsTestProject>true</IsTestProject></PropertyGroup>
          {extra}
        """);

    const string PassingC = "#include <stdio.h>\nint main(void) { printf(\"all good\\n\"); return 0; }\n";
    const string FailingC = "#include <stdio.h>\nint main(void) { printf(\"checking 2+2\\n\"); fflush(stdout); fprintf(stderr, \"expected 4, got 5\\n\"); return 3; }\n";

    static List<(string Name, string Outcome)> TrxResults(string path) => XDocument.Load(path).Root!.Element(Trx + "Results")!.Elements(Trx + "UnitTestResult")
        .Select(r => ((string)r.Attribute("testName")!, (string)r.Attribute("outcome")!)).ToList();

    [Fact]
    public void Plain_programs_pass_on_exit_0_and_fail_otherwise_with_their_output_summary_and_trx()
    {
        var p = SdkPackage.Instance.NewProject("test-plain")
            .Write("pass/pass.nativeproj", TestProject()).Write("pass/main.c", PassingC)
            .Write("fail/fail.nativeproj", TestProject()).Write("fail/main.c", FailingC)
            .Write("tests.slnx", $"<Solution>\n  <Project Path=\"pass/pass.nativeproj\" Type=\"{NativeType}\" />\n  <Project Path=\"fail/fail.nativeproj\" Type=\"{NativeType}\" />\n</Solution>\n");

        var passing = p.Dotnet("test", "pass/pass.nativeproj");
        Assert.True(passing.ExitCode == 0, passing.Output);
        Assert.Contains("pass: 1 passed, 0 failed, 0 skipped", passing.Output);

        // A filter is VSTest's language: the native program runs whole, and the build says so.
        var filtered = p.Dotnet("test", "pass/pass.nativeproj", "--no-build", "--filter", "FullyQualifiedName~Math");
        Assert.True(filtered.ExitCode == 0, filtered.Output);
        Assert.Contains($"{p.PathOf("pass/pass.nativeproj")} : warning RPL0254: dotnet test --filter is not applied to native test programs: every case of pass ran (filter 'FullyQualifiedName~Math')", filtered.Output);
        Assert.Contains("pass: 1 passed, 0 failed, 0 skipped", filtered.Output);

        // A results folder that cannot be made: one coded line, and the run fails.
        p.Write("notes.txt", "not a folder\n");
        var unwritable = p.Dotnet("test", "pass/pass.nativeproj", "--no-build", "--logger", "trx", "--results-directory", "notes.txt");
        Assert.True(unwritable.ExitCode == 1, unwritable.Output);
        Assert.Contains($"error RPL0253: cannot write the test results file '{p.PathOf("notes.txt/pass.trx")}': The file '{p.PathOf("notes.txt")}' already exists. (choose another folder with --results-directory)", unwritable.Output);

        var r = p.Dotnet("test", "tests.slnx", "--logger", "trx", "--results-directory", "results");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("pass: 1 passed, 0 failed, 0 skipped", r.Output);
        Assert.Contains("fail: 0 passed, 1 failed, 0 skipped", r.Output);
        Assert.Matches($@"{Regex.Escape(p.PathOf("fail/fail.nativeproj"))} : error RPL0251: test 'fail' failed: exit code 3", r.Output);
        // The program's output under the error: stdout, then stderr.
        Assert.Matches(@"output of 'fail':\n\s+checking 2\+2\n\s+expected 4, got 5\n", r.Output.Replace("\r", ""));

        Assert.Equal([("pass", "Passed")], TrxResults(p.PathOf("results/pass.trx")));
        Assert.Equal([("fail", "Failed")], TrxResults(p.PathOf("results/fail.trx")));
        var failure = XDocument.Load(p.PathOf("results/fail.trx")).Descendants(Trx + "UnitTestResult").Single();
        Assert.Equal("exit code 3", (string?)failure.Descendants(Trx + "Message").Single());
        Assert.Equal("checking 2+2\nexpected 4, got 5\n", (string?)failure.Descendants(Trx + "StdOut").Single());
    }

    [Fact]
    public void GoogleTest_cases_are_reported_by_name_with_the_failing_assertion_at_its_line()
    {
        // Linked as a user would link the distribution's GoogleTest. Debian's libgtest.a is not built with
        // retpolines: one waiver by archive covers what it brings, and the test's own code is still held to the policy.
        var p = SdkPackage.Instance.NewProject("test-gtest")
            .Write("math/math.nativeproj", TestProject("""
                <PropertyGroup>
                    <LinkLibraries>/usr/lib/x86_64-linux-gnu/libgtest.a;/usr/lib/x86_64-linux-gnu/libgtest_main.a</LinkLibraries>
                    <LdFlags>-pthread</LdFlags>
                  </PropertyGroup>
                  <ItemGroup>
                    <RetpolineAllow Include="googletest" Archive="libgtest*.a" Reason="Debian's GoogleTest is not built with retpolines; test program, never shipped" />
                  </ItemGroup>
                """))
            .Write("math/math_test.cpp", """
                #include <gtest/gtest.h>
                TEST(Math, Adds) { EXPECT_EQ(4, 2 + 2); }
                TEST(Math, Divides) { EXPECT_EQ(2, 7 / 2 + 1); }
                TEST(Math, Later) { GTEST_SKIP() << "not yet"; }
                TEST(Strings, Concatenate) { EXPECT_EQ(std::string("ab"), std::string("a") + "b"); }
                """);
        var r = p.Dotnet("test", "math/math.nativeproj", "--logger", "trx;LogFileName=math-results.trx");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.False(r.Output.Contains("error RPL000"), r.Output);
        Assert.Contains($"{p.PathOf("math/math_test.cpp")}(3): error RPL0251: test 'Math.Divides' failed: Expected equality of these values:", r.Output);
        Assert.Contains("Skipped Math.Later: not yet", r.Output);
        Assert.Contains("math: 2 passed, 1 failed, 1 skipped", r.Output);
        Assert.Equal([("Math.Adds", "Passed"), ("Math.Divides", "Failed"), ("Math.Later", "NotExecuted"), ("Strings.Concatenate", "Passed")],
            TrxResults(p.PathOf("math/TestResults/math-results.trx")));
    }

    [Fact]
    public void A_program_that_outlives_TestTimeout_is_killed_and_fails()
    {
        var p = SdkPackage.Instance.NewProject("test-timeout")
            .Write("hang/hang.nativeproj", TestProject("<PropertyGroup><TestTimeout>2</TestTimeout></PropertyGroup>"))
            .Write("hang/main.c", "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"started\\n\"); fflush(stdout); sleep(120); return 0; }\n");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = p.Dotnet("test", "hang/hang.nativeproj");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(100), $"took {clock.Elapsed}");
        Assert.Contains("error RPL0251: test 'hang' failed: timed out after 2 s", r.Output);
        Assert.Matches(@"output of 'hang':\n\s+started\n", r.Output.Replace("\r", ""));
        Assert.Contains("hang: 0 passed, 1 failed, 0 skipped", r.Output);
    }

    [Fact]
    public void A_native_test_project_that_is_not_an_exe_is_a_coded_error()
    {
        var p = SdkPackage.Instance.NewProject("test-lib")
            .Write("lib/lib.nativeproj", Sources.Project("Library", "<PropertyGroup><IsTestProject>true</IsTestProject></PropertyGroup>"))
            .Write("lib/lib.c", "int f(void) { return 1; }\n");
        var r = p.Dotnet("test", "lib/lib.nativeproj");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("error RPL0252: IsTestProject is true, but this native project's OutputType is Library: dotnet test runs test programs, so a native test project is an Exe (set OutputType to Exe, or remove IsTestProject).", r.Output);
    }

    [Fact]
    public void One_dotnet_test_runs_xunit_and_native_test_projects_of_a_solution_and_skips_other_projects()
    {
        var p = SdkPackage.Instance.NewProject("test-mixed")
            .Write("native/ntest.nativeproj", TestProject()).Write("native/main.c", PassingC)
            .Write("lib/lib.nativeproj", Sources.Project("Library")).Write("lib/lib.c", "int lib_answer(void) { return 42; }\n")
            .Write("managed/managed.csproj", """
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net10.0</TargetFramework><IsTestProject>true</IsTestProject></PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Microsoft.NET.Test.Sdk" Version="18.0.1" />
                    <PackageReference Include="xunit" Version="2.9.3" />
                    <PackageReference Include="xunit.runner.visualstudio" Version="3.1.5" />
                  </ItemGroup>
                </Project>
                """)
            .Write("managed/UnitTest.cs", "public class UnitTest { [Xunit.Fact] public void Passes() => Xunit.Assert.Equal(4, 2 + 2); [Xunit.Fact] public void Fails() => Xunit.Assert.Equal(5, 2 + 2); }\n")
            .Write("all.slnx", $"<Solution>\n  <Project Path=\"native/ntest.nativeproj\" Type=\"{NativeType}\" />\n  <Project Path=\"lib/lib.nativeproj\" Type=\"{NativeType}\" />\n  <Project Path=\"managed/managed.csproj\" />\n</Solution>\n");
        // xunit and the test SDK come from the user's package folder, as a source: nothing is downloaded.
        string userPackages = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string config = File.ReadAllText(p.PathOf("NuGet.config"));
        p.Write("NuGet.config", config.Replace("<clear />", $"<clear /><add key=\"user-packages\" value=\"{userPackages}\" />"));

        var r = p.Dotnet("test", "all.slnx");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("ntest: 1 passed, 0 failed, 0 skipped", r.Output);
        // xunit ran too: its failing test is in the same run's output.
        Assert.Contains("UnitTest.Fails", r.Output);
        Assert.Matches(@"Failed:\s+1, Passed:\s+1", r.Output);
        Assert.DoesNotContain("lib:", r.Output);
    }
}
