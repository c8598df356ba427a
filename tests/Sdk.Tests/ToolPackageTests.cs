using System.IO.Compression;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// `retpoline` as users install it: `dotnet pack` of the tool, `dotnet tool install --tool-path`, and verify and audit
/// through the installed command, which on linux-x64 is the NativeAOT build (audit delegated to the
/// framework-dependent build shipped beside it).
/// </summary>
public sealed class ToolPackageTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void The_installed_tool_is_the_NativeAOT_build_and_verifies_and_audits()
    {
        var p = Sdk.NewProject("tool");
        string feed = p.PathOf("tool-feed");
        // The user's package folder: the NativeAOT compiler and the tool's dependencies are restored there once.
        Must(Dotnet.Exec("dotnet", SdkPackage.RepoRoot, ["pack", Path.Combine(SdkPackage.RepoRoot, "Tool", "Retpoline.Tool.csproj"), "-c", "Release", "-o", feed,
            "--artifacts-path", p.PathOf("tool-artifacts"), "-v:q", "-nologo"], timeout: TimeSpan.FromMinutes(20)), "dotnet pack of the tool");

        // Three packages: the pointer, the NativeAOT linux-x64 build (with audit/), the framework-dependent fallback.
        using (var pointer = ZipFile.OpenRead(Path.Combine(feed, "Retpoline.Tool.1.0.0.nupkg")))
        {
            string settings = new StreamReader(pointer.Entries.Single(e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal)).Open()).ReadToEnd();
            Assert.Contains("RuntimeIdentifier=\"linux-x64\"", settings);
            Assert.Contains("RuntimeIdentifier=\"any\"", settings);
        }
        using (var native = ZipFile.OpenRead(Path.Combine(feed, "Retpoline.Tool.linux-x64.1.0.0.nupkg")))
        {
            var names = native.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains("tools/any/linux-x64/retpoline", names);
            Assert.Contains("tools/any/linux-x64/audit/retpoline.dll", names);
            Assert.Contains("tools/any/linux-x64/audit/Microsoft.Build.Locator.dll", names);
            Assert.DoesNotContain(names, n => n.Contains("Microsoft.Build.dll", StringComparison.Ordinal));
            Assert.DoesNotContain(names, n => n.EndsWith(".dbg", StringComparison.Ordinal) || n.EndsWith(".pdb", StringComparison.Ordinal));
        }
        Assert.True(File.Exists(Path.Combine(feed, "Retpoline.Tool.any.1.0.0.nupkg")));

        string tools = p.PathOf("tools");
        Must(p.Dotnet("tool", "install", "--tool-path", tools, "--add-source", feed, "Retpoline.Tool"), "dotnet tool install");
        string retpoline = Path.Combine(tools, "retpoline");
        // NativeAOT: a native executable that needs no .NET host (an apphost names libhostfxr.so).
        string target = new FileInfo(retpoline).ResolveLinkTarget(true)?.FullName ?? retpoline;
        var bytes = File.ReadAllBytes(target);
        Assert.True(bytes.Length > 1 << 20, $"{target} is {bytes.Length} bytes: not the NativeAOT build");
        Assert.Equal(-1, bytes.AsSpan().IndexOf("libhostfxr.so"u8));

        // verify through the installed command: a mitigated program passes, an unmitigated one fails.
        string thunks = Retpoline.Tests.NativeToolchain.ThunksSource;
        string main = p.Write("fixture/dispatch.c", Sources.DispatchC).PathOf("fixture/dispatch.c");
        Must(Dotnet.Exec("gcc", p.Directory, ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fno-plt", "-Wl,-z,now", main, thunks, "-o", p.PathOf("fixture/good")]), "gcc");
        Must(Dotnet.Exec("gcc", p.Directory, ["-O2", main, "-o", p.PathOf("fixture/bad")]), "gcc");
        var good = Dotnet.Exec(retpoline, p.Directory, ["verify", p.PathOf("fixture/good")]);
        Assert.True(good.ExitCode == 0, good.Output);
        Assert.Contains("PASS", good.Output);
        var bad = Dotnet.Exec(retpoline, p.Directory, ["verify", p.PathOf("fixture/bad")]);
        Assert.True(bad.ExitCode == 1, bad.Output);
        Assert.Contains("RPL0001", bad.Output);

        // audit through the same command: evaluated by the framework-dependent build with the SDK's MSBuild.
        p.Write("native/mathx.nativeproj", Sources.Project("Library")).Write("native/mathx.c", "long mathx_twice(long x) { return 2 * x; }\n");
        var audit = Dotnet.Exec(retpoline, p.Directory, ["audit", "native/mathx.nativeproj"], Sdk.Packages, Sdk.Environment);
        Assert.True(audit.ExitCode == 0, audit.Output);
        Assert.Matches(@"mathx\.nativeproj\s+native\s+Generic\s+Error\s+bin/Debug/libmathx\.so \[output\] not built", audit.Output);
    }
}
