using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Where findings come from, end to end with the packed SDK: shared libraries that call their own exported functions
/// (Clang's PLT calls and the flag that removes them).
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
            @"the library calls its own exported function through its PLT so it can be interposed: compile with -fno-semantic-interposition (Clang; GCC: -fno-plt) or link with -Wl,-Bsymbolic-functions " +
            @"\(waive: RetpolineAllow ""helper@plt""\)$", error);
    }
}
