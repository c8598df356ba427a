namespace Retpoline.Toolchain;

/// <summary>What one run of cmake, make or ctest did: whether it succeeded, its output, and the diagnostics in it.</summary>
public sealed record ForeignStep(bool Ok, string CommandLine, string Output, IReadOnlyList<CompilerDiagnostic> Diagnostics, bool Ran = true);

/// <summary>
/// Configure and build of a CMake project in the SDK's build tree: configure only when never configured or when the
/// injected settings changed (`--fresh`, so a changed compiler is picked up), then `cmake --build`, whose own
/// regeneration check re-runs CMake when a CMakeLists.txt changed.
/// </summary>
public static class CMakeBuild
{
    /// <param name="recordFile">The last successful configure's command and toolchain file, to compare with.</param>
    /// <param name="generator">CMakeGenerator, or empty: <see cref="CMakeProject.Generator"/> chooses.</param>
    public static ForeignStep Configure(string cmake, ForeignBuildSettings s, string source, string build, string toolchainFile, string recordFile,
        IEnumerable<(string name, string value)> defines, string generator = "")
    {
        if (!File.Exists(Path.Combine(source, "CMakeLists.txt")))
            return Failed(CMakeCodes.NoSuchTarget, $"CMakeSourceDirectory '{source}' has no CMakeLists.txt; set CMakeSourceDirectory to the folder that has it");
        string toolchain = CMakeProject.ToolchainFile(s);
        string? include = CMakeProject.ProjectInclude(s);
        string includeFile = Path.Combine(Path.GetDirectoryName(toolchainFile)!, "cmake-project-include.cmake");
        var args = CMakeProject.ConfigureArguments(source, build, toolchainFile, generator.Length > 0 ? generator : CMakeProject.Generator(build), s.Configuration, defines,
            include is null ? null : includeFile);
        string record = ProcessRunner.Display(cmake, args) + "\n" + toolchain + include;
        if (!CMakeProject.NeedsConfigure(build, recordFile, record))
        {
            // CMake's own regeneration check (the rule that re-runs CMake when a CMakeLists.txt or an included file
            // changed), before the outputs are read: they are the edited project's.
            string check = CMakeProject.Generator(build) == "Ninja" ? "build.ninja" : "cmake_check_build_system";
            var regenerate = RunBuildTool(cmake, ["--build", build, "--target", check], build, s.Family, source, Cmake);
            return regenerate with { Ran = false };
        }

        Directory.CreateDirectory(build);
        Directory.CreateDirectory(Path.GetDirectoryName(toolchainFile)!);
        File.WriteAllText(toolchainFile, toolchain);
        if (include is not null) File.WriteAllText(includeFile, include);
        CMakeFileApi.WriteQuery(build);
        // A cache made with other compilers or flags cannot be updated in place: CMake keeps the first compiler.
        if (File.Exists(Path.Combine(build, "CMakeCache.txt"))) args.Add("--fresh");
        File.Delete(recordFile);
        var r = ProcessRunner.Run(cmake, args, build);
        string output = (r.StandardOutput + r.StandardError).Trim();
        if (r.ExitCode == -1 && r.StandardError.StartsWith("cannot start", StringComparison.Ordinal)) return NotFound(cmake, Cmake);
        var diagnostics = CMakeMessages.Parse(r.StandardOutput + "\n" + r.StandardError, source);
        if (r.ExitCode != 0)
        {
            if (!diagnostics.Any(d => d.Severity == Severity.Error))
                diagnostics.Add(new CompilerDiagnostic(Severity.Error, null, 0, 0, CMakeCodes.CMakeError, $"cmake exited with code {r.ExitCode}: {Tail(output)}"));
            return new ForeignStep(false, ProcessRunner.Display(cmake, args), output, diagnostics);
        }
        File.WriteAllText(recordFile, record);
        return new ForeignStep(true, ProcessRunner.Display(cmake, args), output, diagnostics);
    }

