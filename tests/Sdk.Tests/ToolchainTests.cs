using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>The engine's Toolchain/ pieces on their own: output parsing, dependency files, flag sets, probing.</summary>
public sealed class ToolchainTests
{
    [Fact]
    public void Gcc_errors_warnings_fatal_errors_and_notes_are_parsed_with_notes_attached()
    {
        const string output = """
            src/a.c: In function 'main':
            src/a.c:3:12: error: 'x' undeclared (first use in this function)
                3 |     return x;
                  |            ^
            src/a.c:3:12: note: each undeclared identifier is reported only once for each function it appears in
            src/b.c:2:27: warning: passing argument 1 of 'take' makes pointer from integer without a cast [-Wint-conversion]
            src/b.c:1:16: note: expected 'int *' but argument is of type 'int'
            src/c.c:1:10: fatal error: nope.h: No such file or directory
            compilation terminated.
            cc1: error: unrecognized command-line option '-mbogus'
            """;
        var d = CompilerDiagnostics.Parse(output, CompilerFamily.Gcc);
        Assert.Equal(4, d.Count);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, "src/a.c", 3, 12, "GCC",
            "'x' undeclared (first use in this function) (note: src/a.c:3: each undeclared identifier is reported only once for each function it appears in)"), d[0]);
        Assert.Equal(Severity.Warning, d[1].Severity);
        Assert.EndsWith("[-Wint-conversion] (note: src/b.c:1: expected 'int *' but argument is of type 'int')", d[1].Message);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, "src/c.c", 1, 10, "GCC", "nope.h: No such file or directory"), d[2]);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, null, 0, 0, "GCC", "unrecognized command-line option '-mbogus'"), d[3]);
    }

    [Fact]
    public void Clang_lines_get_the_clang_code()
    {
        var d = CompilerDiagnostics.Parse("x.cpp:4:1: error: expected ';' after struct\nclang-14: error: unknown argument: '-mbogus'", CompilerFamily.Clang);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, "x.cpp", 4, 1, "CLANG", "expected ';' after struct"), d[0]);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, null, 0, 0, "CLANG", "unknown argument: '-mbogus'"), d[1]);
        // clang's "linker command failed" is about the link, and only said on its own when ld said nothing parseable.
        Assert.Equal("LD", Assert.Single(CompilerDiagnostics.Parse("clang-14: error: linker command failed with exit code 1 (use -v to see invocation)", CompilerFamily.Clang)).Code);
    }

    [Fact]
    public void Linker_undefined_references_carry_file_line_and_function_and_collect2_is_dropped()
    {
        const string output = """
            /usr/bin/ld: /o/obj/Debug/main.c.o: in function `main':
            ./main.c:2: undefined reference to `missing_function'
            /usr/bin/ld: /usr/lib/x86_64-linux-gnu/Scrt1.o: in function `_start':
            (.text+0x17): undefined reference to `main'
            collect2: error: ld returned 1 exit status
            """;
        var d = CompilerDiagnostics.Parse(output, CompilerFamily.Gcc);
        Assert.Equal(2, d.Count);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, "./main.c", 2, 0, "LD", "undefined reference to `missing_function' (in function 'main' of /o/obj/Debug/main.c.o)"), d[0]);
        Assert.Equal(new CompilerDiagnostic(Severity.Error, "/usr/lib/x86_64-linux-gnu/Scrt1.o", 0, 0, "LD", "undefined reference to `main' (in function '_start')"), d[1]);
    }

    [Fact]
    public void Cf_protection_conflict_gets_its_own_code_and_the_fix()
    {
        var d = CompilerDiagnostics.Parse("a.c:1:1: error: '-mindirect-branch' and '-fcf-protection' are not compatible", CompilerFamily.Gcc);
        Assert.Equal(ToolchainCodes.CfProtectionConflict, Assert.Single(d).Code);
        Assert.Contains("remove -mindirect-branch=thunk", d[0].Message);
    }

    [Fact]
    public void Dependency_files_with_continuations_and_escaped_spaces_are_read()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("retpoline-dep-").FullName, "x.d");
        File.WriteAllText(path, "/o/x.c.o: /src/x.c /src/a\\ b.h \\\n /src/c.h\n/src/a\\ b.h:\n/src/c.h:\n");
        Assert.Equal(["/src/x.c", "/src/a b.h", "/src/c.h"], DepFile.Read(path));
        Assert.Null(DepFile.Read(path + ".missing"));
    }

    [Fact]
    public void Flag_sets_put_mitigation_first_and_user_flags_last()
    {
        var gcc = new CompilerInfo("gcc", CompilerFamily.Gcc, new Version(12, 2), "x86_64-linux-gnu", true, true, true, true);
        var s = new NativeSettings { Configuration = "Release", OutputType = "Library", ReturnThunk = true, Defines = ["A=1"], IncludeDirectories = ["/inc"], CFlags = ["-Wall"], CStandard = "c11" };
        Assert.Equal(["-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-mfunction-return=thunk-extern", "-fno-plt", "-O2", "-g", "-fPIC", "-std=c11",
            "-DA=1", "-I/inc", "-Wall", "-MMD", "-MF", "x.d", "-c", "x.c", "-o", "x.o"], FlagSet.Compile(gcc, s, "c", "x.c", "x.o", "x.d"));
        var clang = gcc with { Family = CompilerFamily.Clang };
        Assert.Equal(["-mretpoline-external-thunk", "-fno-plt", "-O0", "-g"], FlagSet.Compile(clang, new NativeSettings(), "c", "x.c", "x.o", "x.d").Take(4));
        Assert.DoesNotContain(FlagSet.Compile(gcc, new NativeSettings { RetpolineEnabled = false }, "c", "x.c", "x.o", "x.d"), f => f.StartsWith("-mindirect", StringComparison.Ordinal));
        Assert.Equal(["-shared", "-Wl,-soname,libm.so", "-fno-plt", "-Wl,-z,now", "-Wl,-z,relro", "a.o", "-o", "/out/libm.so", "-lpthread", "-Wl,--as-needed"],
            FlagSet.Link(new NativeSettings { OutputType = "Library", LinkLibraries = ["pthread"], LdFlags = ["-Wl,--as-needed"] }, ["a.o"], "/out/libm.so"));
        Assert.Equal(["-a", "b c", "d"], FlagSet.SplitFlags("-a 'b c'  d"));
    }

    [Fact]
    public void CC_is_read_as_make_reads_it_a_command_prefix_split_without_a_shell()
    {
        // Program, then the words that go before our arguments.
        Assert.Equal("gcc |", Split("gcc"));
        Assert.Equal("/usr/bin/gcc-12 |", Split("/usr/bin/gcc-12"));
        Assert.Equal("ccache | gcc", Split("ccache gcc"));
        Assert.Equal("distcc | gcc -m64", Split("  distcc gcc -m64 "));
        Assert.Equal("/opt/my tools/cc | -x", Split("'/opt/my tools/cc' -x"));
        Assert.Equal(["ccache", "gcc"], CompilerCommand.Parse("ccache gcc -m64").Programs);
        // A file that exists as named is one program, space or not (make would need it quoted; we do not).
        string spaced = Path.Combine(Directory.CreateTempSubdirectory("retpoline cc ").FullName, "my gcc");
        File.WriteAllText(spaced, "");
        Assert.Equal($"{spaced} |", Split(spaced));

        static string Split(string cc) { var c = CompilerCommand.Parse(cc); return $"{c.Program} |{string.Concat(c.Prefix.Select(w => " " + w))}"; }
    }

    [Fact]
    public void An_object_is_recompiled_when_the_compiler_build_changes_even_with_the_same_command()
    {
        // `apt-get upgrade` replaces gcc at the same path: the flags are the same, the code it generates may not be.
        string dir = Directory.CreateTempSubdirectory("retpoline-identity-").FullName;
        File.WriteAllText(Path.Combine(dir, "a.c"), "int a(int (*f)(void)) { return f(); }\n");
        var gcc = CompilerProbe.Probe("gcc", Path.Combine(dir, "probe"));
        var step = NativeCompiler.Plan(gcc, null, new NativeSettings(), "a.c", dir, Path.Combine(dir, "obj"));
        Assert.False(NativeCompiler.IsUpToDate(step, dir));
        Assert.True(NativeCompiler.Run(step, gcc.Family, dir).Succeeded);
        Assert.True(NativeCompiler.IsUpToDate(step, dir));
        Assert.Equal($"{step.CommandLine}\n# {gcc.VersionLine}", File.ReadAllText(step.CommandFile));

        var upgraded = gcc with { VersionLine = gcc.VersionLine + "+upgraded" };
        var same = NativeCompiler.Plan(upgraded, null, new NativeSettings(), "a.c", dir, Path.Combine(dir, "obj"));
        Assert.Equal(step.CommandLine, same.CommandLine);
        Assert.False(NativeCompiler.IsUpToDate(same, dir));
    }

    [Fact]
    public void Probing_gcc_and_clang_finds_family_version_target_and_flags()
    {
        string scratch = Directory.CreateTempSubdirectory("retpoline-probe-").FullName;
        var gcc = CompilerProbe.Probe("gcc", scratch);
        Assert.Equal(CompilerFamily.Gcc, gcc.Family);
        Assert.True(gcc.Version.Major >= 8);
        Assert.True(gcc.TargetsX86_64, gcc.Target);
        Assert.True(gcc.SupportsRetpoline && gcc.SupportsReturnThunk);
        Retpoline.Tests.Preconditions.Require("clang++-14");
        var clang = CompilerProbe.Probe("clang++-14", scratch, cxx: true);
        Assert.Equal((CompilerFamily.Clang, 14), (clang.Family, clang.Version.Major));
        Assert.True(clang.SupportsRetpoline);
        Assert.False(clang.SupportsReturnThunk); // Clang >= 15
        // The -v line names the build ("gcc version 12.2.0 (Debian 12.2.0-14+deb12u1)"), and survives the cache.
        Assert.StartsWith($"gcc version {gcc.Version.ToString(3)}", gcc.VersionLine);
        Assert.Equal(gcc, CompilerInfo.Deserialize(gcc.Serialize()));
        Assert.Null(CompilerInfo.Deserialize(string.Join('|', gcc.Serialize().Split('|')[..8]))); // an older cache: probe again
        var missing = Assert.Throws<ToolchainException>(() => CompilerProbe.Probe("no-such-cc", scratch));
        Assert.Equal(ToolchainCodes.CompilerNotFound, missing.Code);
    }
}
