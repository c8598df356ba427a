namespace Retpoline.Toolchain;

/// <summary>What a native project asks for; the MSBuild properties of DESIGN.md §4, already parsed.</summary>
public sealed record NativeSettings
{
    public string Configuration { get; init; } = "Debug";
    /// <summary>Exe | Library | StaticLibrary.</summary>
    public string OutputType { get; init; } = "Exe";
    public bool RetpolineEnabled { get; init; } = true;
    public bool ReturnThunk { get; init; }
    public bool HardenSls { get; init; }
    public bool CsPrefix { get; init; }
    public string CStandard { get; init; } = "";
    public string CxxStandard { get; init; } = "";
    public IReadOnlyList<string> Defines { get; init; } = [];
    public IReadOnlyList<string> IncludeDirectories { get; init; } = [];
    public IReadOnlyList<string> CFlags { get; init; } = [];
    public IReadOnlyList<string> CxxFlags { get; init; } = [];
    public IReadOnlyList<string> LdFlags { get; init; } = [];
    public IReadOnlyList<string> LinkLibraries { get; init; } = [];
    /// <summary>`-ffile-prefix-map=FROM=TO` pairs: no absolute build path is baked into objects or debug info.</summary>
    public IReadOnlyList<(string from, string to)> PathMaps { get; init; } = [];
    /// <summary>Set: the source is native/retpoline_runtime.c, compiled with its own flags for this minimum (<see cref="RuntimeRoutineFlags"/>).</summary>
    public Vendor? RuntimeRoutineMinimum { get; init; }
}

/// <summary>
/// The flags for each step (DESIGN.md §3/§4). Order matters and is fixed: mitigation, configuration, output type,
/// standard, defines, includes, then the user's own flags last so they can override anything.
/// </summary>
public static class FlagSet
{
    public static IReadOnlyList<string> Mitigation(CompilerInfo c, NativeSettings s)
    {
        if (!s.RetpolineEnabled) return [];
        var f = new List<string>();
        if (c.Family == CompilerFamily.Gcc) f.AddRange(["-mindirect-branch=thunk-extern", "-mindirect-branch-register"]);
        else f.Add("-mretpoline-external-thunk");
        if (s.ReturnThunk) f.Add("-mfunction-return=thunk-extern");
        if (s.CsPrefix && c.SupportsCsPrefix) f.Add("-mindirect-branch-cs-prefix");
        if (s.HardenSls) f.Add("-mharden-sls=all");
        // -fno-plt: imported calls go through the GOT via a thunk instead of a PLT entry's `jmp *GOT`.
        f.Add("-fno-plt");
        return f;
    }

    public static List<string> Compile(CompilerInfo c, NativeSettings s, string language, string source, string obj, string depFile)
    {
        if (s.RuntimeRoutineMinimum is { } minimum) return RuntimeRoutineFlags.Compile(c, s, minimum, source, obj, depFile);
        var f = new List<string>(Mitigation(c, s));
        f.AddRange(s.Configuration.Equals("Release", StringComparison.OrdinalIgnoreCase) ? ["-O2", "-g"] : ["-O0", "-g"]);
        if (s.OutputType == "Library" || s.OutputType == "StaticLibrary") f.Add("-fPIC");
        // Clang's -fno-plt covers declarations only: a call to an exported function defined in the same file still
        // goes through that function's PLT entry (an unmitigated `jmp *GOT`, RPL0002) so it can be interposed.
        // -fno-semantic-interposition binds such same-file calls directly, which Clang's -O2 already does when it
        // inlines them; calls across files still go through the GOT and the thunk and stay interposable. GCC needs
        // nothing: its -fno-plt calls definitions through the GOT too. (-Wl,-Bsymbolic-functions also removes the
        // entries, but binds every call in the library, across files too: more than the mitigation needs.)
        if (s.RetpolineEnabled && s.OutputType == "Library" && c.Family == CompilerFamily.Clang) f.Add("-fno-semantic-interposition");
        string std = language == "c++" ? s.CxxStandard : language == "c" ? s.CStandard : "";
        if (std.Length > 0) f.Add("-std=" + std);
        foreach (var (from, to) in s.PathMaps) f.Add($"-ffile-prefix-map={from}={to}");
        foreach (var d in s.Defines) f.Add("-D" + d);
        foreach (var i in s.IncludeDirectories) f.Add("-I" + i);
        f.AddRange(language == "c++" ? s.CxxFlags : s.CFlags);
        f.AddRange(["-MMD", "-MF", depFile, "-c", source, "-o", obj]);
        return f;
    }

    public static List<string> Link(NativeSettings s, IEnumerable<string> objects, string output)
    {
        var f = new List<string>();
        // A soname, so whoever links us by path records `libx.so` (found beside it at run time), not that path.
        if (s.OutputType == "Library") f.AddRange(["-shared", "-Wl,-soname," + Path.GetFileName(output)]);
        if (s.RetpolineEnabled) f.AddRange(["-fno-plt", "-Wl,-z,now", "-Wl,-z,relro"]);
        var inputs = objects.ToList();
        // Shared libraries of referenced projects are copied next to the output (GetCopyToOutputDirectoryItems).
        if (inputs.Any(i => i.EndsWith(".so", StringComparison.Ordinal))) f.Add("-Wl,-rpath,$ORIGIN");
        f.AddRange(inputs);
        f.AddRange(["-o", output]);
        foreach (var l in s.LinkLibraries) f.Add(l.StartsWith('-') || l.Contains('/') ? l : "-l" + l);
        f.AddRange(s.LdFlags);
        return f;
    }

    /// <summary>Splits a flags property the way a shell would split words (quotes group, nothing is expanded).</summary>
    public static List<string> SplitFlags(string? text)
    {
        var list = new List<string>();
        if (string.IsNullOrWhiteSpace(text)) return list;
        var cur = new System.Text.StringBuilder();
        char quote = '\0'; bool any = false;
        foreach (char ch in text)
        {
            if (quote != '\0') { if (ch == quote) quote = '\0'; else cur.Append(ch); continue; }
            if (ch is '"' or '\'') { quote = ch; any = true; continue; }
            if (char.IsWhiteSpace(ch)) { if (cur.Length > 0 || any) { list.Add(cur.ToString()); cur.Clear(); any = false; } continue; }
            cur.Append(ch);
        }
        if (cur.Length > 0 || any) list.Add(cur.ToString());
        return list;
    }

    /// <summary>c, c++ or assembler-with-cpp, from the file extension; null for anything we do not compile.</summary>
    public static string? Language(string path) => Path.GetExtension(path) switch
    {
        ".c" => "c",
        ".cc" or ".cpp" or ".cxx" or ".C" => "c++",
        ".S" or ".s" => "asm",
        _ => null,
    };
}
