using System.Diagnostics;
using System.Text;

namespace Retpoline.Toolchain;

/// <summary>How one test program ended: its exit code, or killed by the timeout; what it printed; how long it took.</summary>
public sealed record TestProgramRun(int ExitCode, bool TimedOut, string Output, TimeSpan Duration, string? StartError = null);

/// <summary>
/// Runs native test programs the way `dotnet test` runs a managed test assembly: each program in its project folder,
/// with a timeout, and turns what it did into <see cref="TestCaseResult"/>s. A plain program is one case (passed on
/// exit 0); a GoogleTest program — one that has GoogleTest's `--gtest_output` flag — is run with
/// `--gtest_output=xml:FILE` and reports each of its cases by name.
/// </summary>
public static class TestRun
{
    /// <summary>Runs the program and reports its cases. <paramref name="reportDirectory"/> holds the GoogleTest XML.</summary>
    public static IReadOnlyList<TestCaseResult> Run(string program, string workingDirectory, TimeSpan timeout, string reportDirectory,
        IReadOnlyList<string>? arguments = null)
    {
        // A report folder that cannot be written is this program's failure, reported as one, never an exception.
        try { return RunCore(program, workingDirectory, timeout, reportDirectory, arguments); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [new TestCaseResult(Path.GetFileName(program), TestOutcome.Failed, TimeSpan.Zero, null, $"cannot run '{program}': {e.Message}")];
        }
    }

    static IReadOnlyList<TestCaseResult> RunCore(string program, string workingDirectory, TimeSpan timeout, string reportDirectory,
        IReadOnlyList<string>? arguments)
    {
        string name = Path.GetFileName(program);
        bool gtest = GoogleTest.IsGoogleTestProgram(program);
        string? xml = null;
        var args = new List<string>(arguments ?? []);
        if (gtest)
        {
            Directory.CreateDirectory(reportDirectory);
            xml = Path.Combine(reportDirectory, name + ".gtest.xml");
            File.Delete(xml);
            args.Add("--gtest_output=xml:" + xml);
        }
        var run = Start(program, args, workingDirectory, timeout);
        if (gtest && xml is not null && !run.TimedOut && File.Exists(xml))
            return GoogleTest.Results(xml, name, run);
        return [Plain(name, run, timeout)];
    }

    /// <summary>One case for a whole program: passed on exit 0; otherwise failed with the reason and its output.</summary>
    public static TestCaseResult Plain(string name, TestProgramRun run, TimeSpan timeout)
    {
        if (run.StartError is not null)
            return new TestCaseResult(name, TestOutcome.Failed, run.Duration, run.Output, run.StartError);
        if (run.TimedOut)
            return new TestCaseResult(name, TestOutcome.Failed, run.Duration, run.Output, $"timed out after {Seconds(timeout)} s");
        if (run.ExitCode == 0)
            return new TestCaseResult(name, TestOutcome.Passed, run.Duration, run.Output);
        return new TestCaseResult(name, TestOutcome.Failed, run.Duration, run.Output, ExitText(run.ExitCode));
    }

    /// <summary>"exit code 3", or "killed by signal 11 (SIGSEGV)" (.NET reports a signal death as 128 + signal).</summary>
    public static string ExitText(int exitCode) => exitCode > 128 && exitCode < 128 + 65 && SignalName(exitCode - 128) is string sig
        ? $"exit code {exitCode} (killed by signal {exitCode - 128}, {sig})"
        : $"exit code {exitCode}";

    static string? SignalName(int signal) => signal switch
    {
        4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE", 9 => "SIGKILL", 11 => "SIGSEGV", 13 => "SIGPIPE", 15 => "SIGTERM",
        _ => null,
    };

    static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Starts the program from an argument list with both streams captured: the output is what it wrote to stdout,
    /// then what it wrote to stderr (two pipes have no order between them that could be read back reliably). Kills it
    /// with everything it started when the timeout passes. Standard input is empty, so a program that reads it sees
    /// end of file instead of waiting for the timeout. Nothing it leaves behind can hang the build: a background
    /// process that keeps the pipes open after the program exited gets <see cref="PipeGrace"/>, then its output so far
    /// is taken and the pipes are closed.
    /// </summary>
    public static TestProgramRun Start(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var p = new Process { StartInfo = psi };
        try { ProcessRunner.Start(p); }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new TestProgramRun(-1, false, "", clock.Elapsed, $"cannot start '{program}': {e.Message}");
        }
        p.StandardInput.Close();
        var readers = new[] { Pump(p.StandardOutput, stdout), Pump(p.StandardError, stderr) };
        bool exited = p.WaitForExit(timeout > TimeSpan.Zero ? (int)Math.Min(timeout.TotalMilliseconds, int.MaxValue) : Timeout.Infinite);
        if (!exited)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            p.WaitForExit(5000);
        }
        clock.Stop();
        foreach (var r in readers) r.Join(PipeGrace);
        string text;
        lock (stdout) lock (stderr) text = stdout.ToString() + stderr.ToString();
        return new TestProgramRun(exited ? p.ExitCode : -1, !exited, text, clock.Elapsed);
    }

    /// <summary>How long the pipes may stay open after the program is gone (a background child still holding them).</summary>
    public static readonly TimeSpan PipeGrace = TimeSpan.FromSeconds(2);

    /// <summary>Copies a pipe into the builder as it arrives, on a thread of its own (abandoned, never joined forever).</summary>
    static Thread Pump(StreamReader reader, StringBuilder into)
    {
        var t = new Thread(() =>
        {
            var buffer = new char[4096];
            try
            {
                int n;
                while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
                    lock (into) into.Append(buffer, 0, n);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException) { } // closed under it: the run is over
        }) { IsBackground = true, Name = "retpoline test output" };
        t.Start();
        return t;
    }
}
