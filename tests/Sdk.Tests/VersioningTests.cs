using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// A development package is versioned by its content: re-packing changed targets can never be served from an extracted
/// copy of the earlier pack in the package folder (the stale-cache scenario), and the same content packs to the same
/// version and the same bytes wherever it is packed from.
/// </summary>
public sealed class VersioningTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void A_repacked_changed_targets_file_is_used_by_the_next_build_with_the_same_package_folder()
    {
        // The package's content, copied: the repository's own files are never touched while other builds read them.
        var p = Sdk.NewProject("stale");
        string content = p.PathOf("content");
        foreach (var dir in new[] { "Sdk", "build", "buildTransitive", "native" })
        {
            Directory.CreateDirectory(Path.Combine(content, dir));
            foreach (var f in Directory.EnumerateFiles(Path.Combine(SdkPackage.RepoRoot, dir)))
                File.Copy(f, Path.Combine(content, dir, Path.GetFileName(f)));
        }
        File.Copy(Path.Combine(SdkPackage.RepoRoot, "README.md"), Path.Combine(content, "README.md"));

        string Pack(string feed)
        {
            // The run's own artifacts folder: the task assemblies are built already, so a re-pack is quick.
            Must(Dotnet.Exec("dotnet", SdkPackage.RepoRoot, ["pack", Path.Combine(SdkPackage.RepoRoot, "Tasks", "Retpoline.Tasks", "Retpoline.Tasks.csproj"), "-c", "Release",
                "-o", feed, "--artifacts-path", Path.Combine(Sdk.Root, "artifacts"), "-p:NuspecBasePath=" + content + "/", "-v:q", "-nologo"], Sdk.Packages, timeout: TimeSpan.FromMinutes(20)), "dotnet pack");
            return File.ReadAllText(Path.Combine(feed, "Retpoline.Sdk.version")).Trim();
        }

        // Same content, another folder: the same version, byte for byte the same package.
        string first = Pack(p.PathOf("feed"));
        Assert.Equal(Sdk.Version, first);
        Assert.Equal(File.ReadAllBytes(Sdk.Nupkg), File.ReadAllBytes(p.PathOf($"feed/Retpoline.Sdk.{first}.nupkg")));

        // A project restored from that feed into a package folder of its own, which keeps the extracted copy.
        string packages = p.PathOf("packages");
        void UseFeed(string version) => p.Write("NuGet.config", $"""
            <configuration>
              <config><add key="globalPackagesFolder" value="{packages}" /></config>
              <packageSources><clear /><add key="feed" value="{p.PathOf("feed")}" /></packageSources>
            </configuration>
            """).Write("global.json", $$"""{ "msbuild-sdks": { "Retpoline.Sdk": "{{version}}" } }""");
        UseFeed(first);
        p.Write("app/app.nativeproj", Sources.Project("Exe")).Write("app/main.c", "int main(void) { return 0; }\n");
        var env = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = packages };
        var before = Must(Dotnet.Run(p.Directory, ["build", "app/app.nativeproj", "-nologo"], packages, env), "first build");
        Assert.DoesNotContain("re-packed targets in use", before.Output);
        Assert.True(Directory.Exists(Path.Combine(packages, "retpoline.sdk", first)), "the first pack was not extracted into the package folder");

        // Change a target and pack again: a new version, which the extracted copy cannot stand in for.
        string targets = Path.Combine(content, "build", "Retpoline.Sdk.targets");
        File.WriteAllText(targets, File.ReadAllText(targets).Replace("</Project>",
            """<Target Name="RetpolineRepackProbe" AfterTargets="Build"><Message Importance="high" Text="re-packed targets in use" /></Target></Project>"""));
        string second = Pack(p.PathOf("feed"));
        Assert.NotEqual(first, second);
        Assert.Matches(@"^1\.0\.0-dev\.[0-9a-f]{12}$", second);

        UseFeed(second);
        var after = Must(Dotnet.Run(p.Directory, ["build", "app/app.nativeproj", "-nologo"], packages, env), "build after the re-pack");
        Assert.Contains("re-packed targets in use", after.Output);
    }
}
