using System.Text.RegularExpressions;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>What the build log calls a native project: the platform it builds for, never the managed netstandard2.0 underneath.</summary>
public sealed class TerminalLoggerTests
{
    static string Plain(string output) => Regex.Replace(output, @"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[78]", "").Replace("\r", "\n");

    [Fact]
    public void The_terminal_logger_and_minimal_verbosity_show_linux_x64_and_each_output()
    {
        var p = SdkPackage.Instance.NewProject("tl-label")
            .Write("mathx/mathx.nativeproj", Sources.Project("Library")).Write("mathx/mathx.c", "long mathx_answer(void) { return 42; }\n")
            .Write("app/app.nativeproj", Sources.Project("Exe", "<ItemGroup><ProjectReference Include=\"../mathx/mathx.nativeproj\" /></ItemGroup>"))
            .Write("app/main.c", "long mathx_answer(void);\nint main(void) { return mathx_answer() == 42 ? 0 : 1; }\n");
        var tl = p.Dotnet("build", "app/app.nativeproj", "-tl:on", "-nologo");
        Assert.True(tl.ExitCode == 0, tl.Output);
        string output = Plain(tl.Output);
        Assert.Matches(@"(?m)^\s*mathx linux-x64 succeeded", output);
        Assert.Matches(@"(?m)^\s*app linux-x64 succeeded", output);
        Assert.DoesNotContain("netstandard", output);

        var minimal = p.Dotnet("build", "app/app.nativeproj", "-tl:off", "-v:m", "-nologo");
        Assert.True(minimal.ExitCode == 0, minimal.Output);
        Assert.Contains($"mathx -> {p.PathOf("mathx/bin/Debug/libmathx.so")}", minimal.Output);
        Assert.Contains($"app -> {p.PathOf("app/bin/Debug/app")}", minimal.Output);
        Assert.DoesNotContain("netstandard", minimal.Output);
    }
}
