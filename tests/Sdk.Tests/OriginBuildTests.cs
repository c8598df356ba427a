using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Where findings come from, end to end with the packed SDK: shared libraries that call their own exported functions
/// (Clang's PLT calls and the flag that removes them); a prebuilt, unmitigated static archive linked into a project,
/// its findings named by the link's map and waived by one Archive waiver.
/// </summary>
public sealed class OriginBuildTests(ITestOutputHelper log)
{
    static SdkPackage Sdk => SdkPackage.Instance;

    ProcessOutcome Build(TestProject p, string project, params string[] args)
    {
        var r = p.Build(project, args);
        log.WriteLine(r.Output);
        return r;
    }

    /// <summary>An exported function that calls another exported function of the same file, as zlib's adler32 does.</summary>
    const string SelfCallingLibraryC = """
        int helper(int x) { return x * 3; }
        int api(int x) { return helper(x) + 1; }
        """;

    /// <summary>A third party's libthird.a, built with plain gcc and ar (no retpoline flags), copied into vendor/.</summary>
    internal static void AddPrebuiltArchive(TestProject p)
    {
        using var build = new Retpoline.Tests.TempDirectory("rpl-third-");
        string source = build.Write("third.c", """
            typedef long (*op)(long);
            static long inc(long x) { return x + 1; }
            static long dbl(long x) { return x * 2; }
            op third_ops[] = { inc, dbl };
            __attribute__((noinline)) long third_apply(int i, long x) { return 3 + third_ops[i & 1](x); }
            """);
        string obj = Retpoline.Tests.NativeToolchain.Compile(Retpoline.Tests.NativeToolchain.Gcc, source, build["third.o"], ["-O2"]);
        Directory.CreateDirectory(p.PathOf("vendor"));
        Retpoline.Tests.NativeToolchain.Run("ar", ["rcsD", p.PathOf("vendor/libthird.a"), obj], build.Path).EnsureSuccess();
    }

    internal const string ThirdMainC = "#include <stdio.h>\nlong third_apply(int, long);\nint main(int argc, char **argv) { (void)argv; printf(\"%ld\\n\", third_apply(argc, 20)); return 0; }\n";

