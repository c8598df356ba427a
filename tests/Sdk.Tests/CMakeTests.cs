using System.Text.RegularExpressions;
using Retpoline.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>The CMake trees the CMake driver's tests write: a third-party tree beside the project that builds it.</summary>
public static class CMakeSources
{
    /// <summary>
    /// A shared C++ library (virtual calls), a static C library (a function-pointer table), an executable linking
    /// both, and two tests. The project sets CMAKE_C_FLAGS and CMAKE_CXX_FLAGS itself, dropping anything the
    /// *_FLAGS_INIT variables would have seeded.
    /// </summary>
    public const string CMakeLists = """
        cmake_minimum_required(VERSION 3.16)
        project(demo C CXX)
        set(CMAKE_C_FLAGS "-O1 -Wall")
        set(CMAKE_CXX_FLAGS "-O1")
        add_library(util STATIC util.c)
        set_target_properties(util PROPERTIES POSITION_INDEPENDENT_CODE ON)
        add_library(shape SHARED shape.cpp)
        target_include_directories(shape PUBLIC include)
        add_executable(app main.c)
        target_link_libraries(app util shape)
        enable_testing()
        add_test(NAME app_runs COMMAND app)
        """;

    public const string UtilC = """
        typedef long (*op)(long);
        static long twice(long x) { return 2 * x; }
        static long thrice(long x) { return 3 * x; }
        op util_ops[] = { twice, thrice };
        long util(int i, long x) { return util_ops[i & 1](x); }
        """;

    public const string ShapeCpp = """
        #include "shape.h"
        struct Shape { virtual ~Shape() {} virtual long area() const = 0; };
        struct Sq : Shape { long s; explicit Sq(long s) : s(s) {} long area() const override { return s * s; } };
        struct Re : Shape { long w, h; Re(long w, long h) : w(w), h(h) {} long area() const override { return w * h; } };
        extern "C" long shape_area(long side)
        {
            Sq q(side); Re r(side, 2);
            const Shape *s[] = { &q, &r };
            long t = 0;
            for (long i = 0; i < side; i++) t += s[i & 1]->area();
            return t;
        }
        """;

    public const string ShapeH = "#ifdef __cplusplus\nextern \"C\"\n#endif\nlong shape_area(long side);\n";

    public const string MainC = """
        #include <stdio.h>
        #include "shape.h"
        long util(int i, long x);
        int main(void) { printf("sum=%ld\n", util(0, 5) + util(1, 5) + shape_area(4)); return 0; }
        """;
    // 2*5 + 3*5 + (16 + 8 + 16 + 8)
    public const string Expected = "sum=73";

    public static TestProject WriteTree(TestProject p, string dir = "third")
        => p.Write($"{dir}/CMakeLists.txt", CMakeLists).Write($"{dir}/util.c", UtilC).Write($"{dir}/shape.cpp", ShapeCpp)
            .Write($"{dir}/include/shape.h", ShapeH).Write($"{dir}/main.c", MainC);

    public static string Project(string extra = "") => $"""
        <Project Sdk="Retpoline.Sdk">
          <PropertyGroup>
            <CMakeSourceDirectory>../third</CMakeSourceDirectory>
          </PropertyGroup>
          {extra}
        </Project>
        """;
}

/// <summary>`dotnet build` of an existing CMake tree: configure, build, outputs from the File API, patch, verify.</summary>
public sealed class CMakeBuildTests(ITestOutputHelper log) : SdkTest(log)
{
    /// <summary>One function's lines of `objdump -d`: from its label to the blank line after it.</summary>
    public static string FunctionBody(string disassembly, string function)
    {
        int start = disassembly.IndexOf($" <{function}>:\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no function {function} in the disassembly");
        int end = disassembly.IndexOf("\n\n", start, StringComparison.Ordinal);
        return disassembly[start..(end < 0 ? disassembly.Length : end)];
    }

    public static string VerifyLine(string output, string file)
        => Regex.Match(output, "(?m)^\\s*" + Regex.Escape(file) + ": (PASS|FAIL): .*$").Value.Trim();

