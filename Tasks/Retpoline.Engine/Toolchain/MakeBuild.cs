namespace Retpoline.Toolchain;

/// <summary>
/// A Makefile project built as it is. Variables given on make's command line override every assignment in the
/// Makefile (GNU make, "Overriding Variables"), and every implicit and explicit rule that compiles or links runs
/// `$(CC)`/`$(CXX)`: so the mitigation travels inside `CC="gcc -mindirect-branch=… -fno-plt"`, where a Makefile's
/// own `CFLAGS = -O2` cannot drop it (a command-line `CFLAGS=` would replace the Makefile's and lose its flags, and
/// an environment CFLAGS loses to the Makefile's). The thunk object and the link flags ride along as `-Wl,` options,
/// which the compiler hands to the linker only when it links: every executable and shared library gets the thunks
/// exactly once, compiles are unaffected (Clang is told not to warn about them with -Qunused-arguments).
/// </summary>
public static class MakeBuild
{
    public static List<string> Arguments(ForeignBuildSettings s, string directory, int jobs, IEnumerable<string> targets)
    {
        var extra = new List<string>(s.CompileFlags);
        if (s.RetpolineEnabled && s.ThunkObject.Length > 0) extra.Add("-Wl," + s.ThunkObject);
        extra.AddRange(s.LinkFlags);
        if (s.RetpolineEnabled && s.Family == CompilerFamily.Clang) extra.Add("-Qunused-arguments");
        var a = new List<string> { "-C", directory, "-j" + Math.Max(1, jobs).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        a.AddRange(targets);
        // make hands each rule to the shell, which splits $(CC) into words again: each one quoted as it needs.
        a.Add("CC=" + string.Join(' ', FlagSet.SplitFlags(s.CC).Concat(extra).Select(ProcessRunner.Quote)));
        a.Add("CXX=" + string.Join(' ', FlagSet.SplitFlags(s.CXX).Concat(extra).Select(ProcessRunner.Quote)));
        return a;
    }

    public static ForeignStep Build(string make, ForeignBuildSettings s, string directory, int jobs, IReadOnlyList<string> targets)
    {
        if (!new[] { "GNUmakefile", "makefile", "Makefile" }.Any(f => File.Exists(Path.Combine(directory, f))))
            return new ForeignStep(false, "", "", [new CompilerDiagnostic(Severity.Error, null, 0, 0, CMakeCodes.NoSuchTarget,
                $"MakeDirectory '{directory}' has no Makefile (GNUmakefile, makefile or Makefile); set MakeDirectory to the folder that has it")]);
        return CMakeBuild.RunBuildTool(make, Arguments(s, directory, jobs, targets), directory, s.Family, null, CMakeBuild.Make);
    }

    /// <summary>A NativeOutput's kind from its metadata, else from its name: `.so` (or `.so.N`) Library, `.a` StaticLibrary, else Exe.</summary>
    public static string KindOf(string path, string declared)
    {
        if (declared.Length > 0) return declared;
        string name = Path.GetFileName(path);
        if (name.EndsWith(".a", StringComparison.Ordinal)) return "StaticLibrary";
        if (name.EndsWith(".so", StringComparison.Ordinal) || name.Contains(".so.", StringComparison.Ordinal)) return "Library";
        return "Exe";
    }
}
