using Retpoline.Tests;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Packs the SDK once per test run into a temporary folder feed, with a private NuGet package folder so a stale
/// cache can never serve an old build, and runs the real `dotnet build` on projects the tests write.
/// One instance for the whole run (not an xunit collection fixture): a collection fixture would put every test class
/// in one collection and serialise them, and the builds are what make this suite slow.
/// </summary>
public sealed class SdkPackage
{
    static readonly Lazy<SdkPackage> Shared = new(() => new SdkPackage(), LazyThreadSafetyMode.ExecutionAndPublication);
    public static SdkPackage Instance => Shared.Value;

    public string Root { get; }
    public string Feed { get; }
    public string Packages { get; }
    public string Nupkg => Path.Combine(Feed, "Retpoline.Sdk.1.0.0.nupkg");
    public static string RepoRoot => NativeToolchain.RepoRoot;

    SdkPackage()
    {
        Root = Directory.CreateTempSubdirectory("retpoline-sdk-tests-").FullName;
        Feed = Path.Combine(Root, "feed");
        Packages = Path.Combine(Root, "packages");
        // Its own artifacts folder: the pack never touches the repo's bin/obj, which other builds may be using. The
        // user's package folder: Iced, ELFSharp and MSBuild's reference assemblies are already there (no download);
        // only the projects under test restore from the private folder, where Retpoline.Sdk can never be stale.
        var r = Dotnet.Exec("dotnet", RepoRoot, ["pack", Path.Combine(RepoRoot, "Tasks", "Retpoline.Tasks", "Retpoline.Tasks.csproj"), "-c", "Release",
            "-o", Feed, "--artifacts-path", Path.Combine(Root, "artifacts"), "-v:q", "-nologo"]);
        if (r.ExitCode != 0 || !File.Exists(Nupkg))
            throw new InvalidOperationException($"dotnet pack failed ({r.ExitCode}):\n{r.Output}");
    }

    /// <summary>A fresh project folder with a NuGet.config that sees only the test feed.</summary>
    public TestProject NewProject(string name)
    {
        string dir = Path.Combine(Root, "projects", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "NuGet.config"), $"""
            <configuration>
              <config><add key="globalPackagesFolder" value="{Packages}" /></config>
              <packageSources><clear /><add key="test-feed" value="{Feed}" /></packageSources>
            </configuration>
            """);
        return new TestProject(dir, this);
    }
}

public sealed record ProcessOutcome(int ExitCode, string Output);

/// <summary>Runs dotnet and built programs (through tests/Shared's runner) with an environment free of the test host's MSBuild state.</summary>
public static class Dotnet
{
    public static ProcessOutcome Run(string workingDirectory, IEnumerable<string> args, string packages, IDictionary<string, string?>? env = null)
        => Exec("dotnet", workingDirectory, args, packages, env);

    public static ProcessOutcome Exec(string file, string workingDirectory, IEnumerable<string> args, string? packages = null, IDictionary<string, string?>? env = null)
    {
        var environment = new Dictionary<string, string?>();
        // The test host runs inside an MSBuild/VSTest process tree (MSBuildExtensionsPath, MSBUILD_EXE_PATH,
        // MSBuildSDKsPath, DOTNET_HOST_PATH, …); none of that may leak into the child build, nor the user's CC/CXX.
        foreach (string k in Environment.GetEnvironmentVariables().Keys)
            if (k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) ||
                (k.StartsWith("DOTNET_", StringComparison.Ordinal) && !k.StartsWith("DOTNET_ROOT", StringComparison.Ordinal) && k != "DOTNET_CLI_HOME") ||
                k is "CC" or "CXX" or "CFLAGS" or "CXXFLAGS" or "LDFLAGS")
                environment[k] = null;
        environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        environment["DOTNET_NOLOGO"] = "1";
        environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        environment["MSBUILDDISABLENODEREUSE"] = "1";
        if (packages is not null) environment["NUGET_PACKAGES"] = packages;
        if (env is not null) foreach (var (k, v) in env) environment[k] = v;
        var r = NativeToolchain.Run(file, args, workingDirectory, environment);
        return new ProcessOutcome(r.ExitCode, r.StdOut + r.StdErr);
    }
}

/// <summary>A project under test: files written into its folder, built with the real dotnet build.</summary>
public sealed class TestProject(string directory, SdkPackage package)
{
    public string Directory { get; } = directory;

    public TestProject Write(string relativePath, string text)
    {
        string path = Path.Combine(Directory, relativePath);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return this;
    }

    public TestProject CopyFrom(string sourceDirectory)
    {
        foreach (var f in System.IO.Directory.EnumerateFiles(sourceDirectory, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(sourceDirectory, f);
            if (rel.Split('/')[0] is "bin" or "obj") continue;
            Write(rel, File.ReadAllText(f));
        }
        return this;
    }

    public string PathOf(string relativePath) => Path.Combine(Directory, relativePath);

    public ProcessOutcome Build(string project, params string[] args)
        => Tests.Dotnet.Run(Directory, ["build", project, "-nologo", .. args], package.Packages);

    public ProcessOutcome Dotnet(params string[] args) => Tests.Dotnet.Run(Directory, args, package.Packages);

    public ProcessOutcome RunProgram(string relativePath) => Tests.Dotnet.Exec(PathOf(relativePath), Directory, []);
}