    [Fact]
    public void CMake_tree_with_shared_static_and_executable_targets_is_mitigated_though_it_sets_CMAKE_C_FLAGS()
    {
        Preconditions.Require("cmake", "ninja");
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-gcc")).Write("app/app.nativeproj", CMakeSources.Project());
        var r = MustBuild(p, "app/app.nativeproj", "-v:n");
        string build = p.PathOf("app/obj/Debug/cmake");
        string exe = Path.Combine(build, "app"), so = Path.Combine(build, "libshape.so"), lib = Path.Combine(build, "libutil.a");

        // Configured with Ninja (on PATH), the probed compilers and CMAKE_BUILD_TYPE from Configuration.
        Assert.Contains($"cmake -S {p.PathOf("third/")} -B {build}/ -G Ninja -DCMAKE_TOOLCHAIN_FILE={p.PathOf("app/obj/Debug/retpoline/cmake-toolchain.cmake")} -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON", r.Output);
        // Every output CMake links, in the File API's order (targets sorted by name), and nothing else.
        Assert.Equal([$"app -> {exe}", $"app -> {so}", $"app -> {lib}"], Regex.Matches(r.Output, @"(?m)^\s*app -> (\S+)$").Select(m => m.Value.Trim()));

        // The project's own set(CMAKE_C_FLAGS "-O1 -Wall") kept the injected flags: every compile has them, before its own.
        string commands = File.ReadAllText(p.PathOf("app/obj/Debug/compile_commands.json"));
        Assert.Equal(3, Regex.Matches(commands, @"-mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt +(-[DI]\S+ +)*-O1").Count);

        // Exact verify results: only the crt start-up branches remain, each thunk linked once, all Generic.
        Assert.Equal($"{exe}: PASS: 6 indirect branches (6 ToolchainStartup); 31 thunks (30 Generic, 1 Return); 0 error(s), 0 warning(s)", VerifyLine(r.Output, exe));
        Assert.Equal($"{so}: PASS: 5 indirect branches (5 ToolchainStartup); 31 thunks (30 Generic, 1 Return); 0 error(s), 0 warning(s)", VerifyLine(r.Output, so));
        // The static library: its member, which the final link gets its thunks from.
        string member = p.PathOf("app/obj/Debug/retpoline/members/libutil.a/util.c.o");
        Assert.Equal($"{member}: PASS: 0 indirect branches (none outside thunks); 0 thunks (none); 0 error(s), 0 warning(s)", VerifyLine(r.Output, member));

        Assert.Equal(Sources.GenericRax, Native.ThunkHex(exe));
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(so));
        // The function-pointer call of the static library and the virtual call of the shared one go through thunks.
        string disassembly = Native.Disassemble(exe);
        Assert.Matches(@"(call|jmp)\s+[0-9a-f]+ <__x86_indirect_thunk_\w+>", FunctionBody(disassembly, "util"));
        Assert.Matches(@"call\s+[0-9a-f]+ <__x86_indirect_thunk_\w+>", FunctionBody(Native.Disassemble(so), "shape_area"));
        Assert.Single(Regex.Matches(NativeToolchain.Run(NativeToolchain.Nm, [exe]).StdOut, @"(?m) __x86_indirect_thunk_rax$"));
        Assert.Matches(@"\(FLAGS\)\s+BIND_NOW", Native.DynamicSection(exe));
        Assert.Equal(CMakeSources.Expected, p.RunProgram("app/obj/Debug/cmake/app").Output.Trim());

        // A no-op build: CMake's regeneration check and ninja find nothing to do; patch and verify are skipped.
        var again = MustBuild(p, "app/app.nativeproj", "-v:n");
        Assert.DoesNotContain("Retpoline: CMake configure", again.Output);
        Assert.DoesNotContain("-- Configuring done", again.Output);
        Assert.Equal(2, Regex.Matches(again.Output, "ninja: no work to do.").Count);
        Assert.Contains("Skipping target \"RetpolinePatchAndVerify\" because all output files are up-to-date", again.Output);

