using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// The CMake driver's engine side against the real cmake and ctest: CMake's own messages, the File API reply, the
/// toolchain file a project's set(CMAKE_C_FLAGS) cannot undo, and ctest's JUnit report with a passing, a failing and
/// a skipped test.
/// </summary>
public sealed class CMakeEngineTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("retpoline-cmake-engine-").FullName;
    public void Dispose() => Directory.Delete(dir, recursive: true);

    string Write(string relative, string text)
    {
        string path = Path.Combine(dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void CMake_errors_and_warnings_are_read_at_their_file_and_line_with_the_indented_text_joined()
    {
        Preconditions.Require("cmake");
        Write("src/CMakeLists.txt", "cmake_minimum_required(VERSION 3.16)\nproject(x NONE)\n\nadd_library(a SHARED nope.c)\nmessage(WARNING \"careful\n  here\")\nmessage(FATAL_ERROR \"stop\")\n");
        var r = NativeToolchain.Run("cmake", ["-S", Path.Combine(dir, "src"), "-B", Path.Combine(dir, "b")], dir);
        var d = CMakeMessages.Parse(r.StdOut + "\n" + r.StdErr, Path.Combine(dir, "src"));
        string file = Path.Combine(dir, "src", "CMakeLists.txt");
        Assert.Equal([
            new CompilerDiagnostic(Severity.Warning, file, 5, 0, CMakeCodes.CMakeWarning, "message: careful here"),
            new CompilerDiagnostic(Severity.Error, file, 7, 0, CMakeCodes.CMakeError, "message: stop"),
        ], d);
    }

    [Fact]
    public void Configure_with_the_toolchain_file_keeps_the_mitigation_through_set_CMAKE_C_FLAGS_and_the_File_API_names_every_output()
    {
        Preconditions.Require("cmake", "ninja");
        string src = Path.Combine(dir, "src"), build = Path.Combine(dir, "build");
        Write("src/CMakeLists.txt", """
            cmake_minimum_required(VERSION 3.16)
            project(demo C)
            set(CMAKE_C_FLAGS "-O1")
            add_library(st STATIC a.c)
            add_library(sh SHARED a.c)
            add_library(mod MODULE a.c)
            add_executable(ex main.c)
            target_compile_options(ex PRIVATE -mindirect-branch=keep)
            add_custom_target(doc)

            """);
        Write("src/a.c", "int a(int (*f)(void)) { return f(); }\n");
        Write("src/main.c", "int main(void) { return 0; }\n");
        var settings = new ForeignBuildSettings { CC = "ccache gcc", CXX = "g++", ThunkObject = "/opt/t/thunks.o" };
        string toolchain = CMakeProject.ToolchainFile(settings);
        Assert.Contains("set(CMAKE_C_COMPILER \"gcc\")\nset(CMAKE_C_COMPILER_LAUNCHER \"ccache\")\nset(CMAKE_C_COMPILER_ARG1 \"-mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt\")\n", toolchain);
        Assert.Contains("set(CMAKE_C_STANDARD_LIBRARIES \"/opt/t/thunks.o -Wl,-z,now -Wl,-z,relro\")\n", toolchain);

        // The real configure, without the thunk object (nothing is linked here).
        var step = CMakeBuild.Configure("cmake", settings with { ThunkObject = "" }, src, build, Path.Combine(dir, "tc.cmake"), Path.Combine(dir, "record"), [("FOO", "ON")]);
        Assert.True(step.Ok, step.Output);
        Assert.True(step.Ran);
        string commands = File.ReadAllText(Path.Combine(build, "compile_commands.json"));
        // The project's own CMAKE_C_FLAGS come after the injected flags, which are all still there.
        Assert.Matches(@"gcc -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt +-O1 -g -o CMakeFiles/st\.dir/a\.c\.o", commands);

        var targets = CMakeFileApi.ReadTargets(build).ToDictionary(t => t.Name);
        Assert.Equal(["doc", "ex", "mod", "sh", "st"], targets.Keys.Order());
        Assert.Equal((string?)null, targets["doc"].Kind);
        Assert.Equal(("Exe", Path.Combine(build, "ex")), (targets["ex"].Kind, Assert.Single(targets["ex"].Artifacts)));
        Assert.Equal(("Library", Path.Combine(build, "libsh.so")), (targets["sh"].Kind, Assert.Single(targets["sh"].Artifacts)));
        Assert.Equal(("Module", Path.Combine(build, "libmod.so")), (targets["mod"].Kind, Assert.Single(targets["mod"].Artifacts)));
        Assert.Equal(("StaticLibrary", Path.Combine(build, "libst.a")), (targets["st"].Kind, Assert.Single(targets["st"].Artifacts)));
        Assert.Equal(["-mindirect-branch=keep"], CMakeFileApi.DefeatingFlags(targets["ex"]));
        Assert.Equal((Path.Combine(src, "CMakeLists.txt"), 7), (targets["ex"].DefinedInFile, targets["ex"].DefinedAtLine));

        // The same settings again: no configure; other settings: configured afresh.
        var again = CMakeBuild.Configure("cmake", settings with { ThunkObject = "" }, src, build, Path.Combine(dir, "tc.cmake"), Path.Combine(dir, "record"), [("FOO", "ON")]);
        Assert.False(again.Ran);
        var changed = CMakeBuild.Configure("cmake", settings with { ThunkObject = "", ReturnThunk = true }, src, build, Path.Combine(dir, "tc.cmake"), Path.Combine(dir, "record"), [("FOO", "ON")]);
        Assert.True(changed.Ran);
        Assert.EndsWith(" --fresh", changed.CommandLine);
    }

    [Fact]
    public void Make_gets_the_flags_inside_CC_and_CXX_each_word_quoted_for_the_shell_make_hands_it_to()
    {
        var s = new ForeignBuildSettings { CC = "clang-14", CXX = "clang++-14", Family = CompilerFamily.Clang, ThunkObject = "/w/my obj/thunks.o" };
        Assert.Equal(["-C", "/src", "-j2", "lib", "CC=clang-14 -mretpoline-external-thunk -fno-plt '-Wl,/w/my obj/thunks.o' -Wl,-z,now -Wl,-z,relro -Qunused-arguments",
            "CXX=clang++-14 -mretpoline-external-thunk -fno-plt '-Wl,/w/my obj/thunks.o' -Wl,-z,now -Wl,-z,relro -Qunused-arguments"],
            MakeBuild.Arguments(s, "/src", 2, ["lib"]));
        Assert.Contains("set(CMAKE_C_STANDARD_LIBRARIES \"'/w/my obj/thunks.o' -Wl,-z,now -Wl,-z,relro\")", CMakeProject.ToolchainFile(s));
        // Disabled: plain compilers, no thunks, nothing else.
        Assert.Equal("set(CMAKE_C_COMPILER \"clang-14\")\nset(CMAKE_CXX_COMPILER \"clang++-14\")\n",
            string.Concat(CMakeProject.ToolchainFile(s with { RetpolineEnabled = false }).Split('\n').Skip(1).Select(l => l.Length > 0 ? l + "\n" : "")));
    }

    [Fact]
    public void Ctest_JUnit_report_gives_each_test_its_outcome_output_and_message()
    {
        Preconditions.Require("cmake", "ctest");
        Write("src/CMakeLists.txt", """
            cmake_minimum_required(VERSION 3.16)
            project(t NONE)
            enable_testing()
            add_test(NAME passes COMMAND ${CMAKE_COMMAND} -E echo hello)
            add_test(NAME fails COMMAND ${CMAKE_COMMAND} -E false)
            add_test(NAME skipped COMMAND ${CMAKE_COMMAND} -E false)
            set_tests_properties(skipped PROPERTIES DISABLED TRUE)

            """);
        string build = Path.Combine(dir, "b");
        NativeToolchain.Run("cmake", ["-S", Path.Combine(dir, "src"), "-B", build], dir).EnsureSuccess();
        var (results, step) = CTestResults.Run("ctest", build, 2, Path.Combine(dir, "out", "junit.xml"));
        Assert.True(step.Ok, step.Output);
        var byName = results!.ToDictionary(r => r.Name);
        Assert.Equal(["fails", "passes", "skipped"], byName.Keys.Order());
        Assert.Equal((TestOutcome.Passed, "hello\n", (string?)null), (byName["passes"].Outcome, byName["passes"].Output, byName["passes"].Message));
        Assert.Equal(TestOutcome.Failed, byName["fails"].Outcome);
        Assert.Equal("ctest reports the test failed (non-zero exit, a FAIL_REGULAR_EXPRESSION match or a timeout)", byName["fails"].Message);
        Assert.Equal(TestOutcome.Skipped, byName["skipped"].Outcome);
    }
}
