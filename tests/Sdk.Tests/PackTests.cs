using System.IO.Compression;
using System.Xml.Linq;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// `dotnet pack` of a native Library, consumed the usual way: a C# program's PackageReference gets the .so copied on
/// build and publish, P/Invokes it, and verifies it through the SDK's buildTransitive that the package depends on.
/// </summary>
public sealed class PackTests
{
    static string Must(ProcessOutcome r, string what) { Assert.True(r.ExitCode == 0, $"{what} failed:\n{r.Output}"); return r.Output; }

    [Fact]
    public void A_packed_native_library_holds_the_so_and_headers_and_a_CSharp_consumer_copies_verifies_and_calls_it()
    {
        var p = SdkPackage.Instance.NewProject("pack-lib");
        // A version of its own: every test run shares one package folder.
        string version = "1.0.0-t" + Guid.NewGuid().ToString("N")[..8];
        p.Write("mathx/mathx.nativeproj", Sources.Project("Library", $"""
                <PropertyGroup>
                    <PackageId>PackTests.Mathx</PackageId>
                    <Version>{version}</Version>
                    <PublicIncludeDirectories>include</PublicIncludeDirectories>
                  </PropertyGroup>
                """))
            .Write("mathx/include/mathx.h", "#include \"mathx/detail.h\"\nlong mathx_answer(void);\n")
            .Write("mathx/include/mathx/detail.h", "#define MATHX_BASE 40\n")
            .Write("mathx/mathx.c", "#include \"mathx.h\"\nlong mathx_answer(void) { return MATHX_BASE + 2; }\n");
        Must(p.Dotnet("pack", "mathx/mathx.nativeproj", "-o", "feed", "-nologo"), "dotnet pack");

        string nupkg = p.PathOf($"feed/PackTests.Mathx.{version}.nupkg");
        using (var zip = ZipFile.OpenRead(nupkg))
        {
            var content = zip.Entries.Select(e => e.FullName)
                .Where(n => !n.StartsWith("_rels/", StringComparison.Ordinal) && !n.StartsWith("package/", StringComparison.Ordinal) && n != "[Content_Types].xml")
                .Order(StringComparer.Ordinal);
            Assert.Equal(["PackTests.Mathx.nuspec", "include/mathx.h", "include/mathx/detail.h", "runtimes/linux-x64/native/libmathx.so"], content);
            var nuspec = XDocument.Load(zip.GetEntry("PackTests.Mathx.nuspec")!.Open());
            var dependency = nuspec.Descendants().Single(e => e.Name.LocalName == "dependency");
            // Only the SDK's buildTransitive reaches consumers: the policy, nothing to compile or run.
            Assert.Equal(("Retpoline.Sdk", SdkPackage.Instance.Version), ((string)dependency.Attribute("id")!, (string)dependency.Attribute("version")!));
            Assert.Equal("Runtime,Compile,Build,Native,Analyzers", (string?)dependency.Attribute("exclude"));
        }

        p.Write("NuGet.config", File.ReadAllText(p.PathOf("NuGet.config")).Replace("<clear />", $"<clear /><add key=\"native-feed\" value=\"{p.PathOf("feed")}\" />"));
        p.Write("app/app.csproj", Sources.CSharpProject($"<PackageReference Include=\"PackTests.Mathx\" Version=\"{version}\" />", "Exe"))
            .Write("app/Program.cs", """
                using System.Runtime.InteropServices;
                static class Program
                {
                    [DllImport("mathx")] static extern long mathx_answer();
                    static int Main() { System.Console.WriteLine($"mathx={mathx_answer()}"); return 0; }
                }
                """);
        string build = Must(p.Build("app/app.csproj", "-v:n"), "dotnet build");
        Assert.Contains($"{p.PathOf("app/bin/Debug/net10.0/runtimes/linux-x64/native/libmathx.so")}: PASS", build);
        Assert.Equal("mathx=42", p.Dotnet("app/bin/Debug/net10.0/app.dll").Output.Trim());

        string publish = Must(p.Dotnet("publish", "app/app.csproj", "-r", "linux-x64", "--self-contained", "false", "-o", "pub", "-v:n", "-nologo"), "dotnet publish");
        Assert.True(File.Exists(p.PathOf("pub/libmathx.so")), publish);
        Assert.Contains($"{p.PathOf("pub/libmathx.so")}: PASS", publish);
        Assert.Equal("mathx=42", p.RunProgram("pub/app").Output.Trim());
    }
}