        // Another vendor: nothing for CMake to do, each artifact's thunks re-patched by the post-link step.
        var none = MustBuild(p, "app/app.nativeproj", "-v:n", "-p:RetpolineVendor=None");
        Assert.Equal(2, Regex.Matches(none.Output, "ninja: no work to do.").Count);
        Assert.Equal(Sources.NoneRax, Native.ThunkHex(exe));
        Assert.Equal(Sources.NoneRax, Native.ThunkHex(so));
        Assert.Equal(CMakeSources.Expected, p.RunProgram("app/obj/Debug/cmake/app").Output.Trim());

        // An edited CMakeLists.txt: CMake re-runs itself (its own check), not our configure.
        // A target outside `all` is neither built nor shipped.
        p.Write("third/CMakeLists.txt", CMakeSources.CMakeLists + "\nadd_executable(app2 main.c)\ntarget_link_libraries(app2 util shape)\nadd_executable(never EXCLUDE_FROM_ALL main.c)\n");
        var edited = MustBuild(p, "app/app.nativeproj", "-v:n");
        Assert.DoesNotContain("Retpoline: CMake configure", edited.Output);
        Assert.Contains("-- Configuring done", edited.Output);
        Assert.Equal($"{Path.Combine(build, "app2")}: PASS: 6 indirect branches (6 ToolchainStartup); 31 thunks (30 Generic, 1 Return); 0 error(s), 0 warning(s)", VerifyLine(edited.Output, Path.Combine(build, "app2")));
        Assert.Equal([$"app -> {exe}", $"app -> {Path.Combine(build, "app2")}", $"app -> {so}", $"app -> {lib}"], Regex.Matches(edited.Output, @"(?m)^\s*app -> (\S+)$").Select(m => m.Value.Trim()));

        // A changed injected setting (the vendor does not change the flags; the return thunk does): configured afresh.
        var changed = MustBuild(p, "app/app.nativeproj", "-v:n", "-p:RetpolineReturnThunk=true");
        Assert.Contains("Retpoline: CMake configure", changed.Output);
        Assert.Contains("--fresh", changed.Output);
        Assert.Matches(@"\bjmp\s", Native.Disassemble(exe).Split('\n').First(l => l.Contains("<__x86_return_thunk>") && !l.TrimEnd().EndsWith(':')));

