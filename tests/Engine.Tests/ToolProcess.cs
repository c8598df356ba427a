using System.Diagnostics;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// The real `retpoline` tool as a child process (`dotnet retpoline.dll ARGS`, from this test project's output),
/// optionally as user nobody (setpriv) so a root test run can check what an ordinary user gets.
/// </summary>
static class ToolProcess
{
    public const int Nobody = 65534;

    public static string Dll
    {
        get
        {
            string tool = Path.Combine(AppContext.BaseDirectory, "retpoline.dll");
            Assert.True(File.Exists(tool), $"{tool} is missing: the test project references Tool/");
            return tool;
        }
    }

    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
        ? host : NativeToolchain.Require("dotnet", "dotnet-sdk-10.0");

    public static bool IsRoot => Environment.UserName == "root";

    static Dictionary<string, string?> Environment_(string home) => new()
    {
        ["HOME"] = home, ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1",
    };

    /// <summary>Runs the tool; as nobody when <paramref name="asNobody"/> (the caller must be root).</summary>
    public static ProcessResult Run(IEnumerable<string> args, string? workingDirectory = null, bool asNobody = false, TimeSpan? timeout = null)
    {
        var (file, argv) = Command(args, asNobody);
        return NativeToolchain.Run(file, argv, workingDirectory, Environment_(workingDirectory ?? Path.GetTempPath()), timeout ?? TimeSpan.FromMinutes(2));
    }

    /// <summary>Starts the tool with its output discarded (the kill -9 test stops it wherever it is).</summary>
    public static Process Start(IEnumerable<string> args, string workingDirectory)
    {
        var (file, argv) = Command(args, asNobody: false);
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        foreach (var a in argv) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Environment_(workingDirectory)) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    static (string file, List<string> argv) Command(IEnumerable<string> args, bool asNobody)
    {
        if (!asNobody) return (Dotnet, [Dll, .. args]);
        Assert.True(IsRoot, "running as nobody needs root");
        return (NativeToolchain.Require("setpriv", "util-linux"), [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", Dotnet, Dll, .. args]);
    }

    /// <summary>stdout and stderr together, trimmed: what a user sees of a one-line error.</summary>
    public static string All(this ProcessResult r) => (r.StdOut + r.StdErr).Trim();
}
