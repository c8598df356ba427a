namespace Retpoline.Toolchain;

/// <summary>
/// How native/retpoline_runtime.c (RetpolineVendor=Runtime) is compiled: with the project's mitigation (so it calls no
/// thunk unprotected and matches the return-thunk and SLS settings) and its path maps, but never with the project's
/// CFlags, defines or configuration: it runs before the C library is initialised, so nothing may instrument it
/// (sanitizers, profilers, stack protectors) and the compiler may not turn its loops into library calls or its
/// conditions into jump tables (an indirect jump).
/// </summary>
public static class RuntimeRoutineFlags
{
    public const string Source = "retpoline_runtime.c";

    /// <param name="minimum">RetpolineRuntimeMinimum: Generic builds a routine that never runs (nothing could change).</param>
    /// <param name="depFile">Where the compiler lists the headers it read (the generated tables), for incremental builds.</param>
    public static List<string> Compile(CompilerInfo c, NativeSettings s, Vendor minimum, string source, string obj, string? depFile = null)
    {
        var f = new List<string>(FlagSet.Mitigation(c, s with { RetpolineEnabled = true }))
        {
            "-O2", "-g", "-fPIC", "-ffreestanding", "-fno-builtin", "-fno-jump-tables", "-fno-stack-protector",
            // IBT-marked like the thunks: an object without the marking would drop it from the whole link.
            "-fcf-protection=branch",
        };
        if (c.Family == CompilerFamily.Gcc) f.Add("-fno-tree-loop-distribute-patterns"); // no memset/memcpy calls for loops
        f.Add($"-DRETPOLINE_RUNTIME_MINIMUM={(int)minimum}");
        if (s.OutputType == "Library") f.Add("-DRETPOLINE_RUNTIME_SHARED");
        foreach (var (from, to) in s.PathMaps) f.Add($"-ffile-prefix-map={from}={to}");
        if (depFile is not null) f.AddRange(["-MMD", "-MF", depFile]);
        f.AddRange(["-c", source, "-o", obj]);
        return f;
    }
}
