using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>What every test class needs: the packed SDK, and a build that must succeed (its log goes to the test output).</summary>
public abstract class SdkTest(ITestOutputHelper log)
{
    protected static SdkPackage Sdk => SdkPackage.Instance;
    protected ITestOutputHelper Log { get; } = log;

    protected ProcessOutcome MustBuild(TestProject p, string project, params string[] args)
    {
        var r = p.Build(project, args);
        Log.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, $"dotnet build failed:\n{r.Output}");
        return r;
    }

    /// <summary>Any dotnet (or other) command that must succeed: `what` names it in the failure.</summary>
    protected ProcessOutcome Must(ProcessOutcome r, string what)
    {
        Log.WriteLine(r.Output);
        Assert.True(r.ExitCode == 0, $"{what} failed ({r.ExitCode}):\n{r.Output}");
        return r;
    }

    protected ProcessOutcome MustFail(TestProject p, string project, params string[] args)
    {
        var r = p.Build(project, args);
        Log.WriteLine(r.Output);
        Assert.True(r.ExitCode != 0, $"dotnet build should have failed:\n{r.Output}");
        return r;
    }
}

/// <summary>`dotnet build` of real C/C++ executables with the packed SDK: compile, link, patch, verify, run.</summary>
public sealed class ExecutableTests(ITestOutputHelper log) : SdkTest(log)
{
    [Theory]
    [InlineData("Debug", "Generic", Sources.GenericRax)]
    [InlineData("Release", "None", Sources.NoneRax)]
    [InlineData("Release", "Amd", Sources.AmdRax)]
    public void Gcc_C_executable_is_patched_for_the_vendor_verified_and_runs(string configuration, string vendor, string raxBytes)
    {
        var p = Sdk.NewProject("c-" + vendor).Write("app.nativeproj", Sources.Project("Exe", $"<PropertyGroup><RetpolineVendor>{vendor}</RetpolineVendor></PropertyGroup>"))
            .Write("src/dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-c", configuration);
        string exe = $"bin/{configuration}/app";
        Assert.Contains($"app -> {p.PathOf(exe)}", r.Output);
        Assert.Equal(raxBytes, Native.ThunkHex(p.PathOf(exe)));
        Assert.Equal(Sources.DispatchExpected, p.RunProgram(exe).Output.Trim());
        if (vendor == "Amd") Assert.Contains($"bin/{configuration}/app : warning RPL0014: vendor Amd writes 'lfence; jmp *%reg'", r.Output);
        else Assert.DoesNotContain("RPL0014", r.Output);
        // Nothing managed: no assembly, deps.json or runtimeconfig next to the program.
        Assert.Equal(["app"], Directory.GetFiles(p.PathOf($"bin/{configuration}")).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("Debug", "Generic", Sources.GenericR11)]
    [InlineData("Release", "Amd", Sources.AmdR11)]
    [InlineData("Release", "None", Sources.NoneR11)]
    public void Clang_C_executable_calls_the_r11_thunk_patched_for_the_vendor(string configuration, string vendor, string r11Bytes)
    {
        Retpoline.Tests.Preconditions.Require("clang-14");
        var p = Sdk.NewProject("clang-" + vendor).Write("app.nativeproj", Sources.Project("Exe",
                $"<PropertyGroup><CC>clang-14</CC><CXX>clang++-14</CXX><RetpolineVendor>{vendor}</RetpolineVendor></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-c", configuration, "-v:n");
        Assert.Contains("Clang 14", r.Output);
        Assert.Contains("-mretpoline-external-thunk", r.Output);
        Assert.Contains(configuration == "Debug" ? " -O0 -g " : " -O2 -g ", r.Output);
        string exe = p.PathOf($"bin/{configuration}/app");
        Assert.Equal(r11Bytes, Native.ThunkHex(exe, "__x86_indirect_thunk_r11"));
        Assert.Contains("call", Native.Disassemble(exe).Split('\n').First(l => l.Contains("<__x86_indirect_thunk_r11>") && !l.TrimEnd().EndsWith(':')));
        Assert.Equal(Sources.DispatchExpected, p.RunProgram($"bin/{configuration}/app").Output.Trim());
    }

    [Fact]
    public void Cxx_executable_with_clang_builds_verifies_and_runs()
    {
        Retpoline.Tests.Preconditions.Require("clang-14");
        var p = Sdk.NewProject("cxx-clang").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CC>clang-14</CC><CXX>clang++-14</CXX></PropertyGroup>"))
            .Write("shapes.cpp", Sources.VirtualCpp);
        var r = MustBuild(p, "app.nativeproj", "-c", "Release", "-v:n");
        Assert.Matches(@"(?m)^\s*clang\+\+-14 .*-mretpoline-external-thunk.* -c \S*shapes\.cpp", r.Output);
        Assert.Contains("PASS", r.Output);
        Assert.Equal(Sources.VirtualExpected, p.RunProgram("bin/Release/app").Output.Trim());
    }

    /// <summary>The README's first command builds samples/hello: C and C++ (so the g++ driver links), thunks, verify.</summary>
    [Fact]
    public void Sample_hello_builds_with_gcc_links_with_the_cxx_driver_and_runs()
    {
        var p = Sdk.NewProject("hello").CopyFrom(Path.Combine(SdkPackage.RepoRoot, "samples", "hello"));
        var r = MustBuild(p, "hello.nativeproj", "-v:n");
        Assert.Matches(@"(?m)^\s*gcc -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt -O0 -g .* -c \S*/src/dispatch\.c", r.Output);
        Assert.Matches(@"(?m)^\s*g\+\+ .*-std=c\+\+17 .* -c \S*/src/shapes\.cpp", r.Output);
        Assert.Matches(@"(?m)^\s*g\+\+ -fno-plt -Wl,-z,now -Wl,-z,relro .*retpoline_thunks\.S\.o .*-o \S*/bin/Debug/hello", r.Output);
        Assert.Contains($"hello -> {p.PathOf("bin/Debug/hello")}", r.Output);
        Assert.Equal("dispatch total: 171\nshape areas: 37", p.RunProgram("bin/Debug/hello").Output.Trim());
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(p.PathOf("bin/Debug/hello")));

        // compile_commands.json: one entry per source of the project, with directory and arguments. The package's
        // thunks are their own object, compiled with none of the project's flags: not the project's source.
        string cc = File.ReadAllText(p.PathOf("obj/Debug/compile_commands.json"));
        Assert.Contains($"\"directory\": \"{p.Directory}\"", cc);
        Assert.Contains("src/dispatch.c\"", cc);
        Assert.Contains("src/shapes.cpp\"", cc);
        Assert.DoesNotContain("retpoline_thunks.S\"", cc);
        Assert.True(File.Exists(p.PathOf("obj/Debug/src/dispatch.c.o")), "objects mirror the source tree");
    }

    [Fact]
    public void Return_thunk_routes_returns_through_the_thunk()
    {
        var p = Sdk.NewProject("retthunk").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineReturnThunk>true</RetpolineReturnThunk></PropertyGroup>"))
            .Write("dispatch.c", Sources.DispatchC);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("-mfunction-return=thunk-extern", r.Output);
        Assert.Matches(@"jmp\s+[0-9a-f]+ <__x86_return_thunk>", Native.Disassemble(p.PathOf("bin/Debug/app")));
        Assert.Equal("c3cc", Native.Hex(Native.BytesAt(p.PathOf("bin/Debug/app"), Native.SymbolAddress(p.PathOf("bin/Debug/app"), "__x86_return_thunk"), 2)));
        Assert.Equal(Sources.DispatchExpected, p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void CC_as_a_command_prefix_compiles_through_ccache_and_a_rebuild_is_served_from_its_cache()
    {
        // `CC="ccache gcc"` is how make users put a compiler cache in CI; it must work here too, split into an
        // argument list (no shell), with the same flags and the same verified output.
        Retpoline.Tests.Preconditions.Require("ccache");
        var env = new Dictionary<string, string?> { ["CC"] = "ccache gcc", ["CCACHE_DIR"] = Directory.CreateTempSubdirectory("retpoline-ccache-").FullName };
        var p = Sdk.NewProject("ccache").Write("app.nativeproj", Sources.Project("Exe")).Write("dispatch.c", Sources.DispatchC);
        ProcessOutcome Run(params string[] args) => Must(Dotnet.Run(p.Directory, args, Sdk.Packages, env), "dotnet " + string.Join(' ', args));
        var first = Run("build", "app.nativeproj", "-v:n", "-nologo");
        Assert.Contains("Retpoline: C compiler ccache gcc (Gcc ", first.Output);
        Assert.Matches(@"(?m)^\s*ccache gcc -mindirect-branch=thunk-extern -mindirect-branch-register .* -c \S*dispatch\.c ", first.Output);
        Assert.Contains("PASS", first.Output);
        Assert.Equal(Sources.DispatchExpected, p.RunProgram("bin/Debug/app").Output.Trim());

        int Hits() => Dotnet.Exec("ccache", p.Directory, ["--print-stats"], env: env).Output.Split('\n')
            .Select(l => l.Split('\t')).Where(f => f.Length == 2 && f[0] is "direct_cache_hit" or "preprocessed_cache_hit").Sum(f => int.Parse(f[1]));
        Assert.Equal(0, Hits());
        Run("clean", "app.nativeproj", "-nologo");
        var second = Run("build", "app.nativeproj", "-v:n", "-nologo");
        // dispatch.c, and the package's thunks as their own object.
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(second.Output, @"1 of 1 source\(s\) to compile").Count);
        Assert.True(Hits() >= 1, "the rebuild after clean was not served from ccache");
        Assert.Equal(Sources.DispatchExpected, p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void RetpolineEnabled_false_builds_plain_code_without_thunks_or_verify()
    {
        var p = Sdk.NewProject("disabled").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineEnabled>false</RetpolineEnabled></PropertyGroup>"))
            .Write("main.c", Sources.TrampolineMainC).Write("tramp.S", Sources.TrampolineS);
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.DoesNotContain("-mindirect-branch", r.Output);
        Assert.DoesNotContain("retpoline_thunks.S", r.Output);
        Assert.DoesNotContain("RPL0001", r.Output);
        Assert.False(Native.HasSymbol(p.PathOf("bin/Debug/app"), "__x86_indirect_thunk_rax"));
        Assert.Equal("seven=7", p.RunProgram("bin/Debug/app").Output.Trim());
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

/// <summary>Libraries, references between native projects, and a C# project consuming a native library.</summary>
public sealed class LibraryTests(ITestOutputHelper log) : SdkTest(log)
{
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
                <ItemGroup><ProjectReference Include="../mathx/mathx.nativeproj" /><ProjectReference Include="../util/util.nativeproj" /></ItemGroup>
                """))
            .Write("app/main.c", "#include <stdio.h>\n#include \"mathx.h\"\n#include \"util.h\"\nint main(void){printf(\"r=%ld\\n\", twice(mathx_apply(1, 6, 7)));return 0;}\n");
        var r = MustBuild(p, "app/app.nativeproj", "-v:n");
        Assert.True(File.Exists(p.PathOf("mathx/bin/Debug/libmathx.so")));
        Assert.True(File.Exists(p.PathOf("util/bin/Debug/libutil.a")));
        Assert.Contains("ar rcsD ", r.Output);
        // The static library leaves the thunks to the final link; the shared library and the program carry their own.
        Assert.DoesNotContain("retpoline_thunks", NativeToolchain_ArMembers(p.PathOf("util/bin/Debug/libutil.a")));
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(p.PathOf("mathx/bin/Debug/libmathx.so")));
        // The shared library is copied beside the program, which finds it there through RUNPATH $ORIGIN.
        Assert.True(File.Exists(p.PathOf("app/bin/Debug/libmathx.so")), "the referenced shared library is copied to the output");
        var dyn = Native.DynamicSection(p.PathOf("app/bin/Debug/app"));
        Assert.Contains("Shared library: [libmathx.so]", dyn);
        Assert.Contains("[$ORIGIN]", dyn);
        Assert.Equal("r=84", p.RunProgram("app/bin/Debug/app").Output.Trim());
    }

    /// <summary>A C program over a static C++ library over a static C library: the C++ driver links, the inner library comes along.</summary>
    [Fact]
    public void Static_libraries_pass_on_their_own_references_and_their_need_for_the_cxx_driver()
    {
        var p = Sdk.NewProject("transitive")
            .Write("base/base.nativeproj", Sources.Project("StaticLibrary", "<PropertyGroup><PublicIncludeDirectories>.</PublicIncludeDirectories></PropertyGroup>"))
            .Write("base/base.h", "#ifdef __cplusplus\nextern \"C\"\n#endif\nlong base_square(long x);\n")
            .Write("base/base.c", "long base_square(long x) { return x * x; }\n")
            .Write("shapes/shapes.nativeproj", Sources.Project("StaticLibrary", """
                <PropertyGroup><PublicIncludeDirectories>.</PublicIncludeDirectories></PropertyGroup>
                <ItemGroup><ProjectReference Include="../base/base.nativeproj" /></ItemGroup>
                """))
            .Write("shapes/shapes.h", "#ifdef __cplusplus\nextern \"C\"\n#endif\nlong shapes_total(void);\n")
            .Write("shapes/shapes.cpp", "#include <memory>\n#include \"shapes.h\"\n#include \"base.h\"\nstruct S { virtual ~S() = default; virtual long area() const = 0; };\nstruct Q : S { long area() const override { return base_square(6); } };\nextern \"C\" long shapes_total(void) { std::unique_ptr<S> s = std::make_unique<Q>(); return s->area(); }\n")
            .Write("app/app.nativeproj", Sources.Project("Exe", "<ItemGroup><ProjectReference Include=\"../shapes/shapes.nativeproj\" /></ItemGroup>"))
            .Write("app/main.c", "#include <stdio.h>\n#include \"shapes.h\"\nint main(void) { printf(\"total=%ld\\n\", shapes_total()); return 0; }\n");
        var r = MustBuild(p, "app/app.nativeproj", "-v:n");
        Assert.Matches(@"(?m)^\s*g\+\+ -fno-plt .*libshapes\.a .*libbase\.a -o \S*/app/bin/Debug/app", r.Output);
        Assert.Equal("total=36", p.RunProgram("app/bin/Debug/app").Output.Trim());
    }

    static string NativeToolchain_ArMembers(string archive)
        => Retpoline.Tests.NativeToolchain.Run("ar", ["t", archive]).EnsureSuccess().StdOut;

    [Fact]
    public void Two_sources_with_the_same_name_in_different_folders_do_not_collide_and_link_paths_are_project_relative()
    {
        var p = Sdk.NewProject("samename")
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><LinkLibraries>prebuilt/libone.a</LinkLibraries><LdFlags>-Lprebuilt</LdFlags></PropertyGroup>"))
            .Write("a/util.c", "int util_a(void) { return 40; }\n")
            .Write("b/util.c", "int util_b(void) { return 1; }\n")
            .Write("main.c", "#include <stdio.h>\nint util_a(void); int util_b(void); int one(void);\nint main(void) { printf(\"%d\\n\", util_a() + util_b() + one()); return 0; }\n");
        // A prebuilt archive outside the Compile globs (a .o and .a are not sources), named by a project-relative path.
        Directory.CreateDirectory(p.PathOf("prebuilt"));
        Retpoline.Tests.NativeToolchain.Compile(Retpoline.Tests.NativeToolchain.Gcc, p.Write("prebuilt/one.txt", "int one(void) { return 1; }\n").PathOf("prebuilt/one.txt"),
            p.PathOf("prebuilt/one.o"), ["-x", "c", "-fPIC"]);
        Retpoline.Tests.NativeToolchain.Run("ar", ["rcs", p.PathOf("prebuilt/libone.a"), p.PathOf("prebuilt/one.o")]).EnsureSuccess();
        MustBuild(p, "app.nativeproj");
        Assert.True(File.Exists(p.PathOf("obj/Debug/a/util.c.o")));
        Assert.True(File.Exists(p.PathOf("obj/Debug/b/util.c.o")));
        Assert.Equal("42", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    /// <summary>DESIGN.md §2: a C# project gets the .so copied beside it through the ordinary ProjectReference protocol.</summary>
    [Fact]
    public void CSharp_project_reference_copies_the_shared_library_and_calls_it()
    {
        var p = Sdk.NewProject("csharp")
            .Write("native/mathx.nativeproj", Sources.Project("Library"))
            .Write("native/mathx.c", "typedef int (*op)(int, int);\nstatic int add(int a, int b) { return a + b; }\nop ops[] = { add };\nint mathx_add(int a, int b) { return ops[0](a, b); }\n")
            .Write("app/app.csproj", """
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>disable</ImplicitUsings></PropertyGroup>
                  <ItemGroup><ProjectReference Include="../native/mathx.nativeproj" /></ItemGroup>
                </Project>
                """)
            .Write("app/Program.cs", """
                using System.Runtime.InteropServices;
                static class Program
                {
                    [DllImport("mathx")] static extern int mathx_add(int a, int b);
                    static void Main() => System.Console.WriteLine($"sum={mathx_add(40, 2)}");
                }
                """);
        var r = MustBuild(p, "app/app.csproj");
        Assert.Contains($"mathx -> {p.PathOf("native/bin/Debug/libmathx.so")}", r.Output);
        Assert.True(File.Exists(p.PathOf("app/bin/Debug/net10.0/libmathx.so")), "the .so is copied next to the C# program");
        Assert.Equal("sum=42", p.Dotnet("app/bin/Debug/net10.0/app.dll").Output.Trim());
    }
}
