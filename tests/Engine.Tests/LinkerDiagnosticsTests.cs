using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// What GNU ld (through gcc 12) and lld 14 (through clang-14) really print for undefined and duplicate symbols, parsed
/// into one diagnostic per reference at the file and line the linker named: GNU ld names the function only before the
/// first reference of each function, lld prints a block per symbol.
/// </summary>
public sealed class LinkerDiagnosticsTests : IDisposable
{
    readonly TempDirectory dir = new("rpl-ld-");

    public void Dispose() => dir.Dispose();

    // Three references in f (lines 3, 4, 5), one in g (line 7).
    const string Callers = "void x(void); void y(void);\nvoid f(void) {\n  x();\n  y();\n  x();\n}\nvoid g(void) { y(); }\nint main(void) { f(); g(); return 0; }\n";

    public static TheoryData<string> Linkers => new() { "gcc", "clang-lld" };

    List<CompilerDiagnostic> Link(string linker, bool debug, params (string name, string text)[] sources)
    {
        var (driver, flags, family) = linker == "gcc"
            ? (NativeToolchain.Gcc, Array.Empty<string>(), CompilerFamily.Gcc)
            : (NativeToolchain.Clang, new[] { "-fuse-ld=lld" }, CompilerFamily.Clang);
        if (linker != "gcc") _ = NativeToolchain.Lld; // installed, or the test says what to install
        var objects = sources.Select(s => NativeToolchain.Compile(driver, dir.Write(s.name, s.text), dir[s.name + ".o"], debug ? ["-g"] : [])).ToList();
        var r = NativeToolchain.Run(driver, [.. flags, .. objects, "-o", dir["a.out"]]);
        Assert.NotEqual(0, r.ExitCode);
        return CompilerDiagnostics.Parse(r.StdErr + r.StdOut, family);
    }

    [Theory]
    [MemberData(nameof(Linkers))]
    public void Every_undefined_reference_is_reported_at_its_own_source_line(string linker)
    {
        var d = Link(linker, debug: true, ("a.c", Callers));
        string source = dir["a.c"];
        Assert.All(d, x => Assert.Equal(("LD", Severity.Error, source), (x.Code, x.Severity, x.File)));
        // GNU ld reports in link order; lld groups the references by symbol.
        var expected = linker == "gcc"
            ? new[] { (3, "x", "f"), (4, "y", "f"), (5, "x", "f"), (7, "y", "g") }
            : new[] { (3, "x", "f"), (5, "x", "f"), (4, "y", "f"), (7, "y", "g") };
        Assert.Equal(expected.Length, d.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            var (line, symbol, function) = expected[i];
            Assert.Equal(line, d[i].Line);
            string text = linker == "gcc" ? $"undefined reference to `{symbol}'" : $"undefined symbol: {symbol}";
            Assert.StartsWith($"{text} (in function '{function}' of {dir["a.c.o"]})", d[i].Message);
        }
    }

