using System.IO.Compression;
using System.Xml.Linq;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>The package itself: its layout, the task assembly's neighbours, no dependencies, no MSBuild assembly.</summary>
public sealed class PackageTests
{
    [Fact]
    public void Package_holds_the_sdk_build_native_and_task_folders_and_depends_on_nothing()
    {
        using var zip = ZipFile.OpenRead(SdkPackage.Instance.Nupkg);
        var names = zip.Entries.Select(e => e.FullName).ToHashSet();
        foreach (var required in new[]
        {
            "Sdk/Sdk.props", "Sdk/Sdk.targets", "build/Retpoline.Sdk.props", "build/Retpoline.Sdk.targets",
            "buildTransitive/Retpoline.Sdk.props", "buildTransitive/Retpoline.Sdk.targets",
            "native/retpoline_thunks.S", "native/retpoline.h",
            "tasks/net8.0/Retpoline.Tasks.dll", "tasks/net8.0/Retpoline.Engine.dll", "tasks/net8.0/Iced.dll", "tasks/net8.0/ELFSharp.dll",
        })
            Assert.Contains(required, names);
        Assert.DoesNotContain(names, n => n.Contains("Microsoft.Build", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(names, n => n.StartsWith("lib/", StringComparison.Ordinal)); // nothing to compile against
        // No .deps.json, or one that names exactly what is beside it: MSBuild's load context honours it.
        Assert.DoesNotContain(names, n => n.StartsWith("tasks/", StringComparison.Ordinal) && n.EndsWith(".deps.json", StringComparison.Ordinal));

        var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName == "Retpoline.Sdk.nuspec").Open());
        Assert.DoesNotContain(nuspec.Descendants(), e => e.Name.LocalName is "dependencies" or "dependency");
        Assert.Contains(nuspec.Descendants().Where(e => e.Name.LocalName == "packageType"), e => (string?)e.Attribute("name") == "MSBuildSdk");
        Assert.Equal("1.0.0", nuspec.Descendants().Single(e => e.Name.LocalName == "version").Value);
    }

    [Fact]
    public void Props_refuse_dotnet_framework_msbuild_before_loading_the_task_assembly()
    {
        string props = File.ReadAllText(Path.Combine(SdkPackage.RepoRoot, "build", "Retpoline.Sdk.props"));
        foreach (var line in props.Split('\n').Where(l => l.Contains("<UsingTask", StringComparison.Ordinal)))
            Assert.Contains("'$(MSBuildRuntimeType)' == 'Core'", line);
        string targets = File.ReadAllText(Path.Combine(SdkPackage.RepoRoot, "build", "Retpoline.Sdk.targets"));
        Assert.Contains("Code=\"RPL0209\" Condition=\"'$(MSBuildRuntimeType)' != 'Core'\"", targets);
    }
}
