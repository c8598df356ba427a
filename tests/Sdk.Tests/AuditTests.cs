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

    /// <summary>
    /// A project whose build passes only because of what audit used to ignore: a referenced native Exe (copied to the
    /// output), a RetpolineAllow that waives both its RPL0001 and, under RetpolineHardenSls, its RPL0005, and a
    /// RetpolineExclude by output-relative path. Audit must agree with the build, and so must a missing Reason.
    /// </summary>
    [Fact]
    public void Audit_agrees_with_the_build_on_Exe_references_Allow_HardenSls_and_relative_path_Exclude()
    {
        string trampolineWithBareRet = Sources.TrampolineS; // `ret` with no int3 after it: RPL0005 under HardenSls
        const string waivers = """
            <RetpolineAllow Include="trampoline" Reason="reviewed trampoline" />
            """;
        string app = Sources.CSharpProject($"""
            <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                <ProjectReference Include="../native/tool/tool.nativeproj" />
                <None Include="../vendor/libvendor.so" Link="plugins/libvendor.so" CopyToOutputDirectory="PreserveNewest" />
                <RetpolineExclude Include="plugins/libvendor.so" Reason="vendor binary, tracked in SEC-42" />
                {waivers}
            </ItemGroup>
            <PropertyGroup><RetpolineHardenSls>true</RetpolineHardenSls></PropertyGroup>
            <ItemGroup>
            """, "Exe");
        var p = Sdk.NewProject("audit-agrees")
            .Write("native/tool/tool.nativeproj", Sources.Project("Exe", $"<PropertyGroup><RetpolineHardenSls>true</RetpolineHardenSls></PropertyGroup><ItemGroup>{waivers}</ItemGroup>"))
            .Write("native/tool/main.c", Sources.TrampolineMainC)
            .Write("native/tool/tramp.S", trampolineWithBareRet)
            .Write("app/app.csproj", app)
            .Write("app/Program.cs", "System.Console.WriteLine(\"hi\");\n");
        Prebuilt.SharedLibrary(p, "vendor/libvendor.so", "vendor_apply");

        var build = p.Build("app/app.csproj", "-v:n");
        log.WriteLine(build.Output);
        Assert.True(build.ExitCode == 0, build.Output);
        Assert.Contains("allowed SlsGap 'ret'", build.Output);
        Assert.Contains("Retpoline: bin/Debug/net10.0/plugins/libvendor.so is exempt from verification (RetpolineExclude 'plugins/libvendor.so': vendor binary, tracked in SEC-42)", build.Output);
        Assert.Equal("seven=7", p.RunProgram("app/bin/Debug/net10.0/tool").Output.Trim());

        var audit = Audit(p, ".", "--json");
        Assert.Equal(0, audit.ExitCode);
        using (var json = JsonDocument.Parse(audit.Output))
        {
            var rows = json.RootElement.GetProperty("projects").EnumerateArray().ToDictionary(r => r.GetProperty("path").GetString()!);
            // What the project's RetpolineShippedBinaries target lists, where each file lands in its output.
            Assert.False(rows["app/app.csproj"].TryGetProperty("note", out var note), $"listed from evaluation: {note}");
            var binaries = rows["app/app.csproj"].GetProperty("binaries").EnumerateArray().ToDictionary(b => b.GetProperty("path").GetString()!);
            var tool = binaries["app/bin/Debug/net10.0/tool"];
            Assert.Equal("PASS", tool.GetProperty("status").GetString());
            Assert.Contains("1 SLS gap(s)", tool.GetProperty("detail").GetString()); // verified under the project's HardenSls
            Assert.Equal("exempt", binaries["app/bin/Debug/net10.0/plugins/libvendor.so"].GetProperty("status").GetString());
            var own = Assert.Single(rows["native/tool/tool.nativeproj"].GetProperty("binaries").EnumerateArray());
            Assert.Equal("PASS", own.GetProperty("status").GetString());
        }

        // Without the Reason the build stops with RPL0208, and audit says the same about the project (exit 2).
        p.Write("app/app.csproj", app.Replace(" Reason=\"reviewed trampoline\"", ""));
        var noReason = p.Build("app/app.csproj");
        log.WriteLine(noReason.Output);
        Assert.NotEqual(0, noReason.ExitCode);
        Assert.Contains("error RPL0208: RetpolineAllow 'trampoline' needs a Reason", noReason.Output);
        var bad = Audit(p, "app/app.csproj");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains($"retpoline: error RPL0208: {p.PathOf("app/app.csproj")}: RetpolineAllow 'trampoline' needs a Reason", bad.Output);
    }

    [Fact]
    public void Audit_of_a_folder_audits_every_project_under_it_recursively_whether_or_not_a_solution_is_there()
    {
        var p = Sdk.NewProject("audit-folder")
            .Write("one/one.csproj", Sources.CSharpProject(""))
            .Write("deep/er/two/two.nativeproj", Sources.Project("Library"))
            .Write("deep/er/two/two.c", "int two(void) { return 2; }\n")
            .Write("three/three.csproj", Sources.CSharpProject(""))
            // Build output and tool folders are not sources of projects.
            .Write("three/bin/Debug/stale/stale.csproj", Sources.CSharpProject(""))
            .Write("three/obj/generated.csproj", Sources.CSharpProject(""))
            .Write("node_modules/pkg/pkg.csproj", Sources.CSharpProject(""));

        var folder = Audit(p, ".");
        Assert.Equal(0, folder.ExitCode);
        Assert.Contains("3 project(s) found under the folder", folder.Output);
        Assert.Matches(@"(?m)^deep/er/two/two\.nativeproj\s+native\s+Generic\s+Error\s+deep/er/two/bin/Debug/libtwo\.so \[output\] not built", folder.Output);
        Assert.Matches(@"(?m)^one/one\.csproj\s+managed-without-package", folder.Output);
        Assert.Matches(@"(?m)^three/three\.csproj\s+managed-without-package", folder.Output);
        Assert.DoesNotContain("stale", folder.Output);
        Assert.DoesNotContain("generated", folder.Output);
        Assert.DoesNotContain("pkg.csproj", folder.Output);

        // A solution that lists only some of them does not narrow a folder audit; naming it does.
        p.Write("some.slnx", "<Solution>\n  <Project Path=\"one/one.csproj\" />\n</Solution>\n");
        Assert.Contains("3 project(s) found under the folder", Audit(p, ".").Output);
        var solution = Audit(p, "some.slnx");
        Assert.Contains("1 project(s),", solution.Output);
        Assert.DoesNotContain("two.nativeproj", solution.Output);
    }
}