        // dotnet clean removes the CMake build tree.
        Must(p.Dotnet("clean", "app/app.nativeproj", "-nologo"), "dotnet clean");
        Assert.False(Directory.Exists(build), "the CMake build tree is removed by dotnet clean");
    }

    [Fact]
    public void RetpolineVendor_Runtime_links_the_start_up_routine_of_each_kind_into_every_CMake_executable_and_shared_library()
    {
        Preconditions.Require("cmake");
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-runtime")).Write("app/app.nativeproj", CMakeSources.Project(
            "<PropertyGroup><RetpolineVendor>Runtime</RetpolineVendor><RetpolineRuntimeMinimum>None</RetpolineRuntimeMinimum></PropertyGroup>"));
        var r = MustBuild(p, "app/app.nativeproj", "-v:n");
        string build = p.PathOf("app/obj/Debug/cmake");
        string exe = Path.Combine(build, "app"), so = Path.Combine(build, "libshape.so");
        Assert.Equal($"{exe}: PASS: 6 indirect branches (6 ToolchainStartup); 31 thunks (30 Generic, 1 Return; Runtime: patched in memory at load); 0 error(s), 0 warning(s)", VerifyLine(r.Output, exe));
        Assert.Equal($"{so}: PASS: 5 indirect branches (5 ToolchainStartup); 31 thunks (30 Generic, 1 Return; Runtime: patched in memory at load); 0 error(s), 0 warning(s)", VerifyLine(r.Output, so));
        // The executable's routine runs from .preinit_array; a shared object may not have one (ld refuses it).
        string sections(string f) => NativeToolchain.Run(NativeToolchain.Readelf, ["-SW", f]).EnsureSuccess().StdOut;
        Assert.Contains(".preinit_array", sections(exe));
        Assert.DoesNotContain(".preinit_array", sections(so));
        Assert.True(Native.HasSymbol(so, "retpoline_runtime_record"));
        Assert.Equal(CMakeSources.Expected, p.RunProgram("app/obj/Debug/cmake/app").Output.Trim());
    }

    [Fact]
    public void Clang_with_Unix_Makefiles_in_Release_gets_the_vendor_thunks_and_CMakeTargets_limits_the_outputs()
    {
        Preconditions.Require("cmake", "clang-14", "make");
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-clang")).Write("app/app.nativeproj", CMakeSources.Project("""
            <PropertyGroup>
              <CC>clang-14</CC><CXX>clang++-14</CXX>
              <CMakeGenerator>Unix Makefiles</CMakeGenerator>
              <CMakeTargets>shape</CMakeTargets>
              <RetpolineVendor>Amd</RetpolineVendor>
            </PropertyGroup>
            """));
        var r = MustBuild(p, "app/app.nativeproj", "-c", "Release", "-v:n");
        string so = p.PathOf("app/obj/Release/cmake/libshape.so");
        Assert.Contains("-G 'Unix Makefiles'", r.Output);
        Assert.Contains("-DCMAKE_BUILD_TYPE=Release", r.Output);
        Assert.Equal([$"app -> {so}"], Regex.Matches(r.Output, @"(?m)^\s*app -> (\S+)$").Select(m => m.Value.Trim()));
        Assert.False(File.Exists(p.PathOf("app/obj/Release/cmake/app")), "only CMakeTargets is built");
        Assert.Equal(Sources.AmdR11, Native.ThunkHex(so, "__x86_indirect_thunk_r11"));
        Assert.Matches(@"call\s+\S+ <__x86_indirect_thunk_r11>", Native.Disassemble(so));
        Assert.Contains("obj/Release/cmake/libshape.so : warning RPL0014", r.Output);
        string commands = File.ReadAllText(p.PathOf("app/obj/Release/compile_commands.json"));
        Assert.Contains("clang++-14 -mretpoline-external-thunk -fno-plt", commands);
    }

    [Fact]
    public void Hand_written_indirect_call_fails_with_RPL0001_at_its_line_and_a_defeating_target_flag_is_named()
    {
        Preconditions.Require("cmake");
        var p = Sdk.NewProject("cmake-bad")
            .Write("third/CMakeLists.txt", """
                cmake_minimum_required(VERSION 3.16)
                project(bad C ASM)
                add_executable(tramp main.c tramp.S)
                add_library(keep SHARED keep.c)
                target_compile_options(keep PRIVATE -mindirect-branch=keep)
                """)
            .Write("third/tramp.S", Sources.TrampolineS).Write("third/main.c", Sources.TrampolineMainC)
            .Write("third/keep.c", "long call_it(long (*f)(void)) { return f() + 1; }\n")
            .Write("app/app.nativeproj", CMakeSources.Project());
        var r = MustFail(p, "app/app.nativeproj");
        Assert.Matches(@"(?m)^\s*/\S+/third/tramp\.S\(6\): error RPL0001: indirect call 'call rdi' at 0x[0-9a-f]+ in function 'trampoline\+0x4' is not routed through a retpoline thunk \(rebuild with the retpoline flags; waive: RetpolineAllow ""trampoline""\) \[obj/Debug/cmake/tramp\]", r.Output);
        Assert.Contains($"{p.PathOf("third/CMakeLists.txt")}(4): warning RPL0237: target 'keep' compiles with -mindirect-branch=keep, which comes after the SDK's mitigation flags and undoes them", r.Output);
        Assert.Matches(@"error RPL0001: indirect call 'call r\w+' at 0x[0-9a-f]+ in function 'call_it\+0x\w+' is not routed through a retpoline thunk", r.Output);

        // A failed verify fails the next build too.
        var again = MustFail(p, "app/app.nativeproj");
        Assert.Contains("error RPL0001", again.Output);
    }

    [Fact]
    public void A_prebuilt_archive_a_CMake_target_links_is_named_in_its_findings_and_one_Archive_waiver_passes_it()
    {
        // Each CMake link writes a map beside its artifact, so findings name the archive member, as in a native link.
        Preconditions.Require("cmake");
        var p = Sdk.NewProject("cmake-prebuilt")
            .Write("third/CMakeLists.txt", """
                cmake_minimum_required(VERSION 3.16)
                project(prebuilt C)
                add_executable(app main.c)
                target_link_libraries(app PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/../vendor/libthird.a)
                """)
            .Write("third/main.c", OriginBuildTests.ThirdMainC)
            .Write("app/app.nativeproj", CMakeSources.Project());
        OriginBuildTests.AddPrebuiltArchive(p);
        var failed = MustFail(p, "app/app.nativeproj");
        Assert.Matches(@"obj/Debug/cmake/app : error RPL0001: indirect call 'call qword ptr \[[^\]]+\]' at 0x[0-9a-f]+ in function 'third_apply\+0x[0-9a-f]+' \(from libthird\.a\(third\.o\)\) " +
            @"is not routed through a retpoline thunk \(rebuild libthird\.a with the retpoline flags, it is not compiled by this build; or waive the archive: " +
            @"RetpolineAllow Include=""libthird"" Archive=""libthird\.a""\)", failed.Output);
        Assert.True(File.Exists(p.PathOf("app/obj/Debug/cmake/app.map")));

        p.Write("app/app.nativeproj", CMakeSources.Project(
            """<ItemGroup><RetpolineAllow Include="libthird" Archive="libthird.a" Reason="vendor library, rebuilt upstream next release" /></ItemGroup>"""));
        var passed = MustBuild(p, "app/app.nativeproj", "-v:n");
        Assert.Matches(@"Retpoline: allowed UserCode 'call qword ptr \[[^\]]+\]' at 0x[0-9a-f]+ in 'third_apply\+0x[0-9a-f]+' from 'libthird\.a\(third\.o\)': vendor library, rebuilt upstream next release", passed.Output);
        Assert.Equal("43", p.RunProgram("app/obj/Debug/cmake/app").Output.Trim());
    }

    [Fact]
    public void CMake_errors_are_reported_at_their_file_and_line_and_a_missing_CMakeLists_has_a_code()
    {
        Preconditions.Require("cmake");
        var p = Sdk.NewProject("cmake-error")
            .Write("third/CMakeLists.txt", "cmake_minimum_required(VERSION 3.16)\nproject(x C)\n\nadd_library(a SHARED nope.c)\n")
            .Write("app/app.nativeproj", CMakeSources.Project());
        var r = MustFail(p, "app/app.nativeproj");
        Assert.Contains($"{p.PathOf("third/CMakeLists.txt")}(4): error RPL0231: add_library: Cannot find source file: nope.c Tried extensions", r.Output);

        p.Write("third/CMakeLists.txt", "cmake_minimum_required(VERSION 3.16)\nproject(x C)\nadd_library(a SHARED\n");
        var syntax = MustFail(p, "app/app.nativeproj");
        Assert.Contains($"{p.PathOf("third/CMakeLists.txt")}(3): error RPL0231: Parse error.  Function missing ending \")\".  End of file reached.", syntax.Output);

        // A compile error in the third-party tree: at its own file and line, in the compiler's words.
        CMakeSources.WriteTree(p).Write("third/util.c", Sources.BrokenC);
        var compile = MustFail(p, "app/app.nativeproj");
        Assert.Contains($"{p.PathOf("third/util.c")}(3,12): error GCC: 'undefined_thing' undeclared (first use in this function)", compile.Output);

        p.Write("app/app.nativeproj", CMakeSources.Project("<PropertyGroup><CMakeCommand>cmake-not-installed</CMakeCommand></PropertyGroup>"));
        var noCmake = MustFail(p, "app/app.nativeproj");
        Assert.Contains("error RPL0230: cannot run 'cmake-not-installed': it is not installed or not on PATH; apt-get install cmake (3.14 or newer), or set CMakeCommand to its path", noCmake.Output);

        p.Write("app/app.nativeproj", CMakeSources.Project().Replace("../third", "../nowhere"));
        var missing = MustFail(p, "app/app.nativeproj");
        Assert.Contains($"error RPL0235: CMakeSourceDirectory '{p.PathOf("nowhere/")}' has no CMakeLists.txt; set CMakeSourceDirectory to the folder that has it", missing.Output);
    }
}

/// <summary>What comes after the build: a C# program P/Invoking the CMake-built library, and `dotnet test` running ctest.</summary>
public sealed class CMakeConsumerTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void CSharp_program_PInvokes_the_CMake_built_shared_library_copied_next_to_it()
    {
        Preconditions.Require("cmake");
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-pinvoke"))
            .Write("native/shape.nativeproj", CMakeSources.Project("<PropertyGroup><CMakeTargets>shape</CMakeTargets></PropertyGroup>"))
            .Write("cs/cs.csproj", Sources.CSharpProject("<ProjectReference Include=\"../native/shape.nativeproj\" />", "Exe"))
            .Write("cs/Program.cs", """
                using System.Runtime.InteropServices;
                static class Program
                {
                    [DllImport("shape")] static extern long shape_area(long side);
                    static void Main() => System.Console.WriteLine($"area={shape_area(4)}");
                }
                """);
        Must(p.Build("cs/cs.csproj"), "dotnet build");
        Assert.Equal("area=48", p.RunProgram("cs/bin/Debug/net10.0/cs").Output.Trim());
        // Only CMakeTargets' output is shipped: no executable or static library of the tree next to the program.
        Assert.True(File.Exists(p.PathOf("cs/bin/Debug/net10.0/libshape.so")));
        Assert.False(File.Exists(p.PathOf("cs/bin/Debug/net10.0/app")));

        Must(p.Dotnet("publish", "cs/cs.csproj", "-nologo", "-o", p.PathOf("pub")), "dotnet publish");
        Assert.Equal("area=48", p.RunProgram("pub/cs").Output.Trim());
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(p.PathOf("pub/libshape.so")));
    }

    [Fact]
    public void Native_project_links_the_CMake_built_library_with_its_include_directories()
    {
        Preconditions.Require("cmake");
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-native-ref"))
            .Write("shape/shape.nativeproj", CMakeSources.Project("<PropertyGroup><CMakeTargets>shape</CMakeTargets></PropertyGroup>"))
            .Write("user/user.nativeproj", Sources.Project("Exe", "<ItemGroup><ProjectReference Include=\"../shape/shape.nativeproj\" /></ItemGroup>"))
            .Write("user/main.c", "#include <stdio.h>\n#include \"shape.h\"\nint main(void) { printf(\"area=%ld\\n\", shape_area(4)); return 0; }\n");
        MustBuild(p, "user/user.nativeproj");
        Assert.Equal("area=48", p.RunProgram("user/bin/Debug/user").Output.Trim());
        Assert.True(File.Exists(p.PathOf("user/bin/Debug/libshape.so")), "the referenced shared library is copied next to the program");
    }

    [Fact]
    public void Dotnet_test_runs_ctest_and_reports_each_test_by_name()
    {
        Preconditions.Require("cmake", "ctest");
        // The project file sits beside the CMakeLists.txt and says nothing else: that folder is the CMake project.
        var p = CMakeSources.WriteTree(Sdk.NewProject("cmake-ctest"))
            .Write("third/app.nativeproj", "<Project Sdk=\"Retpoline.Sdk\" />\n");
        p.Write("third/CMakeLists.txt", CMakeSources.CMakeLists + "\nadd_test(NAME always_fails COMMAND ${CMAKE_COMMAND} -E false)\n");
        var r = p.Dotnet("test", "third/app.nativeproj", "-nologo");
        Log.WriteLine(r.Output);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("error RPL0251: test 'always_fails' failed: ctest reports the test failed", r.Output);
        Assert.DoesNotContain("test 'app_runs' failed", r.Output);
        Assert.Contains("app: 1 passed, 1 failed, 0 skipped", r.Output);

        // The passing test alone: dotnet test succeeds.
        p.Write("third/CMakeLists.txt", CMakeSources.CMakeLists);
        var ok = Must(p.Dotnet("test", "third/app.nativeproj", "-nologo"), "dotnet test");
        Assert.Contains("app: 1 passed, 0 failed, 0 skipped", ok.Output);
    }
}
