using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>`dotnet build` of real C/C++ projects with the packed SDK: compile, link, patch, verify, run.</summary>
public sealed class BuildTests(ITestOutputHelper log)
{
    static SdkPackage Sdk => SdkPackage.Instance;

    ProcessOutcome MustBuild(TestProject p, string project, params string[] args)
    {
        var r = p.Build(project, args);
        log.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, $"dotnet build failed:\n{r.Output}");
        return r;
    }

    [Theory]
    [InlineData("Debug", "Generic", Sources.GenericRax)]
    [InlineData("Release", "None", Sources.NoneRax)]
    [InlineData("Release", "Amd", Sources.AmdRax)]
    public void C_executable_is_patched_for_the_vendor_verified_and_runs(string configuration, string vendor, string raxBytes)
    {
        var p = Sdk.NewProject("c-" + vendor).Write("app.nativeproj", Sources.Project("Exe", $"<PropertyGroup><RetpolineVendor>{vendor}</RetpolineVendor></PropertyGroup>"))
            .Write("src/dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-c", configuration);
        string exe = $"bin/{configuration}/app";
        Assert.Contains($"app -> {p.PathOf(exe)}", r.Output);
        Assert.Equal(raxBytes, Native.Hex(Native.BytesAt(p.PathOf(exe), Native.SymbolAddress(p.PathOf(exe), "__x86_indirect_thunk_rax"), 17)));
        Assert.Equal(Sources.DispatchExpected, p.RunProgram(exe).Output.Trim());
        if (vendor == "Amd") Assert.Contains("warning RPL0014", r.Output);
        else Assert.DoesNotContain("RPL0014", r.Output);
        Assert.False(File.Exists(p.PathOf($"bin/{configuration}/app.dll")), "no managed assembly is produced");
    }

    [Fact]
    public void Cxx_executable_with_clang_builds_verifies_and_runs()
    {
        Assert.True(Native.HasClang, "clang-14 is required (apt-get install clang-14)");
        var p = Sdk.NewProject("cxx-clang").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CC>clang-14</CC><CXX>clang++-14</CXX></PropertyGroup>"))
            .Write("shapes.cpp", Sources.VirtualCpp);
        var r = MustBuild(p, "app.nativeproj", "-c", "Release", "-v:n");
        Assert.Contains("Clang 14", r.Output);
        Assert.Contains("-mretpoline-external-thunk", r.Output);
        Assert.Contains("PASS", r.Output);
        Assert.Equal(Sources.VirtualExpected, p.RunProgram("bin/Release/app").Output.Trim());
    }

    [Fact]
    public void Shared_and_static_libraries_link_into_a_referencing_executable()
    {
        var p = Sdk.NewProject("libs")
            .Write("mathx/mathx.nativeproj", Sources.Project("Library", "<PropertyGroup><PublicIncludeDirectories>include</PublicIncludeDirectories></PropertyGroup>"))
            .Write("mathx/include/mathx.h", "long mathx_apply(int op, long a, long b);\n")
            .Write("mathx/mathx.c", "#include \"mathx.h\"\ntypedef long (*f)(long,long);\nstatic long add(long a,long b){return a+b;}\nstatic long mul(long a,long b){return a*b;}\nstatic f ops[]={add,mul};\nlong mathx_apply(int op,long a,long b){return ops[op&1](a,b);}\n")
            .Write("util/util.nativeproj", Sources.Project("StaticLibrary", "<PropertyGroup><PublicIncludeDirectories>.</PublicIncludeDirectories></PropertyGroup>"))
            .Write("util/util.h", "long twice(long x);\n")
            .Write("util/util.c", "long twice(long x) { return 2 * x; }\n")
            .Write("app/app.nativeproj", Sources.Project("Exe", """
                <PropertyGroup><LdFlags>-Wl,-rpath,$ORIGIN/../../../mathx/bin/Debug</LdFlags></PropertyGroup>
                <ItemGroup><ProjectReference Include="../mathx/mathx.nativeproj" /><ProjectReference Include="../util/util.nativeproj" /></ItemGroup>
                """))
            .Write("app/main.c", "#include <stdio.h>\n#include \"mathx.h\"\n#include \"util.h\"\nint main(void){printf(\"r=%ld\\n\", twice(mathx_apply(1, 6, 7)));return 0;}\n");
        MustBuild(p, "app/app.nativeproj");
        Assert.True(File.Exists(p.PathOf("mathx/bin/Debug/libmathx.so")));
        Assert.True(File.Exists(p.PathOf("util/bin/Debug/libutil.a")));
        Assert.Equal("r=84", p.RunProgram("app/bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void Return_thunk_routes_returns_through_the_thunk()
    {
        var p = Sdk.NewProject("retthunk").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineReturnThunk>true</RetpolineReturnThunk></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("-mfunction-return=thunk-extern", r.Output);
        var dis = Dotnet.Exec("objdump", p.Directory, ["-d", p.PathOf("bin/Debug/app")]).Output;
        Assert.Contains("jmp", dis);
        Assert.Contains("<__x86_return_thunk>", dis);
        Assert.Equal(Sources.DispatchExpected, p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void Unprotected_asm_call_fails_with_RPL0001_at_its_source_line_and_keeps_failing()
    {
        var p = Sdk.NewProject("asm").Write("app.nativeproj", Sources.Project("Exe")).Write("main.c", Sources.TrampolineMainC).Write("tramp.S", Sources.TrampolineS);
        var first = p.Build("app.nativeproj");
        Assert.NotEqual(0, first.ExitCode);
        Assert.Matches(@"tramp\.S\(6\): error RPL0001: indirect call 'call rdi' at 0x[0-9a-f]+ in function 'trampoline\+0x4' is not routed through a retpoline thunk.*\[bin/Debug/app\]", first.Output);
        var second = p.Build("app.nativeproj");
        Assert.NotEqual(0, second.ExitCode);
        Assert.Contains("error RPL0001", second.Output);
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
        var bad = p.Build("app.nativeproj");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("error RPL0208: RetpolineAllow 'trampoline' needs a Reason", bad.Output);
    }

    [Fact]
    public void Compile_error_is_reported_in_canonical_form()
    {
        var p = Sdk.NewProject("cerr").Write("app.nativeproj", Sources.Project("Exe")).Write("broken.c", "int main(void)\n{\n    return undefined_thing;\n}\n");
        var r = p.Build("app.nativeproj");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Matches(@"broken\.c\(3,12\): error GCC: 'undefined_thing' undeclared", r.Output);
    }

    [Fact]
    public void No_op_rebuild_starts_no_compiler_and_a_header_edit_recompiles_exactly_its_dependents()
    {
        var p = Sdk.NewProject("incr").Write("app.nativeproj", Sources.Project("Exe"))
            .Write("a.h", "#define A_VALUE 40\n")
            .Write("uses_a.c", "#include \"a.h\"\nlong get_a(void) { return A_VALUE; }\n")
            .Write("other.c", "long get_b(void) { return 2; }\n")
            .Write("main.c", "#include <stdio.h>\nlong get_a(void); long get_b(void);\nint main(void){printf(\"%ld\\n\", get_a()+get_b());return 0;}\n");
        MustBuild(p, "app.nativeproj");
        Assert.Equal("42", p.RunProgram("bin/Debug/app").Output.Trim());

        var noop = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Equal(0, Native.CompilerInvocations(noop.Output));
        Assert.Contains("0 of 4 source(s) to compile", noop.Output);
        Assert.Contains("Skipping target \"RetpolinePatchAndVerify\"", noop.Output);

        Thread.Sleep(1100); // coarse file systems: make the edit strictly newer than the objects
        p.Write("a.h", "#define A_VALUE 41\n");
        var edit = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("1 of 4 source(s) to compile", edit.Output);
        Assert.Matches(@"gcc .*uses_a\.c", edit.Output);
        Assert.DoesNotMatch(@"gcc .* -c \S*other\.c", edit.Output);
        Assert.Equal("43", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void Clean_removes_what_the_build_wrote()
    {
        var p = Sdk.NewProject("clean").Write("app.nativeproj", Sources.Project("Exe")).Write("dispatch.c", Sources.DispatchC);
        MustBuild(p, "app.nativeproj");
        Assert.True(File.Exists(p.PathOf("bin/Debug/app")));
        var r = p.Dotnet("clean", "app.nativeproj", "-nologo");
        Assert.Equal(0, r.ExitCode);
        Assert.False(File.Exists(p.PathOf("bin/Debug/app")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/dispatch.c.o")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/retpoline/verified.stamp")));
    }

    [Fact]
    public void Same_sources_give_the_same_bytes_twice()
    {
        byte[] Build(string name)
        {
            var p = Sdk.NewProject(name).Write("app.nativeproj", Sources.Project("Exe")).Write("dispatch.c", Sources.DispatchC);
            MustBuild(p, "app.nativeproj", "-c", "Release");
            return File.ReadAllBytes(p.PathOf("bin/Release/app"));
        }
        // Different folders, so an absolute path baked into the output would show as a difference.
        Assert.Equal(Build("det1"), Build("det2"));
    }
}
