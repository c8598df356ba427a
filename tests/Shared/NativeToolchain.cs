using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Retpoline.Tests;

/// <summary>The outcome of one child process, with the command line that produced it (for failure messages).</summary>
public sealed record ProcessResult(string CommandLine, int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>Throws <see cref="NativeToolchainException"/> naming the command, its exit code and its stderr unless it exited 0.</summary>
    public ProcessResult EnsureSuccess()
    {
        if (!Succeeded)
            throw new NativeToolchainException($"command failed with exit code {ExitCode}:\n  {CommandLine}\n--- stderr ---\n{StdErr}\n--- stdout ---\n{StdOut}");
        return this;
    }
}

/// <summary>A compiler, linker or binutils tool failed, timed out, or is not installed.</summary>
public sealed class NativeToolchainException(string message) : Exception(message);

/// <summary>
/// The machine's native toolchain as the tests use it: gcc/g++ 12, clang-14/clang++-14, ld.lld-14 and binutils.
/// Every process is started with <see cref="ProcessStartInfo.ArgumentList"/> (never a shell string), its stdout and
/// stderr captured, and a failure reported with the full command line and stderr. A missing tool fails the test with
/// the apt package that provides it.
/// </summary>
public static class NativeToolchain
{
    /// <summary>Default limit for one compiler or tool run; a hung child is killed (with its children) after it.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    static string? repoRoot;

    /// <summary>
    /// The repository: $RETPOLINE_REPO_ROOT, else the first directory at or above <see cref="AppContext.BaseDirectory"/>
    /// (or the working directory) holding Retpoline.slnx, else the RepoRoot the test project recorded at build time
    /// (builds with --artifacts-path put the test assembly outside the repository).
    /// </summary>
    public static string RepoRoot => repoRoot ??= FindRepoRoot();

    static string FindRepoRoot()
    {
        if (Environment.GetEnvironmentVariable("RETPOLINE_REPO_ROOT") is { Length: > 0 } env && IsRoot(env)) return Path.GetFullPath(env);
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (IsRoot(d.FullName)) return d.FullName;
        foreach (var a in typeof(NativeToolchain).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>())
            if (a.Key == "RepoRoot" && a.Value is { Length: > 0 } v && IsRoot(v)) return Path.GetFullPath(v);
        throw new NativeToolchainException(
            $"cannot find the repository (a directory containing Retpoline.slnx) above {AppContext.BaseDirectory} or {Environment.CurrentDirectory}; set RETPOLINE_REPO_ROOT");
    }

    static bool IsRoot(string dir) => File.Exists(Path.Combine(dir, "Retpoline.slnx"));

    /// <summary>native/retpoline_thunks.S: the thunks the package links into every binary.</summary>
    public static string ThunksSource => RequireFile(Path.Combine(RepoRoot, "native", "retpoline_thunks.S"));

    // The tools; tests/tools.txt names the Debian 12 package of each (Preconditions says it when one is missing).
    public static string Gcc => Preconditions.Locate("gcc");
    public static string Gxx => Preconditions.Locate("g++");
    public static string Clang => Preconditions.Locate("clang-14");
    public static string Clangxx => Preconditions.Locate("clang++-14");
    /// <summary>lld 14. Link with it through <c>clang-14 -fuse-ld=lld</c> (<see cref="Run(string, IEnumerable{string}, string?, IReadOnlyDictionary{string, string?}?, TimeSpan?)"/> checks it is installed first).</summary>
    public static string Lld => Preconditions.Locate("ld.lld-14");
    public static string Objdump => Preconditions.Locate("objdump");
    public static string Nm => Preconditions.Locate("nm");
    public static string Strip => Preconditions.Locate("strip");
    public static string Objcopy => Preconditions.Locate("objcopy");
    public static string Readelf => Preconditions.Locate("readelf");

    /// <summary>
    /// The full path of <paramref name="tool"/>, or a failure with the install line: the package from tests/tools.txt
    /// when the tool is listed there, else <paramref name="aptPackage"/>.
    /// </summary>
    public static string Require(string tool, string aptPackage)
    {
        if (Preconditions.Packages.Any(p => p.Provides.Contains(tool))) return Preconditions.Locate(tool);
        return Which(tool) ?? throw new NativeToolchainException(
            $"this test needs {tool}, which is not installed: apt-get install -y --no-install-recommends {aptPackage} (PATH={Environment.GetEnvironmentVariable("PATH")})");
    }

