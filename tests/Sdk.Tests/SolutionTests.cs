using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Solutions that mix our native projects with C#: a C# project P/Invokes a native Library it references,
/// and a project that references the package holds every native binary in its output to the policy.
/// </summary>
public sealed class SolutionTests(ITestOutputHelper log) : SdkTest(log)
{
    const string MathxC = """
        typedef long (*f)(long, long);
        static long add(long a, long b) { return a + b; }
        static long mul(long a, long b) { return a * b; }
        static f ops[] = { add, mul };
        long mathx_apply(int op, long a, long b) { return ops[op & 1](a, b); }
        """;

    const string ProgramCs = """
        using System.Runtime.InteropServices;
        static class Program
        {
            [DllImport("mathx")] static extern long mathx_apply(int op, long a, long b);
            static void Main() => System.Console.WriteLine($"mathx={mathx_apply(1, 6, 7)}");
        }
        """;

    static string ConsoleProject(string items) => Sources.CSharpProject(items, "Exe");

    TestProject PInvokeSolution(string name, string extraItems = "") => Sdk.NewProject(name)
        .Write("native/mathx.nativeproj", Sources.Project("Library"))
        .Write("native/mathx.c", MathxC)
        .Write("app/app.csproj", ConsoleProject("<ProjectReference Include=\"../native/mathx.nativeproj\" />" + extraItems))
        .Write("app/Program.cs", ProgramCs);

    [Fact]
    public void A_referenced_native_executable_is_copied_next_to_the_CSharp_program_and_published()
    {
        var p = PInvokeSolution("native-exe", "<ProjectReference Include=\"../helper/helper.nativeproj\" /><PackageReference Include=\"Retpoline.Sdk\" Version=\"$(RetpolineSdkVersion)\" PrivateAssets=\"all\" />")
            .Write("helper/helper.nativeproj", Sources.Project("Exe"))
            .Write("helper/main.c", "#include <stdio.h>\nstatic int twice(int x) { return 2 * x; }\nint (*volatile op)(int) = twice;\nint main(void) { printf(\"helper=%d\\n\", op(21)); return 0; }\n");
        Must(p.Build("app/app.csproj"), "dotnet build");
        Assert.Equal("helper=42", p.RunProgram("app/bin/Debug/net10.0/helper").Output.Trim());
        Assert.Equal("mathx=42", p.RunProgram("app/bin/Debug/net10.0/app").Output.Trim());
        // What the project ships, and how each file got there: the list the build verifies and audit reports.
        var shipped = Must(p.Dotnet("msbuild", "app/app.csproj", "-nologo", "-t:RetpolineShippedBinaries", "-getItem:RetpolineShippedBinary"), "RetpolineShippedBinaries").Output;
        Assert.Matches(@"libmathx\.so""[^}]*""Origin"": ""ProjectReference \.\./native/mathx\.nativeproj""", shipped);
        Assert.Matches(@"net10\.0/helper""[^}]*""Origin"": ""ProjectReference \.\./helper/helper\.nativeproj""", shipped);
        Must(p.Dotnet("publish", "app/app.csproj", "-c", "Release", "-r", "linux-x64", "--self-contained", "false", "-nologo"), "dotnet publish");
        Assert.Equal("helper=42", p.RunProgram("app/bin/Release/net10.0/linux-x64/publish/helper").Output.Trim());
    }

    [Theory]
    [InlineData("Debug")]
    [InlineData("Release")]
    public void CSharp_app_references_a_native_library_builds_runs_publishes_and_rebuilds_as_a_no_op(string configuration)
    {
        var p = PInvokeSolution("pinvoke-" + configuration);
        var r = Must(p.Build("app/app.csproj", "-c", configuration), "dotnet build");
        Assert.Contains($"mathx -> {p.PathOf($"native/bin/{configuration}/libmathx.so")}", r.Output);
        Assert.DoesNotContain("warning", r.Output);
        string outDir = $"app/bin/{configuration}/net10.0";
        Assert.True(File.Exists(p.PathOf($"{outDir}/libmathx.so")), "the native library is copied next to the assembly");
        Assert.Equal("mathx=42", p.RunProgram($"{outDir}/app").Output.Trim());
        Assert.Equal("mathx=42", Must(p.Dotnet("run", "--project", "app/app.csproj", "-c", configuration, "--no-build"), "dotnet run").Output.Trim());

        var noop = Must(p.Build("app/app.csproj", "-c", configuration, "-v:n"), "no-op build");
        Assert.Equal(0, Native.CompilerInvocations(noop.Output));
        Assert.Contains("Skipping target \"RetpolinePatchAndVerify\"", noop.Output);
        Assert.Contains("Skipping target \"CoreCompile\"", noop.Output);
        Assert.Contains("Skipping target \"_CopyOutOfDateSourceItemsToOutputDirectory\"", noop.Output);

        var pub = Must(p.Dotnet("publish", "app/app.csproj", "-c", configuration, "-r", "linux-x64", "--self-contained", "false", "-nologo"), "dotnet publish");
        string publishDir = $"app/bin/{configuration}/net10.0/linux-x64/publish";
        Assert.True(File.Exists(p.PathOf($"{publishDir}/libmathx.so")), $"libmathx.so is published:\n{pub.Output}");
        Assert.Equal("mathx=42", p.RunProgram($"{publishDir}/app").Output.Trim());
    }

