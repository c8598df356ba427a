using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>`retpoline audit` on a mixed solution, with the tool built once from the repo and run as a process.</summary>
public sealed class AuditTests(ITestOutputHelper log)
{
    static SdkPackage Sdk => SdkPackage.Instance;

    static readonly Lazy<string> ToolDll = new(() =>
    {
        string artifacts = Path.Combine(Sdk.Root, "tool-artifacts");
        var r = Dotnet.Run(SdkPackage.RepoRoot, ["build", Path.Combine(SdkPackage.RepoRoot, "Tool", "Retpoline.Tool.csproj"), "-c", "Release", "--artifacts-path", artifacts, "-v:q", "-nologo"], Sdk.Packages);
        string dll = Path.Combine(artifacts, "bin", "Retpoline.Tool", "release", "retpoline.dll");
        if (r.ExitCode != 0 || !File.Exists(dll)) throw new InvalidOperationException($"building the tool failed ({r.ExitCode}):\n{r.Output}");
        return dll;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    ProcessOutcome Audit(TestProject p, params string[] args)
    {
        var r = p.Dotnet([ToolDll.Value, "audit", .. args]);
        log.WriteLine($"audit {string.Join(' ', args)} -> {r.ExitCode}\n{r.Output}");
        return r;
    }

    [Fact]
    public void Audit_reports_every_project_kind_binary_state_and_exit_code_of_a_mixed_solution()
    {
        var p = Sdk.NewProject("audit")
            .Write("native/mathx.nativeproj", Sources.Project("Library"))
            .Write("native/mathx.c", "long mathx_twice(long x) { return 2 * x; }\n")
            .Write("app/app.csproj", """
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework></PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                    <ProjectReference Include="../native/mathx.nativeproj" />
                  </ItemGroup>
                </Project>
                """)
            .Write("app/Program.cs", "System.Console.WriteLine(\"hi\");\n")
            .Write("plain/plain.csproj", """
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
                  <ItemGroup><None Include="libvendor.so" CopyToOutputDirectory="PreserveNewest" /></ItemGroup>
                </Project>
                """)
            // A .slnx written by hand, without the Type `dotnet sln add` would record for the .nativeproj.
            .Write("mixed.slnx", """
                <Solution>
                  <Project Path="native/mathx.nativeproj" />
                  <Project Path="app/app.csproj" />
                  <Project Path="plain/plain.csproj" />
                </Solution>
                """);
        Prebuilt.SharedLibrary(p, "plain/libvendor.so", "vendor_apply");

        // Nothing built or restored yet: a state, not an error; the unmitigated .so of a project without the
        // package is shown but only fails under --require-policy.
        var before = Audit(p, "mixed.slnx");
        Assert.Equal(0, before.ExitCode);
        Assert.Matches(@"native/mathx\.nativeproj\s+native\s+Generic\s+Error\s+native/bin/Debug/libmathx\.so \[output\] not built", before.Output);
        Assert.Matches(@"app/app\.csproj\s+managed-with-package\s+Generic\s+Error\s+native/bin/Debug/libmathx\.so \[ProjectReference mathx\.nativeproj\] not built", before.Output);
        Assert.Matches(@"plain/plain\.csproj\s+managed-without-package\s+-\s+-\s+plain/libvendor\.so \[None\] FAIL", before.Output);
        Assert.Contains("note: plain/plain.csproj ships native code without Retpoline.Sdk", before.Output);
        Assert.Equal(1, Audit(p, "mixed.slnx", "--require-policy").ExitCode);

        var build = p.Build("app/app.csproj");
        Assert.True(build.ExitCode == 0, build.Output);
        var after = Audit(p, "mixed.slnx", "--json", "--sarif", p.PathOf("audit.sarif"));
        Assert.Equal(0, after.ExitCode);
        using var json = JsonDocument.Parse(after.Output);
        var rows = json.RootElement.GetProperty("projects").EnumerateArray().ToDictionary(r => r.GetProperty("path").GetString()!);
        Assert.Equal("native", rows["native/mathx.nativeproj"].GetProperty("kind").GetString());
        Assert.Equal("PASS", rows["app/app.csproj"].GetProperty("binaries")[0].GetProperty("status").GetString());
        Assert.Equal("managed-without-package", rows["plain/plain.csproj"].GetProperty("kind").GetString());
        Assert.Contains("\"version\": \"2.1.0\"", File.ReadAllText(p.PathOf("audit.sarif")).Replace("\"version\":\"2.1.0\"", "\"version\": \"2.1.0\""));

        // The same unmitigated library shipped by the project under the policy: exit 1; exempted: exit 0.
        p.Write("app/app.csproj", File.ReadAllText(p.PathOf("app/app.csproj")).Replace("</ItemGroup>",
            "  <None Include=\"../plain/libvendor.so\" CopyToOutputDirectory=\"PreserveNewest\" />\n  </ItemGroup>"));
        Assert.Equal(1, Audit(p, "app/app.csproj").ExitCode);
        p.Write("app/app.csproj", File.ReadAllText(p.PathOf("app/app.csproj")).Replace("</ItemGroup>",
            "  <RetpolineExclude Include=\"libvendor.so\" Reason=\"vendor binary\" />\n  </ItemGroup>"));
        var exempt = Audit(p, "app/app.csproj");
        Assert.Equal(0, exempt.ExitCode);
        Assert.Contains("exempt (RetpolineExclude 'libvendor.so': vendor binary)", exempt.Output);

        Assert.Equal(2, Audit(p, "no-such.slnx").ExitCode);
    }
}
