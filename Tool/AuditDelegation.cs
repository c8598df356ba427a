using System.Diagnostics;
using System.Runtime.CompilerServices;
using Retpoline.Toolchain;

namespace Retpoline.Tool;

/// <summary>
/// `audit` evaluates projects with the installed SDK's MSBuild, which cannot be loaded into a NativeAOT process. The
/// linux-x64 tool package therefore ships the framework-dependent build in `audit/` beside the native `retpoline`,
/// and the native build runs `dotnet audit/retpoline.dll audit …` for that one command: the user's command line, the
/// output and the exit code are the same either way.
/// </summary>
static class AuditDelegation
{
    /// <summary>Where the package puts the framework-dependent build, relative to the native executable.</summary>
    public const string Folder = "audit";

    /// <summary>True in the NativeAOT build (no JIT, so no MSBuild); false under the .NET runtime.</summary>
    public static bool Needed => !RuntimeFeature.IsDynamicCodeSupported;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string assembly = Path.Combine(AppContext.BaseDirectory, Folder, "retpoline.dll");
        if (!File.Exists(assembly))
            throw new RetpolineException(ToolchainCodes.AuditNoMSBuild, assembly,
                "audit needs MSBuild, which this NativeAOT build cannot load, and the framework-dependent build that runs it is missing; install the Retpoline.Tool package (dotnet tool install --global Retpoline.Tool)");
        string dotnet = DotnetHost()
            ?? throw new RetpolineException(ToolchainCodes.AuditNoMSBuild, "dotnet", "no .NET SDK found to evaluate projects with; install the .NET SDK or set DOTNET_ROOT");

        var psi = new ProcessStartInfo(dotnet) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(assembly);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var errors = process.StandardError.ReadToEndAsync();
        stdout.Write(process.StandardOutput.ReadToEnd());
        stderr.Write(errors.Result);
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>The `dotnet` that would run a framework-dependent tool: DOTNET_HOST_PATH, DOTNET_ROOT, then PATH.</summary>
    static string? DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            if (File.Exists(Path.Combine(dir, "dotnet"))) return Path.Combine(dir, "dotnet");
        return File.Exists("/usr/share/dotnet/dotnet") ? "/usr/share/dotnet/dotnet" : null;
    }
}
