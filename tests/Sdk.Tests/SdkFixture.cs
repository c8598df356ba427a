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
    /// <summary>The development version the pack computed from the package's content (Retpoline.Sdk.version beside it).</summary>
    public string Version { get; }
    public string Nupkg => Path.Combine(Feed, $"Retpoline.Sdk.{Version}.nupkg");
    /// <summary>
    /// What every build of a test project sees: the version, as the property the projects' PackageReferences name
    /// (`Version="$(RetpolineSdkVersion)"`, as samples/solution does); `Sdk="Retpoline.Sdk"` takes it from the
    /// global.json <see cref="NewProject"/> writes.
    /// </summary>
    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?> { ["RetpolineSdkVersion"] = Version };
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
            "-o", Feed, "--artifacts-path", Path.Combine(Root, "artifacts"), "-v:q", "-nologo"], timeout: TimeSpan.FromMinutes(20));
        string versionFile = Path.Combine(Feed, "Retpoline.Sdk.version");
        Version = File.Exists(versionFile) ? File.ReadAllText(versionFile).Trim() : "";
        if (r.ExitCode != 0 || !File.Exists(Nupkg))
            throw new InvalidOperationException($"dotnet pack failed ({r.ExitCode}):\n{r.Output}");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => CompilerServer.Shutdown();
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
        File.WriteAllText(Path.Combine(dir, "global.json"), $$"""{ "msbuild-sdks": { "Retpoline.Sdk": "{{Version}}" } }""" + "\n");
        return new TestProject(dir, this);
    }
}

public sealed record ProcessOutcome(int ExitCode, string Output);

/// <summary>
/// The C# compiler server the run's builds share. Each C# build started its own compiler, JIT and all (~3 s of CPU a
/// project, where a warm server takes a fraction of that: the machine's environment has UseSharedCompilation=false);
/// a server named for this run alone is shared by its builds, never by anyone else's, and is shut down when the run
/// ends, so nothing is left running.
/// </summary>
public static class CompilerServer
{
    public static readonly string PipeName = "retpoline-tests-" + Guid.NewGuid().ToString("N")[..12];

    public static void Shutdown()
    {
        try
        {
            // VBCSCompiler.dll of the SDK the builds used: <dotnet root>/sdk/<version>/Roslyn/bincore.
            string? dotnet = NativeToolchain.Which("dotnet");
            if (dotnet is null) return;
            string root = Path.GetDirectoryName(new FileInfo(dotnet).ResolveLinkTarget(true)?.FullName ?? dotnet)!;
            string version = NativeToolchain.Run(dotnet, ["--version"], Path.GetTempPath()).StdOut.Trim();
            string server = Path.Combine(root, "sdk", version, "Roslyn", "bincore", "VBCSCompiler.dll");
            if (File.Exists(server)) NativeToolchain.Run(dotnet, [server, "-shutdown", "-pipename:" + PipeName], timeout: TimeSpan.FromSeconds(30));
        }
        catch (Exception) { } // at process exit: nothing to report to, and the server exits by itself after 10 idle minutes
    }
}

/// <summary>Runs dotnet and built programs (through tests/Shared's runner) with an environment free of the test host's MSBuild state.</summary>
public static class Dotnet
{
    public static ProcessOutcome Run(string workingDirectory, IEnumerable<string> args, string packages, IReadOnlyDictionary<string, string?>? env = null)
        => Exec("dotnet", workingDirectory, args, packages, env);

    public static ProcessOutcome Exec(string file, string workingDirectory, IEnumerable<string> args, string? packages = null, IReadOnlyDictionary<string, string?>? env = null, TimeSpan? timeout = null)
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
        environment["UseSharedCompilation"] = "true";
        environment["SharedCompilationId"] = CompilerServer.PipeName;
        if (packages is not null) environment["NUGET_PACKAGES"] = packages;
        if (env is not null) foreach (var (k, v) in env) environment[k] = v;
        var r = NativeToolchain.Run(file, args, workingDirectory, environment, timeout);
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

    /// <summary>
    /// `dotnet build PROJECT ARGS`. A build whose restore inputs (the project files, props/targets, NuGet.config,
    /// global.json and the restore-relevant arguments) are what a successful build of this folder already restored
    /// adds `--no-restore`: a no-op restore is about half of a no-op build's CPU time, and most tests build a project
    /// several times.
    /// </summary>
    public ProcessOutcome Build(string project, params string[] args)
    {
        string key = RestoreKey(project, args);
        bool skipRestore = !args.Any(a => a.Contains("restore", StringComparison.OrdinalIgnoreCase)) && restored.Contains(key) && AssetsPresent();
        var r = Tests.Dotnet.Run(Directory, ["build", project, "-nologo", .. skipRestore ? ["--no-restore"] : Array.Empty<string>(), .. args], package.Packages, package.Environment);
        if (r.ExitCode == 0) restored.Add(key);
        return r;
    }

    readonly HashSet<string> restored = new(StringComparer.Ordinal);

    static readonly string[] RestoreInputPatterns = ["*.csproj", "*.nativeproj", "*.props", "*.targets", "*.sln", "*.slnx", "NuGet.config", "global.json"];

    IEnumerable<string> RestoreInputs() => RestoreInputPatterns
        .SelectMany(pattern => System.IO.Directory.EnumerateFiles(Directory, pattern, SearchOption.AllDirectories))
        .Where(f => !Path.GetRelativePath(Directory, f).Split('/').Any(d => d is "bin" or "obj"))
        .Order(StringComparer.Ordinal);

    /// <summary>What a restore of this folder depends on: the project argument, RID/TFM arguments and every restore input's content.</summary>
    string RestoreKey(string project, string[] args)
    {
        var text = new System.Text.StringBuilder(project).Append('\n');
        for (int i = 0; i < args.Length; i++)
            if (args[i] is "-r" or "--runtime" or "-f" or "--framework" && i + 1 < args.Length) text.Append(args[i]).Append(' ').Append(args[++i]).Append('\n');
            else if (args[i].StartsWith("-p:RuntimeIdentifier", StringComparison.OrdinalIgnoreCase) || args[i].StartsWith("-p:TargetFramework", StringComparison.OrdinalIgnoreCase)) text.Append(args[i]).Append('\n');
        foreach (var f in RestoreInputs()) text.Append(f).Append('\0').Append(File.ReadAllText(f)).Append('\0');
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>Every project still has the assets its last restore wrote (a test may have deleted obj/).</summary>
    bool AssetsPresent() => RestoreInputs()
        .Where(f => f.EndsWith("proj", StringComparison.Ordinal))
        .All(f => File.Exists(Path.Combine(Path.GetDirectoryName(f)!, "obj", "project.assets.json")));

    public ProcessOutcome Dotnet(params string[] args) => Tests.Dotnet.Run(Directory, args, package.Packages, package.Environment);

    public ProcessOutcome RunProgram(string relativePath) => Tests.Dotnet.Exec(PathOf(relativePath), Directory, []);
}
