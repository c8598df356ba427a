using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Third-party shared libraries as a solution receives them: built by the test with plain gcc, outside any SDK
/// project. Unmitigated ones have an indirect jump (a jump through a function-pointer table, which -O2 turns into
/// `jmp *(%rdx,%rax,8)`) in the exported function the C names; mitigated ones use GCC's own retpoline thunks.
/// </summary>
public static class Prebuilt
{
    /// <summary>C for a library whose exported function <paramref name="function"/> calls through a table.</summary>
    public static string DispatchC(string function) => $$"""
        typedef long (*op)(long);
        static long inc(long x) { return x + 1; }
        static long dbl(long x) { return x * 2; }
        op {{function}}_ops[] = { inc, dbl };
        long {{function}}(int i, long x) { return {{function}}_ops[i & 1](x); }
        """;

    /// <summary>`gcc -shared -fPIC -O2` of <see cref="DispatchC"/>; with <paramref name="mitigated"/>, also
    /// `-mindirect-branch=thunk -mindirect-branch-register -fno-plt` (GCC's inline thunks: verify passes it).</summary>
    public static string SharedLibrary(TestProject p, string relativePath, string function, bool mitigated = false)
    {
        string source = p.PathOf($"prebuilt-src/{function}.c");
        Directory.CreateDirectory(Path.GetDirectoryName(source)!);
        File.WriteAllText(source, DispatchC(function));
        string output = p.PathOf(relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        string[] flags = mitigated ? ["-mindirect-branch=thunk", "-mindirect-branch-register", "-fno-plt"] : [];
        var gcc = Dotnet.Exec("gcc", p.Directory, ["-shared", "-fPIC", "-O2", .. flags, "-o", output, source]);
        Assert.True(gcc.ExitCode == 0, gcc.Output);
        return output;
    }
}
