using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Issue 6 end to end with the packed SDK: -fcf-protection projects, RetpolineHardenSls, GCC's thunk/cf-protection
/// conflict as a coded error (RPL0210), and RETPOLINE_SAFE from the shipped &lt;retpoline.h&gt;.
/// </summary>
public sealed class EdgeBuildTests(ITestOutputHelper log)
{
    static SdkPackage Sdk => SdkPackage.Instance;

    ProcessOutcome MustBuild(TestProject p, string project, params string[] args)
    {
        var r = p.Build(project, args);
        log.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, $"dotnet build failed:\n{r.Output}");
        return r;
    }

    /// <summary>Sources.DispatchC plus a call and a tail call through a `nocf_check` pointer, which GCC emits as
    /// `notrack` branches and, with retpolines, as calls/jumps to `__x86_indirect_thunk_nt_<reg>`.</summary>
    const string NotrackC = """
        #include <stdio.h>
        typedef long (*op)(long, long);
        typedef long (*raw_op)(long) __attribute__((nocf_check));
        static long add(long a, long b) { return a + b; }
        static long sub(long a, long b) { return a - b; }
        static long mul(long a, long b) { return a * b; }
        op table[] = { add, sub, mul };
        __attribute__((noinline)) long run(int n) { long t = 0; for (int i = 0; i < n; i++) t += table[i % 3](10 + i, 3); return t; }
        __attribute__((noinline, nocf_check)) long twice(long x) { return 2 * x; }
        raw_op volatile raw = twice;
        __attribute__((noinline)) long call_raw(raw_op f, long x) { return f(x) + 1; }
        __attribute__((noinline)) long tail_raw(raw_op f, long x) { return f(x); }
        int main(void) { printf("total=%ld raw=%ld tail=%ld\n", run(6), call_raw(raw, 20), tail_raw(raw, 4)); return 0; }
        """;
    const string NotrackExpected = "total=129 raw=41 tail=8";

    [Fact]
    public void Cf_protection_full_builds_runs_and_verifies_with_the_nt_thunks()
    {
        var p = Sdk.NewProject("cf").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CFlags>-fcf-protection=full</CFlags></PropertyGroup>"))
            .Write("cf.c", NotrackC);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Matches(@"gcc .*-mindirect-branch=thunk-extern .*-fcf-protection=full .*cf\.c", r.Output);
        Assert.Contains("PASS", r.Output);
        Assert.Equal(NotrackExpected, p.RunProgram("bin/Debug/app").Output.Trim());
        var dis = Dotnet.Exec("objdump", p.Directory, ["-d", "--no-show-raw-insn", p.PathOf("bin/Debug/app")]).Output;
        // What GCC 12 emits at -O0 (Debug): both nocf_check calls (no tail call at -O0) go to the _nt_ thunk of %rdx.
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(dis, @"call\s+[0-9a-f]+ <__x86_indirect_thunk_nt_rdx>").Count);
        Assert.DoesNotMatch(@"(call|jmp)\s+[0-9a-f]+ <__x86_indirect_thunk_nt_r(?!dx)\w+>", dis);
        // The user's -fcf-protection also reaches the thunk file (it is compiled like any source): still IBT only.
        var notes = Dotnet.Exec("readelf", p.Directory, ["-n", p.PathOf("bin/Debug/app")]).Output;
        Assert.DoesNotContain("SHSTK", notes);
    }

    [Fact]
    public void Harden_sls_builds_and_passes_and_a_bare_ret_in_assembly_is_RPL0005()
    {
        var p = Sdk.NewProject("sls").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineHardenSls>true</RetpolineHardenSls></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Matches(@"gcc .*-mharden-sls=all .*dispatch\.c", r.Output);
        Assert.Contains("PASS", r.Output);
        Assert.Equal(Sources.DispatchExpected, p.RunProgram("bin/Debug/app").Output.Trim());

        // A hand-written `ret` with no int3 after it: the compiler flag cannot reach it, verify does.
        p.Write("dispatch.c", Sources.DispatchC.Replace("return 0; }", "extern long bare_ret(long); return (int)bare_ret(-1) + 1; }"))
            .Write("bare.S", """
                	.text
                	.globl bare_ret
                	.type bare_ret,@function
                bare_ret:
                	mov %rdi, %rax
                	ret
                	.size bare_ret,.-bare_ret
                	.section .note.GNU-stack,"",@progbits
                """);
        var bad = p.Build("app.nativeproj");
        log.WriteLine(bad.Output);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Matches(@"error RPL0005: 'ret' at 0x[0-9a-f]+ in function 'bare_ret\+0x3' is not followed by int3", bad.Output);
    }

    [Fact]
    public void Harden_sls_with_a_compiler_that_ignores_it_is_RPL0205()
    {
        // clang-14 only warns "argument unused during compilation: '-mharden-sls=all'" on x86 (SLS hardening for x86
        // came in Clang 15); the probe compiles with -Werror, so the build stops before compiling anything.
        Retpoline.Tests.Preconditions.Require("clang-14");
        var p = Sdk.NewProject("sls-clang14")
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CC>clang-14</CC><CXX>clang++-14</CXX><RetpolineHardenSls>true</RetpolineHardenSls></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = p.Build("app.nativeproj");
        log.WriteLine(r.Output);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Matches(@"error RPL0205: RetpolineHardenSls is true but '\S*clang-14' \(Clang 14\.[\d.]+\) does not accept -mharden-sls=all", r.Output);
        Assert.False(File.Exists(p.PathOf("obj/Debug/dispatch.c.o")));
    }

    [Fact]
    public void Thunk_mode_override_with_cf_protection_stops_with_RPL0210_naming_the_fix()
    {
        var p = Sdk.NewProject("cfconflict")
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CFlags>-mindirect-branch=thunk -fcf-protection=full</CFlags></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = p.Build("app.nativeproj");
        log.WriteLine(r.Output);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Matches(@"dispatch\.c\(\d+,\d+\): error RPL0210: '-mindirect-branch' and '-fcf-protection' are not compatible", r.Output);
        Assert.Contains("(the SDK's own -mindirect-branch=thunk-extern works with -fcf-protection: remove -mindirect-branch=thunk or thunk-inline from CFlags/CxxFlags;", r.Output);
        // GCC says it for each of the five functions; the build says it once (MSBuild's summary repeats that line),
        // and never as a bare GCC error.
        var lines = r.Output.Split('\n').Where(l => l.Contains("error RPL0210", StringComparison.Ordinal)).Select(l => l.Trim()).Distinct().ToList();
        Assert.Single(lines);
        Assert.Contains("dispatch.c(3,1): error RPL0210", lines[0]); // add(), the first function
        Assert.DoesNotContain("error GCC", r.Output);
        Assert.False(File.Exists(p.PathOf("bin/Debug/app")));
    }

    [Fact]
    public void Retpoline_safe_from_the_shipped_header_builds_and_passes()
    {
        const string annotated = """
            #include <stdio.h>
            #include <retpoline.h>
            __attribute__((noinline)) long c_call(long (*f)(void))
            {
                long r = (long)f;
                __asm__ volatile(RETPOLINE_SAFE "call *%%rax"
                                 : "+a"(r) : : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
                return r;
            }
            __asm__(".text\n\t.globl c_jump\n\t.type c_jump,@function\nc_jump:\n\tmov %rdi, %rdx\n\t"
                    RETPOLINE_SAFE "jmp *%rdx\n\t.size c_jump,.-c_jump\n");
            long c_jump(long (*f)(void));
            static long seven(void) { return 7; }
            static long five(void) { return 5; }
            int main(void) { printf("%ld %ld\n", c_call(seven), c_jump(five)); return 0; }
            """;
        var p = Sdk.NewProject("safe").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CFlags>-mno-red-zone</CFlags></PropertyGroup>"))
            .Write("annotated.c", annotated);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("PASS", r.Output);
        Assert.Equal("7 5", p.RunProgram("bin/Debug/app").Output.Trim());

        // The same source without the marks fails: the header, not luck, made it pass.
        p.Write("annotated.c", annotated.Replace("RETPOLINE_SAFE ", ""));
        var bad = p.Build("app.nativeproj");
        log.WriteLine(bad.Output);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("error RPL0001", bad.Output);
    }
}
