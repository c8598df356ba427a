using System.Diagnostics;

namespace Retpoline.Toolchain;

/// <summary>The outcome of one child process.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>
/// Starts compilers, linkers and archivers from an argument list — never a shell string, so no file name can
/// inject a command — and captures both streams without deadlocking on a full pipe.
/// </summary>
public static class ProcessRunner
{
    public static ProcessResult Run(string fileName, IEnumerable<string> arguments, string? workingDirectory = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        // Diagnostics in a stable language and without colour escapes, whatever the user's terminal says.
        psi.Environment["LC_ALL"] = "C";
        psi.Environment["GCC_COLORS"] = "";
        if (environment is not null)
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = new Process { StartInfo = psi };
        try { Start(p); }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new ProcessResult(-1, "", $"cannot start '{fileName}': {e.Message}");
        }
        // Both pipes drained at once (a child blocked on a full pipe would never exit), stderr on a thread of its
        // own rather than the thread pool: async pipe reads on Linux park a pool thread each, and the compile jobs
        // already hold threads of their own.
        string stderr = "";
        var errorReader = new Thread(() => stderr = p.StandardError.ReadToEnd()) { IsBackground = true, Name = "retpoline stderr" };
        errorReader.Start();
        string stdout = p.StandardOutput.ReadToEnd();
        errorReader.Join();
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout, stderr);
    }

    /// <summary>`a b 'c d'`: how a command is shown in logs and compile_commands.json (display only, never executed).</summary>
    /// <summary>
    /// Process.Start, retried while exec says ETXTBSY: a program this process just wrote (a patched test program) can
    /// still be open for writing in a child another thread forked before that child's exec closed the descriptor,
    /// which lasts milliseconds. Any other failure, or a busy file past a second, is the caller's to report.
    /// </summary>
    public static void Start(Process p)
    {
        const int TextFileBusy = 26;
        for (int attempt = 1; ; attempt++)
        {
            try { p.Start(); return; }
            catch (System.ComponentModel.Win32Exception e) when (e.NativeErrorCode == TextFileBusy && attempt < 50) { Thread.Sleep(20); }
        }
    }

    public static string Display(string fileName, IEnumerable<string> arguments)
        => string.Join(' ', new[] { fileName }.Concat(arguments).Select(Quote));

    /// <summary>One word as a POSIX shell reads it (single quotes only when it needs them): for display, and for the
    /// command text CMake and make hand to the shell themselves.</summary>
    public static string Quote(string s) => s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./=:,+@%".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
