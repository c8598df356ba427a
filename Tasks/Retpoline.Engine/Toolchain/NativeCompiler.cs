namespace Retpoline.Toolchain;

/// <summary>One translation unit: where it comes from, where its object goes, and the exact command.</summary>
/// <param name="Toolchain">Which compiler build runs the command (<see cref="CompilerInfo.VersionLine"/>s).</param>
public sealed record CompileStep(string Source, string Object, string DepFile, string CommandFile, string Compiler, IReadOnlyList<string> Arguments, string Toolchain = "")
{
    public string CommandLine => ProcessRunner.Display(Compiler, Arguments);

    /// <summary>
    /// What the `.cmd` file beside the object holds and the up-to-date check compares: the command line, then the
    /// compiler build that ran it, so upgrading the compiler in place (same path, same flags: `apt-get upgrade`)
    /// rebuilds what it compiled, as a changed flag does.
    /// </summary>
    public string Record => Toolchain.Length == 0 ? CommandLine : $"{CommandLine}\n# {Toolchain}";
}

public sealed record CompileOutcome(CompileStep Step, bool Succeeded, IReadOnlyList<CompilerDiagnostic> Diagnostics);

/// <summary>
/// Compiles sources in parallel, like make -j/ninja: an object is rebuilt only when it is missing, its command line
/// changed (recorded beside it as `.cmd`), or its source or any header it included (from the `-MMD` dep file) is
/// newer. Otherwise no compiler process starts at all.
/// </summary>
public static class NativeCompiler
{
    public static CompileStep Plan(CompilerInfo cc, CompilerInfo? cxx, NativeSettings s, string source, string projectDirectory, string intermediateDirectory)
    {
        string language = FlagSet.Language(source) ?? throw new ToolchainException(ToolchainCodes.InvalidPropertyOrItem, $"'{source}' is not a C, C++ or assembly source");
        var compiler = language == "c++" ? cxx ?? cc : cc;
        string full = Path.GetFullPath(source, projectDirectory);
        // Objects mirror the source's path under the project so two util.c in different folders do not collide;
        // sources outside the project (the package's thunks) go under _ext/<hash of their folder>/.
        string rel = Path.GetRelativePath(projectDirectory, full);
        if (rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel))
            rel = Path.Combine("_ext", ShortHash(Path.GetDirectoryName(full)!), Path.GetFileName(full));
        string obj = Path.Combine(intermediateDirectory, rel + ".o");
        string dep = obj[..^2] + ".d";
        var args = FlagSet.Compile(compiler, s, language, full, obj, dep);
        var command = CompilerCommand.Parse(compiler.Path); // `ccache gcc`: ccache runs, gcc and the flags are its arguments
        return new CompileStep(full, obj, dep, obj[..^2] + ".cmd", command.Program, [.. command.Prefix, .. args], compiler.VersionLine);
    }

    static string ShortHash(string s) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(s)))[..12].ToLowerInvariant();

    /// <param name="workingDirectory">Where the compiler runs (<see cref="Run"/>'s): a relative path in the dep file
    /// (a header found through `-Iinclude` in CFlags) is relative to it.</param>
    public static bool IsUpToDate(CompileStep step, string? workingDirectory = null)
    {
        var obj = new FileInfo(step.Object);
        if (!obj.Exists) return false;
        try { if (File.ReadAllText(step.CommandFile) != step.Record) return false; }
        catch (IOException) { return false; }
        var deps = DepFile.Read(step.DepFile);
        if (deps is null || deps.Count == 0) return false;
        foreach (var d in deps.Append(step.Source))
        {
            var f = new FileInfo(Path.GetFullPath(d, workingDirectory ?? Path.GetDirectoryName(step.Source)!));
            if (!f.Exists || f.LastWriteTimeUtc > obj.LastWriteTimeUtc) return false;
        }
        return true;
    }

    public static CompileOutcome Run(CompileStep step, CompilerFamily family, string workingDirectory)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(step.Object)!);
        File.Delete(step.CommandFile); // a failed compile must not look up to date next time
        var r = ProcessRunner.Run(step.Compiler, step.Arguments, workingDirectory);
        string output = (r.StandardError + r.StandardOutput).Trim();
        var diagnostics = CompilerDiagnostics.Parse(output, family);
        bool ok = r.ExitCode == 0;
        if (ok) File.WriteAllText(step.CommandFile, step.Record);
        else if (!diagnostics.Any(d => d.Severity == Severity.Error))
            diagnostics.Add(new CompilerDiagnostic(Severity.Error, step.Source, 0, 0, ToolchainCodes.CompileFailed,
                $"{Path.GetFileName(step.Compiler)} exited with code {r.ExitCode}: {(output.Length > 0 ? output : "no output")}"));
        return new CompileOutcome(step, ok, diagnostics);
    }
}
