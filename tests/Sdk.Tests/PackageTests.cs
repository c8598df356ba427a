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
            "native/retpoline_thunks.S", "native/retpoline.h", "native/retpoline_runtime.c", "native/retpoline_runtime_tables.h",
            "tasks/net8.0/Retpoline.Tasks.dll", "tasks/net8.0/Retpoline.Engine.dll", "tasks/net8.0/Iced.dll", "tasks/net8.0/ELFSharp.dll",
            "tasks/net10.0/Retpoline.Tasks.dll", "tasks/net10.0/Retpoline.Engine.dll", "tasks/net10.0/Iced.dll", "tasks/net10.0/ELFSharp.dll",
        })
            Assert.Contains(required, names);
        Assert.DoesNotContain(names, n => n.Contains("Microsoft.Build", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(names, n => n.StartsWith("lib/", StringComparison.Ordinal)); // nothing to compile against
        // No .deps.json, or one that names exactly what is beside it: MSBuild's load context honours it.
        Assert.DoesNotContain(names, n => n.StartsWith("tasks/", StringComparison.Ordinal) && n.EndsWith(".deps.json", StringComparison.Ordinal));

        var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName == "Retpoline.Sdk.nuspec").Open());
        Assert.DoesNotContain(nuspec.Descendants(), e => e.Name.LocalName is "dependencies" or "dependency");
        Assert.Contains(nuspec.Descendants().Where(e => e.Name.LocalName == "packageType"), e => (string?)e.Attribute("name") == "MSBuildSdk");
        Assert.Equal(SdkPackage.Instance.Version, nuspec.Descendants().Single(e => e.Name.LocalName == "version").Value);
        Assert.Matches(@"^1\.0\.0-dev\.[0-9a-f]{12}$", SdkPackage.Instance.Version);
    }

    /// <summary>
    /// tasks/net10.0 is the ReadyToRun build the .NET 10 SDK's MSBuild loads (precompiled code: no JIT at task start,
    /// which is most of a small binary's patch+verify); tasks/net8.0 stays plain IL for every other runtime.
    /// </summary>
    [Fact]
    public void Net10_task_folder_is_ReadyToRun_compiled_and_net8_is_IL_only()
    {
        using var zip = ZipFile.OpenRead(SdkPackage.Instance.Nupkg);
        foreach (var name in new[] { "Retpoline.Tasks.dll", "Retpoline.Engine.dll", "Iced.dll", "ELFSharp.dll" })
        {
            Assert.True(IsReadyToRun(zip, "tasks/net10.0/" + name), $"tasks/net10.0/{name} has no ReadyToRun code");
            Assert.False(IsReadyToRun(zip, "tasks/net8.0/" + name), $"tasks/net8.0/{name} should be IL only");
        }
    }

    [Fact]
    public void The_dotnet_10_sdk_loads_the_ReadyToRun_tasks()
    {
        var p = SdkPackage.Instance.NewProject("tasks-folder").Write("app.nativeproj", Sources.Project("Exe", ""));
        var r = p.Dotnet("msbuild", "app.nativeproj", "-restore", "-getProperty:RetpolineTasksAssembly", "-getProperty:EnableSourceLink", "-nologo");
        Assert.True(r.ExitCode == 0, r.Output);
        var properties = System.Text.Json.JsonDocument.Parse(r.Output).RootElement.GetProperty("Properties");
        string tasks = properties.GetProperty("RetpolineTasksAssembly").GetString()!;
        Assert.EndsWith(Path.Combine("tasks", "net10.0", "Retpoline.Tasks.dll"), tasks);
        Assert.True(File.Exists(tasks), r.Output);
        // A native project has no PDB for Source Link to write into; locating the repository cost every build ~50 ms.
        Assert.Equal("false", properties.GetProperty("EnableSourceLink").GetString());
    }

    static bool IsReadyToRun(ZipArchive zip, string entry)
    {
        using var stream = new MemoryStream();
        using (var s = zip.GetEntry(entry)!.Open()) s.CopyTo(stream);
        stream.Position = 0;
        using var pe = new System.Reflection.PortableExecutable.PEReader(stream);
        // A ReadyToRun image carries a managed native header (the READYTORUN_HEADER) in its CLI header.
        return pe.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size > 0;
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
