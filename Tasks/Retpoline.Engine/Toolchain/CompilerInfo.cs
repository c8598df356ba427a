namespace Retpoline.Toolchain;

public enum CompilerFamily { Gcc, Clang }

/// <summary>What probing a compiler found: who it is, what it targets, which retpoline flags it takes.</summary>
public sealed record CompilerInfo(
    string Path,
    CompilerFamily Family,
    Version Version,
    string Target,
    /// <summary>Takes the basic retpoline flag of its family (GCC ≥ 7.3/8, Clang ≥ 7).</summary>
    bool SupportsRetpoline,
    /// <summary>-mfunction-return=thunk-extern (GCC ≥ 8, Clang ≥ 15).</summary>
    bool SupportsReturnThunk,
    /// <summary>-mindirect-branch-cs-prefix (GCC ≥ 12, Clang ≥ 16 as -mindirect-branch-cs-prefix).</summary>
    bool SupportsCsPrefix,
    /// <summary>-mharden-sls=all (GCC ≥ 12, Clang ≥ 15).</summary>
    bool SupportsHardenSls)
{
    /// <summary>
    /// The compiler's own `-v` version line ("gcc version 12.2.0 (Debian 12.2.0-14+deb12u1)"): it names the build
    /// down to the distribution's revision, so an upgrade in place (same path, same flags) still rebuilds objects.
    /// </summary>
    public string VersionLine { get; init; } = "";

    public bool TargetsX86_64 => Target.StartsWith("x86_64-", StringComparison.Ordinal) && !Target.EndsWith("-gnux32", StringComparison.Ordinal);

    /// <summary>One line for the cache file and the build log.</summary>
    public string Serialize() => string.Join('|', Path, Family, Version, Target, SupportsRetpoline, SupportsReturnThunk, SupportsCsPrefix, SupportsHardenSls, VersionLine);

    public static CompilerInfo? Deserialize(string line)
    {
        var p = line.Trim().Split('|');
        // A cache written before a field was added has fewer: probe again rather than guess the missing one.
        if (p.Length != 9 || !Enum.TryParse<CompilerFamily>(p[1], out var family) || !Version.TryParse(p[2], out var version)) return null;
        return new CompilerInfo(p[0], family, version, p[3], bool.Parse(p[4]), bool.Parse(p[5]), bool.Parse(p[6]), bool.Parse(p[7])) { VersionLine = p[8] };
    }
}
