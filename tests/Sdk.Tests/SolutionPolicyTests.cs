using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// "One line holds a whole solution to the policy": the package declared once, in Directory.Build.props or
/// as a GlobalPackageReference in Directory.Packages.props, reaches every project of a solution, none of which
/// references it itself. Each C# project ships a native library a different way: a None item, a Content item, and a
/// ProjectReference to a native project built without retpolines.
/// </summary>
public sealed class SolutionPolicyTests(ITestOutputHelper log) : SdkTest(log)
{
    static string NativeLibrary(bool retpolines) => Sources.Project("Library", $"<PropertyGroup><RetpolineEnabled>{(retpolines ? "true" : "false")}</RetpolineEnabled></PropertyGroup>");

    /// <summary>Three C# projects and a native one; the prebuilt libraries come from plain gcc (or, mitigated, with
    /// GCC's retpoline flags).</summary>
    TestProject Solution(string name, bool mitigated, TestProject? existing = null)
    {
        var p = existing ?? Sdk.NewProject(name)
            .Write("alpha/alpha.csproj", Sources.CSharpProject("""<None Include="../prebuilt/libalpha.so" CopyToOutputDirectory="PreserveNewest" Link="libalpha.so" />"""))
            .Write("beta/beta.csproj", Sources.CSharpProject("""<Content Include="../prebuilt/libbeta.so" CopyToOutputDirectory="PreserveNewest" Link="native/libbeta.so" />"""))
            .Write("gamma/gamma.csproj", Sources.CSharpProject("""<ProjectReference Include="../native/gammanative.nativeproj" />"""))
            .Write("native/gamma.c", Prebuilt.DispatchC("gamma_apply"))
            .Write("all.slnx", """
                <Solution>
                  <Project Path="alpha/alpha.csproj" />
                  <Project Path="beta/beta.csproj" />
                  <Project Path="gamma/gamma.csproj" />
                  <Project Path="native/gammanative.nativeproj" Type="13b669be-bb05-4ddf-9536-439f39a36129" />
                </Solution>
                """);
        p.Write("native/gammanative.nativeproj", NativeLibrary(retpolines: mitigated));
        Prebuilt.SharedLibrary(p, "prebuilt/libalpha.so", "alpha_apply", mitigated);
        Prebuilt.SharedLibrary(p, "prebuilt/libbeta.so", "beta_apply", mitigated);
        return p;
    }

    /// <summary>`file : error RPL0001: … in function 'fn+0x…' … [/…/project]`, the finding attributed to its project.</summary>
    static void AssertFinding(string output, string file, string function, string project) =>
        Assert.Matches(new Regex($@"(?m)^\s*(?:\d+>)?{Regex.Escape(file)} ?: error RPL0001: indirect (call|jump) '[^']+' at 0x[0-9a-f]+ in function '{function}\+0x[0-9a-f]+' is not routed through a retpoline thunk.*\[\S*/{Regex.Escape(project)}\]"), output);

    void AssertEveryProjectIsHeldToThePolicy(TestProject p)
    {
        var bad = p.Build("all.slnx");
        Log.WriteLine(bad.Output);
        Assert.NotEqual(0, bad.ExitCode);
        AssertFinding(bad.Output, "bin/Debug/net10.0/libalpha.so", "alpha_apply", "alpha/alpha.csproj");
        AssertFinding(bad.Output, "bin/Debug/net10.0/native/libbeta.so", "beta_apply", "beta/beta.csproj");
        // Built with -g, so the finding in the native project's library is reported at its source line, with the
        // library in brackets; the native project itself (RetpolineEnabled=false) checks nothing.
        Assert.Matches(new Regex(@"(?m)gamma\.c\(5\): error RPL0001: indirect (call|jump) '[^']+' at 0x[0-9a-f]+ in function 'gamma_apply\+0x[0-9a-f]+' .*\[bin/Debug/net10\.0/libgammanative\.so\] \[\S*/gamma/gamma\.csproj\]"), bad.Output);
        Assert.DoesNotMatch(@"error RPL\d+: .*gammanative\.nativeproj\]", bad.Output);

        // The same solution with mitigated libraries builds, and every project verified what it ships.
        Solution("", mitigated: true, existing: p);
        var ok = Must(p.Build("all.slnx", "-v:n"), "dotnet build of the mitigated solution");
        Assert.Equal(3, Regex.Matches(ok.Output, @"Retpoline: output policy: 1 ELF file\(s\) pass \(1 verified now, 0 unchanged since verified\)").Count);
        foreach (string shipped in new[] { "alpha/bin/Debug/net10.0/libalpha.so", "beta/bin/Debug/net10.0/native/libbeta.so", "gamma/bin/Debug/net10.0/libgammanative.so" })
            Assert.Contains($"{p.PathOf(shipped)}: PASS", ok.Output);
    }

    [Fact]
    public void Directory_Build_props_holds_every_project_of_a_solution_to_the_policy()
    {
        var p = Solution("dbp-solution", mitigated: false).Write("Directory.Build.props", """
            <Project>
              <ItemGroup Condition="'$(MSBuildProjectExtension)' != '.nativeproj'">
                <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
              </ItemGroup>
            </Project>
            """);
        AssertEveryProjectIsHeldToThePolicy(p);
    }

    [Fact]
    public void GlobalPackageReference_in_Directory_Packages_props_holds_every_project_of_a_solution_to_the_policy()
    {
        var p = Solution("gpr-solution", mitigated: false).Write("Directory.Packages.props", """
            <Project>
              <PropertyGroup><ManagePackageVersionsCentrally>true</ManagePackageVersionsCentrally></PropertyGroup>
              <ItemGroup>
                <GlobalPackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" />
              </ItemGroup>
            </Project>
            """);
        AssertEveryProjectIsHeldToThePolicy(p);
    }
}