    [Theory]
    [MemberData(nameof(Linkers))]
    public void Without_line_info_each_reference_names_its_file_and_function(string linker)
    {
        var d = Link(linker, debug: false, ("a.c", Callers));
        Assert.Equal(4, d.Count);
        // GNU ld names the source from the object's file symbol, lld the source or the object.
        Assert.All(d, x => Assert.Contains(x.File, new[] { "a.c", dir["a.c.o"] }));
        Assert.All(d, x => Assert.Equal(0, x.Line));
        Assert.Equal(3, d.Count(x => x.Message.Contains("in function 'f'", StringComparison.Ordinal)));
        Assert.Equal(1, d.Count(x => x.Message.Contains("in function 'g'", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(Linkers))]
    public void A_duplicate_definition_is_reported_at_the_source_line(string linker)
    {
        var d = Link(linker, debug: true, ("m.c", "int dup = 1;\nint main(void) { return 0; }\n"), ("d.c", "\nint dup = 2;\n"));
        Assert.NotEmpty(d);
        Assert.All(d, x => Assert.Equal("LD", x.Code));
        Assert.Contains(d, x => x.File == dir["d.c"] && x.Line == 2 && x.Message.Contains("dup", StringComparison.Ordinal));
        Assert.DoesNotContain(d, x => x.File is null);
    }

    [Theory]
    [MemberData(nameof(Linkers))]
    public void A_missing_main_is_attributed_to_the_startup_object(string linker)
    {
        var d = Link(linker, debug: true, ("lib.c", "int helper(void) { return 1; }\n"));
        var only = Assert.Single(d);
        Assert.EndsWith("Scrt1.o", only.File);
        Assert.Contains("main", only.Message);
        Assert.Contains("'_start'", only.Message);
    }

    [Fact]
    public void Lld_notes_and_repeat_counts_stay_on_their_references()
    {
        const string output = """
            ld.lld: error: undefined symbol: x
            >>> referenced by a.c:3 (./src/a.c:3)
            >>>               obj/a.c.o:(f)
            >>> referenced by b.c:9 (./src/b.c:9)
            >>>               obj/b.c.o:(h)
            >>> referenced 4 more times
            >>> did you mean: xx
            >>> defined in: obj/c.c.o
            clang: error: linker command failed with exit code 1 (use -v to see invocation)
            """;
        var d = CompilerDiagnostics.Parse(output, CompilerFamily.Clang);
        Assert.Equal(
        [
            new CompilerDiagnostic(Severity.Error, "./src/a.c", 3, 0, "LD", "undefined symbol: x (in function 'f' of obj/a.c.o) (note: did you mean: xx) (note: defined in: obj/c.c.o)"),
            new CompilerDiagnostic(Severity.Error, "./src/b.c", 9, 0, "LD", "undefined symbol: x (in function 'h' of obj/b.c.o) (referenced 4 more times) (note: did you mean: xx) (note: defined in: obj/c.c.o)"),
        ], d);
    }

    // GCC's -fno-plt call of an external function from position-dependent code goes through its memory-operand thunk
    // (`push puts@GOTPCREL(%rip); jmp __x86_indirect_thunk`), even with -mindirect-branch-register.
    [Fact]
    public void Position_dependent_fno_plt_code_needing_the_memory_thunk_is_RPL0215_naming_the_fix()
    {
        string[] mitigation = ["-O2", "-fno-plt", "-mindirect-branch=thunk-extern", "-mfunction-return=thunk-extern", "-mindirect-branch-register"];
        string main = NativeToolchain.Compile(NativeToolchain.Gcc, dir.Write("m.c", "int puts(const char *);\nint main(void) { puts(\"hi\"); return 0; }\n"),
            dir["m.o"], ["-fno-pie", .. mitigation]);
        string thunks = NativeToolchain.Compile(NativeToolchain.Gcc, NativeToolchain.ThunksSource, dir["thunks.o"]);
        var r = NativeToolchain.Run(NativeToolchain.Gcc, ["-no-pie", main, thunks, "-o", dir["a.out"]]);
        Assert.NotEqual(0, r.ExitCode);

        var d = Assert.Single(CompilerDiagnostics.Parse(r.StdErr + r.StdOut, CompilerFamily.Gcc));
        Assert.Equal(("RPL0215", Severity.Error, "m.c"), (d.Code, d.Severity, d.File)); // the object's FILE symbol: no -g
        Assert.Equal($"undefined reference to `__x86_indirect_thunk' (in function 'main' of {dir["m.o"]}) (GCC's thunk for a branch through memory, " +
            "which it emits for -fno-plt calls in position-dependent code: build the objects position-independent, -fPIE or -fPIC, " +
            "which is GCC's default on Debian; remove -fno-pie from CFlags/CxxFlags)", d.Message);

        // The same source built position-independent calls a register thunk and links.
        string pic = NativeToolchain.Compile(NativeToolchain.Gcc, dir["m.c"], dir["m-pie.o"], ["-fPIE", .. mitigation]);
        Assert.Equal(0, NativeToolchain.Run(NativeToolchain.Gcc, [pic, thunks, "-o", dir["pie.out"]]).ExitCode);
    }
}