    [Fact]
    public void Solution_sample_app_builds_and_runs()
    {
        // The sample's xunit project needs nuget.org; the native library and the app need only the test feed.
        var p = Sdk.NewProject("sample-solution");
        string sample = Path.Combine(SdkPackage.RepoRoot, "samples", "solution");
        foreach (var f in Directory.EnumerateFiles(sample, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(sample, f);
            if (!rel.Split('/').Any(d => d is "bin" or "obj")) p.Write(rel, File.ReadAllText(f));
        }
        var r = Must(p.Build("app/app.csproj", "-v:n"), "dotnet build of samples/solution/app");
        // Directory.Build.props put the app under the policy: the library it ships was verified in its output.
        Assert.Contains("Retpoline: output policy: 1 ELF file(s) pass (1 verified now", r.Output);
        Assert.Equal("6+7=13 6-7=-1 6*7=42", p.RunProgram("app/bin/Debug/net10.0/app").Output.Trim());
    }

    [Fact]
    public void Output_policy_verifies_project_reference_libraries_once_and_on_publish()
    {
        var p = PInvokeSolution("policy-cache", "<PackageReference Include=\"Retpoline.Sdk\" Version=\"$(RetpolineSdkVersion)\" PrivateAssets=\"all\" />");
        var first = Must(p.Build("app/app.csproj", "-v:n"), "dotnet build");
        Assert.Contains("Retpoline: output policy: 1 ELF file(s) pass (1 verified now, 0 unchanged since verified)", first.Output);
        Assert.Equal("mathx=42", p.RunProgram("app/bin/Debug/net10.0/app").Output.Trim());

        var noop = Must(p.Build("app/app.csproj", "-v:n"), "no-op build");
        Assert.Contains("Retpoline: output policy: 1 ELF file(s) pass (0 verified now, 1 unchanged since verified)", noop.Output);
        Assert.DoesNotContain("libmathx.so: PASS", noop.Output);

        var pub = Must(p.Dotnet("publish", "app/app.csproj", "-r", "linux-x64", "--self-contained", "false", "-nologo", "-v:n"), "dotnet publish");
        Assert.Matches(@"publish/libmathx\.so: PASS", pub.Output);
    }

    static string PolicyApp(string extra) => ConsoleProject($"""
        <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
            <None Include="lib/libvendor.so" CopyToOutputDirectory="PreserveNewest" Link="libvendor.so" />
            {extra}
        """);

    [Fact]
    public void Unmitigated_library_copied_to_output_fails_with_RPL0001_and_RetpolineExclude_exempts_it()
    {
        var p = Sdk.NewProject("vendor-so").Write("app.csproj", PolicyApp("")).Write("Program.cs", "System.Console.WriteLine(\"hi\");\n");
        Prebuilt.SharedLibrary(p, "lib/libvendor.so", "vendor_apply");

        var bad = p.Build("app.csproj");
        Log.WriteLine(bad.Output);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Matches(@"bin/Debug/net10\.0/libvendor\.so ?: error RPL0001: indirect (call|jump) .* in function 'vendor_apply\+0x[0-9a-f]+'", bad.Output);
        // The .NET application host lands in the output too; it is Microsoft's, not verified.
        Assert.DoesNotMatch(@"net10\.0/app ?: error", bad.Output);
        var again = p.Build("app.csproj");
        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("error RPL0001", again.Output);

        // A glob goes in Pattern (MSBuild would expand `*` in Include against files).
        p.Write("app.csproj", PolicyApp("<RetpolineExclude Include=\"vendor\" Pattern=\"libvend*.so\" Reason=\"vendor binary, reviewed in SEC-42\" />"));
        var ok = Must(p.Build("app.csproj"), "dotnet build with RetpolineExclude");
        Assert.Contains("Retpoline: bin/Debug/net10.0/libvendor.so is exempt from verification (RetpolineExclude 'vendor': vendor binary, reviewed in SEC-42)", ok.Output);

        p.Write("app.csproj", PolicyApp("<RetpolineExclude Include=\"libvendor.so\" />"));
        var noReason = p.Build("app.csproj");
        Assert.NotEqual(0, noReason.ExitCode);
        Assert.Contains("error RPL0208: RetpolineExclude 'libvendor.so' needs a Reason", noReason.Output);
    }

    [Fact]
    public void Native_asset_from_a_package_is_verified_when_consumed()
    {
        var p = Sdk.NewProject("pkg-asset");
        Prebuilt.SharedLibrary(p, "vendorpkg/libvendor.so", "vendor_apply");
        string id = "Vendor.Native." + Path.GetFileName(p.Directory).Replace("-", "");
        p.Write("vendorpkg/vendorpkg.csproj", $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup><TargetFramework>net10.0</TargetFramework><PackageId>{id}</PackageId><Version>1.0.0</Version><IncludeBuildOutput>false</IncludeBuildOutput><NoWarn>NU5128</NoWarn></PropertyGroup>
              <ItemGroup><None Include="libvendor.so" Pack="true" PackagePath="runtimes/linux-x64/native/" /></ItemGroup>
            </Project>
            """);
        Must(p.Dotnet("pack", "vendorpkg/vendorpkg.csproj", "-o", Sdk.Feed, "-nologo"), "dotnet pack of the vendor package");
        p.Write("app/app.csproj", ConsoleProject($"""
            <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                <PackageReference Include="{id}" Version="1.0.0" />
            """)).Write("app/Program.cs", "System.Console.WriteLine(\"hi\");\n");

        var bad = p.Build("app/app.csproj");
        Log.WriteLine(bad.Output);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Matches(@"runtimes/linux-x64/native/libvendor\.so ?: error RPL0001: .*vendor_apply", bad.Output);
    }
}
