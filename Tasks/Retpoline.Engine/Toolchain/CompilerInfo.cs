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
    public bool TargetsX86_64 => Target.StartsWith("x86_64-", StringComparison.Ordinal) && !Target.EndsWith("-gnux32", StringComparison.Ordinal);

    /// <summary>One line for the cache file and the build log.</summary>
    public string Serialize() => string.Join('|', Path, Family, Version, Target, SupportsRetpoline, SupportsReturnThunk, SupportsCsPrefix, SupportsHardenSls);

    public static CompilerInfo? Deserialize(string line)
    {
        var p = line.Trim().Split('|');
        if (p.Length != 8 || !Enum.TryParse<CompilerFamily>(p[1], out var family) || !Version.TryParse(p[2], out var version)) return null;
        return new CompilerInfo(p[0], family, version, p[3], bool.Parse(p[4]), bool.Parse(p[5]), bool.Parse(p[6]), bool.Parse(p[7]));
    }
}