    /// <summary>The full path of an executable on PATH, or null.</summary>
    public static string? Which(string tool)
    {
        if (tool.Contains('/')) return File.Exists(tool) ? Path.GetFullPath(tool) : null;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate) && IsExecutable(candidate)) return candidate;
        }
        return null;
    }

    static bool IsExecutable(string path)
        => OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    static string RequireFile(string path) => File.Exists(path) ? path : throw new NativeToolchainException($"missing {path}");

    /// <summary><c>compiler FLAGS -c SOURCE -o OUTPUT</c>: one translation unit to an object. Returns <paramref name="output"/>.</summary>
    public static string Compile(string compiler, string source, string output, IEnumerable<string>? flags = null)
    {
        Run(compiler, [.. flags ?? [], "-c", source, "-o", output]).EnsureSuccess();
        return RequireFile(output);
    }

    /// <summary>
    /// <c>driver FLAGS INPUTS -o OUTPUT</c>: compile and/or link sources and objects with a compiler driver (gcc, g++,
    /// clang-14 with -fuse-ld=lld, …). Returns <paramref name="output"/>.
    /// </summary>
    public static string Link(string driver, IEnumerable<string> inputs, string output, IEnumerable<string>? flags = null)
    {
        Run(driver, [.. flags ?? [], .. inputs, "-o", output]).EnsureSuccess();
        return RequireFile(output);
    }

    /// <summary>Runs a built program (no shell); the caller checks the exit code and output.</summary>
    public static ProcessResult Run(string exe, params string[] args) => Run(exe, (IEnumerable<string>)args);

    /// <summary>
    /// Starts <paramref name="file"/> with <paramref name="args"/> as separate argv entries, captures stdout and stderr,
    /// and kills the process tree after <paramref name="timeout"/> (then throws). Never throws for a non-zero exit.
    /// </summary>
    public static ProcessResult Run(string file, IEnumerable<string> args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
        => Start(file, args, workingDirectory, environment, timeout, null);

    /// <summary>
    /// Like <see cref="Run(string, IEnumerable{string}, string?, IReadOnlyDictionary{string, string?}?, TimeSpan?)"/>, but
    /// hands each stdout line to <paramref name="onLine"/> (on one thread, in order) instead of keeping it: for tools
    /// whose output is too large to hold (objdump -d of libLLVM is gigabytes). Throws unless the tool exits 0.
    /// </summary>
    public static ProcessResult RunLines(string file, IEnumerable<string> args, Action<string> onLine, TimeSpan? timeout = null)
        => Start(file, args, null, null, timeout, onLine).EnsureSuccess();

    static ProcessResult Start(string file, IEnumerable<string> args, string? workingDirectory,
        IReadOnlyDictionary<string, string?>? environment, TimeSpan? timeout, Action<string>? onLine)
    {
        CheckInstalled(file, args);
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        // Compiler messages in English and without colour escapes, whatever the machine's locale.
        psi.Environment["LC_ALL"] = "C";
        psi.Environment["GCC_COLORS"] = "";
        if (environment is not null)
            foreach (var (k, v) in environment)
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;

        string commandLine = FormatCommand(file, psi.ArgumentList);
        var watch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stdout)
                if (onLine is null) stdout.Append(e.Data).Append('\n'); else onLine(e.Data);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        // ETXTBSY: a test that just wrote this executable (a copy, a patch) can still have a write descriptor open in a
        // child that another test thread forked before its exec closed it; the child's exec ends that within
        // milliseconds, so a start refused for it is retried, as Go's os/exec does.
        const int TextFileBusy = 26;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                if (!process.Start()) throw new NativeToolchainException($"could not start: {commandLine}");
                break;
            }
            catch (System.ComponentModel.Win32Exception e) when (e.NativeErrorCode == TextFileBusy && attempt < 50)
            {
                Thread.Sleep(20);
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new NativeToolchainException($"could not start ({e.Message}): {commandLine}");
            }
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var limit = timeout ?? DefaultTimeout;
        if (!process.WaitForExit(limit))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            throw new NativeToolchainException($"timed out after {limit.TotalSeconds:0}s and was killed: {commandLine}\n--- stderr ---\n{stderr}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        string o, e2;
        lock (stdout) o = stdout.ToString();
        lock (stderr) e2 = stderr.ToString();
        return new ProcessResult(commandLine, process.ExitCode, o, e2, watch.Elapsed);
    }

    /// <summary>
    /// A tool tests/tools.txt lists fails here, before it is started, with its install line: a bare program name that
    /// is not installed, or a link through lld (`-fuse-ld=lld`) without ld.lld-14, which would otherwise fail as a
    /// linker error deep in a fixture build.
    /// </summary>
    static void CheckInstalled(string file, IEnumerable<string> args)
    {
        if (!file.Contains('/') && Which(file) is null && Preconditions.Packages.Any(p => p.Provides.Contains(file)))
            Preconditions.Require(file);
        if (args.Contains("-fuse-ld=lld")) Preconditions.Require("ld.lld-14");
    }

    /// <summary>A command line for messages, each argument quoted the way a POSIX shell would need it.</summary>
    public static string FormatCommand(string file, IEnumerable<string> args)
        => string.Join(' ', new[] { file }.Concat(args).Select(Quote));

    static string Quote(string a)
        => a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=,:+@%".Contains(c)) ? a : "'" + a.Replace("'", "'\\''") + "'";
}

/// <summary>
/// A directory under <see cref="Path.GetTempPath"/> for one test run (or one test), deleted with everything in it on
/// <see cref="Dispose"/>, including files a test made unreadable.
/// </summary>
public sealed class TempDirectory : IDisposable
{
    public string Path { get; }

    public TempDirectory(string prefix = "retpoline-tests-")
    {
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
    }

    /// <summary>A path inside the directory (not created).</summary>
    public string this[string name] => System.IO.Path.Combine(Path, name);

    public string Write(string name, string text)
    {
        string p = this[name];
        File.WriteAllText(p, text);
        return p;
    }

    public string Write(string name, byte[] bytes)
    {
        string p = this[name];
        File.WriteAllBytes(p, bytes);
        return p;
    }

    public string Copy(string from, string name)
    {
        string p = this[name];
        File.Copy(from, p, overwrite: true);
        return p;
    }

    /// <summary>A fresh subdirectory.</summary>
    public string Subdirectory(string name) => Directory.CreateDirectory(this[name]).FullName;

    public void Dispose()
    {
        try
        {
            if (!Directory.Exists(Path)) return;
            if (!OperatingSystem.IsWindows())
                foreach (var entry in Directory.EnumerateFileSystemEntries(Path, "*", SearchOption.AllDirectories))
                    try { File.SetUnixFileMode(entry, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