    [Fact]
    public void Findings_in_a_prebuilt_archive_name_the_member_and_one_Archive_waiver_passes_them()
    {
        var p = Sdk.NewProject("prebuilt-archive").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><LinkLibraries>vendor/libthird.a</LinkLibraries></PropertyGroup>"))
            .Write("main.c", ThirdMainC);
        AddPrebuiltArchive(p);
        var failed = Build(p, "app.nativeproj", "-v:n");
        Assert.Equal(1, failed.ExitCode);
        Assert.Matches(@"(?m)^\s*\S*gcc .* -Xlinker -Map=\S*/obj/Debug/app\.map$", failed.Output);
        var error = Assert.Single(Regex.Matches(failed.Output, @"error RPL0001: .*?Archive=""libthird\.a""\)").Select(m => m.Value).Distinct());
        Assert.Matches(@"^error RPL0001: indirect call 'call qword ptr \[[^\]]+\]' at 0x[0-9a-f]+ in function 'third_apply\+0x[0-9a-f]+' \(from libthird\.a\(third\.o\)\) " +
            @"is not routed through a retpoline thunk \(rebuild libthird\.a with the retpoline flags, it is not compiled by this build; or waive the archive: " +
            @"RetpolineAllow Include=""libthird"" Archive=""libthird\.a""\)$", error);

        p.Write("app.nativeproj", Sources.Project("Exe", """
            <PropertyGroup><LinkLibraries>vendor/libthird.a</LinkLibraries></PropertyGroup>
            <ItemGroup><RetpolineAllow Include="libthird" Archive="libthird.a" Reason="vendor library, rebuilt upstream with retpolines next release" /></ItemGroup>
            """));
        var passed = Build(p, "app.nativeproj", "-v:n");
        Assert.True(passed.ExitCode == 0, passed.Output);
        Assert.Matches(@"Retpoline: allowed UserCode 'call qword ptr \[[^\]]+\]' at 0x[0-9a-f]+ in 'third_apply\+0x[0-9a-f]+' from 'libthird\.a\(third\.o\)': vendor library, rebuilt upstream with retpolines next release", passed.Output);
        Assert.Equal("43", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void An_SLS_gap_in_a_prebuilt_archive_is_RPL0005_and_waived_by_its_archive_or_its_function()
    {
        // librets.a: hand-written `ret` with no int3 after it, as a third party's assembly has it.
        var p = Sdk.NewProject("sls-archive").Write("app.nativeproj", Sources.Project("Exe",
                "<PropertyGroup><RetpolineHardenSls>true</RetpolineHardenSls><LinkLibraries>vendor/librets.a</LinkLibraries></PropertyGroup>"))
            .Write("main.c", "#include <stdio.h>\nlong bare_ret(long);\nint main(void) { printf(\"%ld\\n\", bare_ret(1)); return 0; }\n");
        using (var build = new Retpoline.Tests.TempDirectory("rpl-rets-"))
        {
            string rets = build.Write("rets.S", "\t.text\n\t.globl bare_ret\n\t.type bare_ret,@function\nbare_ret:\n\tlea 1(%rdi), %rax\n\tret\n\t.size bare_ret,.-bare_ret\n\t.section .note.GNU-stack,\"\",@progbits\n");
            string obj = Retpoline.Tests.NativeToolchain.Compile(Retpoline.Tests.NativeToolchain.Gcc, rets, build["rets.o"]);
            Directory.CreateDirectory(p.PathOf("vendor"));
            Retpoline.Tests.NativeToolchain.Run("ar", ["rcsD", p.PathOf("vendor/librets.a"), obj], build.Path).EnsureSuccess();
        }
        var failed = Build(p, "app.nativeproj");
        Assert.Equal(1, failed.ExitCode);
        Assert.Matches(@"error RPL0005: 'ret' at 0x[0-9a-f]+ in function 'bare_ret\+0x4' is not followed by int3", failed.Output);

        foreach (var waiver in new[] { """Include="rets" Archive="librets.a" """, """Include="bare_ret" """ })
        {
            p.Write("app.nativeproj", Sources.Project("Exe", $"""
                <PropertyGroup><RetpolineHardenSls>true</RetpolineHardenSls><LinkLibraries>vendor/librets.a</LinkLibraries></PropertyGroup>
                <ItemGroup><RetpolineAllow {waiver} Reason="leaf returns a value it computed from its argument" /></ItemGroup>
                """));
            var passed = Build(p, "app.nativeproj", "-v:n");
            Assert.True(passed.ExitCode == 0, passed.Output);
            Assert.Matches(@"Retpoline: allowed SlsGap 'ret' at 0x[0-9a-f]+ in 'bare_ret\+0x4' from 'librets\.a\(rets\.o\)': leaf returns a value it computed from its argument", passed.Output);
        }
        Assert.Equal("2", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    /// <summary>25 functions, each with one call through a pointer: 25 RPL0001 when compiled without retpolines.</summary>
    static readonly string ManyC = string.Concat(Enumerable.Range(0, 25).Select(i => $"long f{i:d2}(long (*g)(long), long x) {{ return g(x) + {i}; }}\n"));

    static int Distinct(string output, string code) => Regex.Matches(output, $@"error {code}: [^\r\n]*").Select(m => m.Value).Distinct().Count();

    [Fact]
    public void Native_and_managed_projects_list_RetpolineMaxFindings_errors_per_file_and_say_how_many_more()
    {
        // -mindirect-branch=keep after the SDK's flags (the user's come last) turns the mitigation off for this file.
        var native = Sdk.NewProject("cap-native").Write("many.nativeproj", Sources.Project("Library", "<PropertyGroup><CFlags>-mindirect-branch=keep</CFlags></PropertyGroup>"))
            .Write("many.c", ManyC);
        var capped = Build(native, "many.nativeproj");
        Assert.Equal(1, capped.ExitCode);
        Assert.Equal(20, Distinct(capped.Output, "RPL0001"));
        Assert.Contains("Retpoline: bin/Debug/libmany.so: 5 more finding(s) not shown; `retpoline verify bin/Debug/libmany.so` lists them all", capped.Output);
        var all = Build(native, "many.nativeproj", "-p:RetpolineMaxFindings=0");
        Assert.Equal(25, Distinct(all.Output, "RPL0001"));
        Assert.DoesNotContain("more finding(s) not shown", all.Output);
        var bad = Build(native, "many.nativeproj", "-p:RetpolineMaxFindings=lots");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("error RPL0208: RetpolineMaxFindings must be a whole number from 0 (list every finding) up, not 'lots'", bad.Output);

        // A project that references the package and ships the same unmitigated library: the same cap, the same line.
        var managed = Sdk.NewProject("cap-managed").Write("app.csproj", Sources.CSharpProject("""
            <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                <None Include="prebuilt/libmany.so" CopyToOutputDirectory="PreserveNewest" Link="libmany.so" />
            """));
        Directory.CreateDirectory(managed.PathOf("prebuilt"));
        File.Copy(native.PathOf("bin/Debug/libmany.so"), managed.PathOf("prebuilt/libmany.so"));
        var three = Build(managed, "app.csproj", "-p:RetpolineMaxFindings=3");
        Assert.Equal(1, three.ExitCode);
        Assert.Equal(3, Distinct(three.Output, "RPL0001"));
        Assert.Contains("Retpoline: bin/Debug/net10.0/libmany.so: 22 more finding(s) not shown; `retpoline verify bin/Debug/net10.0/libmany.so` lists them all", three.Output);
    }

    [Theory]
    [InlineData("clang-14")]
    [InlineData("gcc")]
    public void A_shared_library_calling_its_own_export_verifies_clean_by_default(string cc)
    {
        Retpoline.Tests.Preconditions.Require(cc);
        var p = Sdk.NewProject("selfcall-" + cc).Write("self.nativeproj", Sources.Project("Library", $"<PropertyGroup><CC>{cc}</CC></PropertyGroup>"))
            .Write("self.c", SelfCallingLibraryC);
        var r = Build(p, "self.nativeproj", "-v:n");
        Assert.True(r.ExitCode == 0, r.Output);
        var compile = Assert.Single(Regex.Matches(r.Output, @"(?m)^\s*\S*(gcc|clang-14) .* -c \S*/self\.c.*$")).Value;
        // Only Clang needs it: GCC's -fno-plt already calls definitions through the GOT (and the thunk).
        Assert.Equal(cc == "clang-14", compile.Contains(" -fno-semantic-interposition "));
        Assert.DoesNotContain("helper@plt", Native.Disassemble(p.PathOf("bin/Debug/libself.so")));
    }

    [Fact]
    public void Clang_with_semantic_interposition_put_back_calls_its_own_export_through_the_PLT_RPL0002()
    {
        Retpoline.Tests.Preconditions.Require("clang-14");
        var p = Sdk.NewProject("selfcall-interposable").Write("self.nativeproj", Sources.Project("Library",
                "<PropertyGroup><CC>clang-14</CC><CFlags>-fsemantic-interposition</CFlags></PropertyGroup>"))
            .Write("self.c", SelfCallingLibraryC);
        var r = Build(p, "self.nativeproj");
        Assert.Equal(1, r.ExitCode);
        // The message names the fix for this cause, not the -fno-plt the build already passes.
        // The lazy PLT header is reached through that entry, so it is one too.
        var errors = Regex.Matches(r.Output, @"error RPL0002: .*?\(waive: RetpolineAllow ""[^""]*""\)").Select(m => m.Value).Distinct().ToList();
        Assert.Equal(2, errors.Count);
        Assert.Matches(@"^error RPL0002: PLT entry '\.plt\+0x6' at 0x[0-9a-f]+ .*\(lazy-binding PLT header, reached through the PLT entries user code calls\); link with -fno-plt", errors[0]);
        var error = errors[1];
        Assert.Matches(@"^error RPL0002: PLT entry 'helper@plt' at 0x[0-9a-f]+ \('jmp qword ptr \[0x[0-9a-f]+\]'\) is reached from user code \(called from api\); " +
            @"the library calls its own exported function through its PLT so it can be interposed: compile with -fno-semantic-interposition \(Clang; GCC: -fno-plt\) or link with -Wl,-Bsymbolic-functions " +
            @"\(waive: RetpolineAllow ""helper@plt""\)$", error);
    }
}