    public static ForeignStep Build(string cmake, string source, string build, int jobs, IReadOnlyList<string> targets, CompilerFamily family)
    {
        var args = new List<string> { "--build", build, "--parallel", Math.Max(1, jobs).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (targets.Count > 0) { args.Add("--target"); args.AddRange(targets); }
        return RunBuildTool(cmake, args, build, family, source, Cmake);
    }

    /// <summary>What to install, and which property names the program, when cmake or make cannot be started.</summary>
    public const string Cmake = "apt-get install cmake (3.14 or newer), or set CMakeCommand to its path";
    public const string Make = "apt-get install make, or set MakeCommand to its path";

    /// <summary>
    /// A build tool's run (cmake --build, make): compiler and linker lines as GCC/CLANG/LD diagnostics at their
    /// files, CMake's own messages from a regeneration at theirs, and RPL0234 when it failed without either.
    /// </summary>
    /// <param name="install">What the RPL0230 message tells the user to do when the tool cannot be started.</param>
    public static ForeignStep RunBuildTool(string tool, IReadOnlyList<string> args, string workingDirectory, CompilerFamily family, string? cmakeSource,
        string install)
    {
        var r = ProcessRunner.Run(tool, args, workingDirectory);
        if (r.ExitCode == -1 && r.StandardError.StartsWith("cannot start", StringComparison.Ordinal)) return NotFound(tool, install);
        string output = (r.StandardOutput + "\n" + r.StandardError).Trim();
        var diagnostics = CompilerDiagnostics.Parse(output, family);
        if (cmakeSource is not null) diagnostics.AddRange(CMakeMessages.Parse(output, cmakeSource));
        if (r.ExitCode != 0 && !diagnostics.Any(d => d.Severity == Severity.Error))
            diagnostics.Add(new CompilerDiagnostic(Severity.Error, null, 0, 0, CMakeCodes.BuildFailed, $"{Path.GetFileName(tool)} exited with code {r.ExitCode}: {Tail(output)}"));
        return new ForeignStep(r.ExitCode == 0, ProcessRunner.Display(tool, args), output, diagnostics);
    }

    public static ForeignStep NotFound(string tool, string install)
        => Failed(CMakeCodes.ToolNotFound, $"cannot run '{tool}': it is not installed or not on PATH; {install}");

    static ForeignStep Failed(string code, string message) => new(false, "", "", [new CompilerDiagnostic(Severity.Error, null, 0, 0, code, message)]);

    /// <summary>The last lines of a long output: enough to see why, short enough for one diagnostic.</summary>
    public static string Tail(string output, int lines = 12)
    {
        var all = output.Trim().Split('\n');
        return all.Length == 0 || output.Trim().Length == 0 ? "no output" : string.Join(" | ", all.Skip(Math.Max(0, all.Length - lines)).Select(l => l.Trim()));
    }
}

/// <summary>
/// A static library's members as files, for verify (what the archive holds is what ships). Extracted again only when
/// the archive is newer than the last extraction, so a no-op build leaves their timestamps (and verify's stamps) be.
/// </summary>
public static class ArchiveMembers
{
    public static (IReadOnlyList<string> members, string? error) Extract(string ar, string archive, string directory)
    {
        string list = Path.Combine(directory, ".members");
        if (File.Exists(list) && File.GetLastWriteTimeUtc(list) >= File.GetLastWriteTimeUtc(archive))
            return (File.ReadAllLines(list).Select(m => Path.Combine(directory, m)).ToList(), null);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        Directory.CreateDirectory(directory);
        var t = ProcessRunner.Run(ar, ["t", archive], directory);
        if (t.ExitCode != 0) return ([], $"{ar} t {archive}: {t.StandardError.Trim()}");
        var x = ProcessRunner.Run(ar, ["x", archive], directory);
        if (x.ExitCode != 0) return ([], $"{ar} x {archive}: {x.StandardError.Trim()}");
        var names = t.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(n => n.EndsWith(".o", StringComparison.Ordinal)).Distinct().ToList();
        File.WriteAllLines(list, names);
        return (names.Select(m => Path.Combine(directory, m)).ToList(), null);
    }
}
