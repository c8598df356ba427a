using System.Diagnostics;
using System.Reflection;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Packs the SDK once per test run into a temporary folder feed, with a private NuGet package folder so a stale
/// cache can never serve an old build, and runs the real `dotnet build` on projects the tests write.
/// </summary>
public sealed class SdkPackage
{
    static readonly Lazy<SdkPackage> Shared = new(() => new SdkPackage(), LazyThreadSafetyMode.ExecutionAndPublication);
    public static SdkPackage Instance => Shared.Value;

    public string Root { get; }
    public string Feed { get; }
    public string Packages { get; }
    public string RepoRoot { get; }

    SdkPackage()
    {
        RepoRoot = typeof(SdkPackage).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepoRoot").Value!;
        Root = Directory.CreateTempSubdirectory("retpoline-sdk-tests-").FullName;
        Feed = Path.Combine(Root, "feed");
        Packages = Path.Combine(Root, "packages");
        var r = Dotnet.Run(RepoRoot, ["pack", Path.Combine(RepoRoot, "Tasks", "Retpoline.Tasks", "Retpoline.Tasks.csproj"), "-c", "Release", "-o", Feed, "-v:q", "-nologo"], Packages);
        if (r.ExitCode != 0 || !File.Exists(Path.Combine(Feed, "Retpoline.Sdk.1.0.0.nupkg")))
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

/// <summary>Runs dotnet and programs from argument lists with an environment free of the test host's MSBuild state.</summary>
public static class Dotnet
{
    public static ProcessOutcome Run(string workingDirectory, IEnumerable<string> args, string packages, IDictionary<string, string>? env = null)
        => Exec("dotnet", workingDirectory, args, packages, env);

    public static ProcessOutcome Exec(string file, string workingDirectory, IEnumerable<string> args, string? packages = null, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The test host runs inside an MSBuild/VSTest process tree; none of that may leak into the child build.
        foreach (var k in psi.Environment.Keys.ToList())
            if (k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || k.StartsWith("MSBUILD", StringComparison.Ordinal) ||
                k is "DOTNET_HOST_PATH" or "VSTEST_HOST_DEBUG" or "CC" or "CXX" || k.StartsWith("VSTEST", StringComparison.Ordinal))
                psi.Environment.Remove(k);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        if (packages is not null) psi.Environment["NUGET_PACKAGES"] = packages;
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{file} {string.Join(' ', args)} timed out"); }
        return new ProcessOutcome(p.ExitCode, stdout.Result + stderr.Result);
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

    public string PathOf(string relativePath) => Path.Combine(Directory, relativePath);

    public ProcessOutcome Build(string project, params string[] args)
        => Tests.Dotnet.Run(Directory, ["build", project, "-nologo", .. args], package.Packages);

    public ProcessOutcome Dotnet(params string[] args) => Tests.Dotnet.Run(Directory, args, package.Packages);

    public ProcessOutcome RunProgram(string relativePath) => Tests.Dotnet.Exec(PathOf(relativePath), Directory, []);
}
