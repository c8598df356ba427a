using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>Findings, policy, allow-lists, reports, and compiler/linker/toolchain errors in MSBuild's canonical form.</summary>
public sealed class DiagnosticTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void Unprotected_asm_call_fails_with_RPL0001_at_its_source_line_and_keeps_failing()
    {
        var p = Sdk.NewProject("asm").Write("app.nativeproj", Sources.Project("Exe")).Write("main.c", Sources.TrampolineMainC).Write("tramp.S", Sources.TrampolineS);
        var first = MustFail(p, "app.nativeproj");
        Assert.Matches(@"(?m)^\s*tramp\.S\(6\): error RPL0001: indirect call 'call rdi' at 0x[0-9a-f]+ in function 'trampoline\+0x4' is not routed through a retpoline thunk.*RetpolineAllow.*\[bin/Debug/app\]", first.Output);
        // Nothing was fixed, so the next build must not find the output up to date.
        var second = MustFail(p, "app.nativeproj");
        Assert.Contains("tramp.S(6): error RPL0001", second.Output);
    }

    [Fact]
    public void Allow_listed_function_passes_and_a_missing_reason_is_an_error()
    {
        var p = Sdk.NewProject("allow").Write("main.c", Sources.TrampolineMainC).Write("tramp.S", Sources.TrampolineS)
            .Write("app.nativeproj", Sources.Project("Exe", "<ItemGroup><RetpolineAllow Include=\"trampolines\" Pattern=\"tramp*\" Reason=\"reviewed trampoline\" /></ItemGroup>"));
        var ok = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("allowed UserCode 'call rdi'", ok.Output);
        Assert.Equal("seven=7", p.RunProgram("bin/Debug/app").Output.Trim());

        p.Write("app.nativeproj", Sources.Project("Exe", "<ItemGroup><RetpolineAllow Include=\"trampoline\" /></ItemGroup>"));
        var bad = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0208: RetpolineAllow 'trampoline' needs a Reason", bad.Output);
    }

    [Fact]
    public void Policy_Warning_reports_the_finding_as_a_warning_and_writes_the_SARIF_report()
    {
        var p = Sdk.NewProject("sarif").Write("main.c", Sources.TrampolineMainC).Write("tramp.S", Sources.TrampolineS)
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolinePolicy>Warning</RetpolinePolicy><RetpolineReportFile>reports/app.sarif</RetpolineReportFile></PropertyGroup>"));
        var r = MustBuild(p, "app.nativeproj");
        Assert.Contains("tramp.S(6): warning RPL0001", r.Output);
        // A warning that vanished after one build would be a policy nobody sees: the no-op build says it again
        // (without compiling or linking anything).
        var again = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("tramp.S(6): warning RPL0001", again.Output);
        Assert.Contains("Retpoline: 0 of 2 source(s) to compile", again.Output);
        Assert.Contains("is up to date", again.Output);
        string sarif = File.ReadAllText(p.PathOf("reports/app.sarif"));
        Assert.Contains("\"2.1.0\"", sarif);
        Assert.Contains("\"ruleId\": \"RPL0001\"", sarif);
        Assert.Equal("seven=7", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void Strict_makes_toolchain_startup_branches_errors()
    {
        var p = Sdk.NewProject("strict").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineStrict>true</RetpolineStrict></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0003", r.Output);
        Assert.DoesNotContain("RPL0001", r.Output);
    }

    [Fact]
    public void Compile_errors_fatal_errors_and_warnings_with_notes_are_reported_in_canonical_form()
    {
        var p = Sdk.NewProject("cerr").Write("app.nativeproj", Sources.Project("Exe"))
            .Write("broken.c", Sources.BrokenC).Write("warn.c", Sources.WarnWithNoteC).Write("fatal.c", "#include \"no_such_header.h\"\n");
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains($"{p.PathOf("broken.c")}(3,12): error GCC: 'undefined_thing' undeclared", r.Output);
        Assert.Contains($"{p.PathOf("fatal.c")}(1,10): error GCC: no_such_header.h: No such file or directory", r.Output);
        Assert.Matches(@"warn\.c\(2,\d+\): warning GCC: passing argument 1 of 'take' makes pointer from integer without a cast \[-Wint-conversion\] \(note: \S*warn\.c:1: expected 'int \*' but argument is of type 'int'\)", r.Output);
        Assert.DoesNotContain("exited with code", r.Output);
    }

    [Theory]
    [InlineData("gcc", "")]
    [InlineData("clang-14", "-fuse-ld=lld")]
    public void Every_undefined_reference_names_its_own_source_line_and_function(string cc, string ldFlags)
    {
        Retpoline.Tests.Preconditions.Require(cc == "gcc" ? ["gcc"] : ["clang-14", "ld.lld-14"]);
        var p = Sdk.NewProject("lderr").Write("main.c", Sources.UndefinedReferenceC)
            .Write("app.nativeproj", Sources.Project("Exe", $"<PropertyGroup><CC>{cc}</CC><LdFlags>{ldFlags}</LdFlags></PropertyGroup>"));
        var r = MustFail(p, "app.nativeproj");
        // GNU ld names the function only before the first reference; lld prints a block per symbol. Both references
        // are at their own line, none at the SDK's targets file.
        string text = cc == "gcc" ? "undefined reference to `{0}'" : "undefined symbol: {0}";
        Assert.Contains($"{p.PathOf("main.c")}(3): error LD: {string.Format(text, "missing_function")} (in function 'main'", r.Output);
        Assert.Contains($"{p.PathOf("main.c")}(4): error LD: {string.Format(text, "other_missing")} (in function 'main'", r.Output);
        Assert.DoesNotMatch(@"\.targets\(\d+,\d+\): error LD", r.Output);
        Assert.DoesNotContain("ld returned 1 exit status", r.Output);
        Assert.DoesNotContain("linker command failed", r.Output);
    }

    [Fact]
    public void Missing_compiler_is_a_coded_error_that_says_what_to_install()
    {
        var p = Sdk.NewProject("nocc").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CC>gcc-that-is-not-installed</CC></PropertyGroup>"))
            .Write("main.c", "int main(void) { return 0; }\n");
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0200: cannot run the C compiler 'gcc-that-is-not-installed'", r.Output);
        Assert.Contains("apt-get install", r.Output);
    }

    [Fact]
    public void Return_thunk_on_a_compiler_without_it_is_a_coded_error()
    {
        Retpoline.Tests.Preconditions.Require("clang-14");
        // Clang 14 has no -mfunction-return=thunk-extern (Clang >= 15): the probe says so, the build says what to do.
        var p = Sdk.NewProject("noret").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CC>clang-14</CC><RetpolineReturnThunk>true</RetpolineReturnThunk></PropertyGroup>"))
            .Write("main.c", "int main(void) { return 0; }\n");
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0204", r.Output);
        Assert.Contains("RetpolineReturnThunk=false", r.Output);
    }
}
