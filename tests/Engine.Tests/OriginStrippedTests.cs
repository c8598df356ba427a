using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Stripped files: a correctly mitigated binary and its `strip` twin (an executable by gcc + GNU ld and by clang +
/// lld; a shared library by `strip --strip-unneeded`) get the same verdict and the same count per class, crt code
/// recognised without symbols; code that really is unmitigated stays a finding; a PLT caller is named only when known.
/// </summary>
public sealed class OriginStrippedTests(OriginStrippedTests.Programs p) : IClassFixture<OriginStrippedTests.Programs>
{
    static string Classes(VerifyReport r) => string.Join(", ", r.Findings.GroupBy(f => f.Class).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}"));

    [Theory]
    [InlineData("gcc-exe", "6 ToolchainStartup")]
    [InlineData("lld-exe", "6 ToolchainStartup")]
    [InlineData("gcc-so", "5 ToolchainStartup")]
    public void A_stripped_twin_gets_the_verdict_and_the_class_counts_of_the_unstripped_file(string name, string classes)
    {
        var full = Verifier.Verify(p.Dir[name]);
        var stripped = Verifier.Verify(p.Dir[name + ".stripped"]);
        Assert.False(full.HasErrors);
        Assert.False(stripped.HasErrors);
        Assert.Equal(classes, Classes(full));
        Assert.Equal(classes, Classes(stripped));
        // Each crt branch is recognised as the function it is, and says so.
        Assert.All(stripped.Findings.Where(f => f.Detail?.EndsWith(", recognised without symbols") == true),
            f => Assert.Matches(@"^toolchain startup code: (_init|_start|deregister_tm_clones|register_tm_clones), recognised without symbols$", f.Detail));
        Assert.Equal(full.Findings.Count(f => f.Detail is null && f.Class == FindingClass.ToolchainStartup),
            stripped.Findings.Count(f => f.Detail?.EndsWith(", recognised without symbols") == true));
        Assert.Contains(stripped.Findings, f => f.Detail == "called from __do_global_dtors_aux");
        // The Generic thunks are found by their bodies (the return thunk's `ret; int3` is too common to be one).
        Assert.Equal(30, full.Thunks.Count(t => t.Form == ThunkForm.Generic));
        Assert.Equal(full.Thunks.Where(t => t.Form == ThunkForm.Generic).Select(t => (t.Address, t.Register)),
            stripped.Thunks.Select(t => (t.Address, t.Register)));
    }

    [Fact]
    public void Unmitigated_code_in_a_stripped_file_stays_a_finding_and_its_PLT_callers_are_counted_not_guessed()
    {
        var full = Verifier.Verify(p.Dir["plain-so"]);
        var stripped = Verifier.Verify(p.Dir["plain-so.stripped"]);
        Assert.Equal(Classes(full), Classes(stripped));
        Assert.True(stripped.HasErrors);
        Assert.Equal("called from plain_print", Assert.Single(full.Findings, f => f.Function == "puts@plt").Detail);
        var puts = Assert.Single(stripped.Findings, f => f.Function == "puts@plt");
        Assert.Equal((FindingClass.Plt, "called from 1 call site(s) in code without symbols"), (puts.Class, puts.Detail));
        Assert.Equal(full.Findings.Count(f => f.Class == FindingClass.UserCode), stripped.Findings.Count(f => f.Class == FindingClass.UserCode));
    }

    public sealed class Programs : IDisposable
    {
        public TempDirectory Dir { get; } = new("rpl-stripped-");
        static readonly string[] Gcc = ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fno-plt", "-Wl,-z,now"];

        public Programs()
        {
            Preconditions.Require("gcc", "clang-14", "ld.lld-14", "strip");
            string app = Dir.Write("app.c", """
                #include <stdio.h>
                typedef long (*op)(long);
                static long inc(long x) { return x + 1; }
                static long dbl(long x) { return x * 2; }
                op ops[] = { inc, dbl };
                __attribute__((noinline)) long apply(int i, long x) { return 3 + ops[i & 1](x); }
                int main(int argc, char **argv) { (void)argv; printf("%ld\n", apply(argc, 20)); return 0; }
                """);
            string lib = Dir.Write("lib.c", """
                typedef long (*op)(long);
                static long neg(long x) { return -x; }
                op lib_ops[] = { neg, neg };
                long lib_apply(int i, long x) { return 5 * lib_ops[i & 1](x); }
                """);
            string plain = Dir.Write("plain.c", """
                #include <stdio.h>
                typedef long (*op)(long);
                static long neg(long x) { return -x; }
                op plain_ops[] = { neg, neg };
                long plain_apply(int i, long x) { return 5 * plain_ops[i & 1](x); }
                void plain_print(const char *s) { puts(s); }
                """);
            NativeToolchain.Link(NativeToolchain.Gcc, [app, NativeToolchain.ThunksSource], Dir["gcc-exe"], Gcc);
            NativeToolchain.Link(NativeToolchain.Clang, [app, NativeToolchain.ThunksSource], Dir["lld-exe"],
                ["-O2", "-mretpoline-external-thunk", "-fno-plt", "-Wl,-z,now", "-fuse-ld=lld"]);
            NativeToolchain.Link(NativeToolchain.Gcc, [lib, NativeToolchain.ThunksSource], Dir["gcc-so"], [.. Gcc, "-fPIC", "-shared"]);
            // No retpoline flags, lazy PLT: an unmitigated library as a third party might ship it.
            NativeToolchain.Link(NativeToolchain.Gcc, [plain], Dir["plain-so"], ["-O2", "-fPIC", "-shared"]);
            foreach (var (name, mode) in new[] { ("gcc-exe", "--strip-all"), ("lld-exe", "--strip-all"), ("gcc-so", "--strip-unneeded"), ("plain-so", "--strip-unneeded") })
                NativeToolchain.Run(NativeToolchain.Strip, [mode, "-o", Dir[name + ".stripped"], Dir[name]]).EnsureSuccess();
            Assert.Equal("43\n", FixtureSet.RunProgram(Dir["gcc-exe.stripped"]));
            Assert.Equal("43\n", FixtureSet.RunProgram(Dir["lld-exe.stripped"]));
        }

        public void Dispose() => Dir.Dispose();
    }
}
