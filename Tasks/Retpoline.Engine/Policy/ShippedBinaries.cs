using Retpoline.Elf;

namespace Retpoline.Policy;

/// <summary>
/// A file a project ships (or may ship): where it is, where it lands relative to the folder it ships in, how it gets
/// there (`output`, `ProjectReference ../x/x.nativeproj`, `package Foo/1.2.3`, `None`, `Content`, `RetpolineBinary`),
/// and whether the user named it (a RetpolineBinary item: a request to verify it, so not being able to is worth a word).
/// </summary>
public sealed record ShippedFile(string Path, string RelativePath, string ShippedAs, bool Named = false);

/// <summary>What happens to one shipped file, in the order it is decided.</summary>
public enum ShippedVerdict
{
    /// <summary>The file does not exist (not built yet, or a stale item).</summary>
    Missing,
    /// <summary>Not an x86-64 ELF file (by its first bytes): nothing to verify.</summary>
    NotX86_64Elf,
    /// <summary>The .NET SDK's application host for `name.dll`: Microsoft's executable, not this solution's code.</summary>
    DotNetAppHost,
    /// <summary>A RetpolineExclude matched: left unverified, with the waiver's reason.</summary>
    Exempt,
    /// <summary>Verified with the project's <see cref="ProjectPolicy.VerifyOptions"/>.</summary>
    Verify,
}

public sealed record ShippedDecision(ShippedFile File, ShippedVerdict Verdict, Sniff Sniff, FileWaiver? Exemption)
{
    /// <summary>
    /// A named file that is missing or not x86-64 ELF and not exempt: nothing verified it, though the user asked
    /// (warning RPL0213 in a build). Implicit files (None/Content, package assets) are mostly not ELF: no word.
    /// </summary>
    public bool NamedButNotVerifiable => File.Named && Exemption is null && Verdict is ShippedVerdict.Missing or ShippedVerdict.NotX86_64Elf;
}

/// <summary>
/// The one answer to "which of these shipped files are verified, and how": the build's output verification
/// (VerifyOutputTask) and `retpoline audit` both decide each file here, from the same candidates, waivers and policy.
/// Whether a file is x86-64 ELF is decided before exclusions are consulted (an exempt text file is simply not
/// ELF); a .NET apphost is never verified; then RetpolineExclude by file name or output-relative path.
/// </summary>
public static class ShippedBinaries
{
    public static ShippedDecision Decide(ShippedFile file, WaiverSet waivers)
    {
        var exemption = waivers.Exempting(file.Path, file.RelativePath);
        var sniff = ElfSniff.Read(file.Path);
        var verdict = sniff.Kind == SniffKind.Missing ? ShippedVerdict.Missing
            : !sniff.IsX86_64Elf ? ShippedVerdict.NotX86_64Elf
            : IsDotNetAppHost(file.Path) ? ShippedVerdict.DotNetAppHost
            : exemption is not null ? ShippedVerdict.Exempt
            : ShippedVerdict.Verify;
        return new ShippedDecision(file, verdict, sniff, exemption);
    }

    /// <summary>`a/b/libx.so` relative to <paramref name="folder"/>, `/` separated; the file name without a folder.</summary>
    public static string RelativeTo(string? folder, string path)
        => string.IsNullOrEmpty(folder) ? System.IO.Path.GetFileName(path) : System.IO.Path.GetRelativePath(folder, path).Replace('\\', '/');

    /// <summary>
    /// The .NET SDK's apphost for `name.dll` (a project's own, or a referenced Exe's copied beside it): an executable
    /// `name` next to `name.dll` and `name.runtimeconfig.json`.
    /// </summary>
    public static bool IsDotNetAppHost(string path)
        => System.IO.Path.GetExtension(path).Length == 0 && System.IO.File.Exists(path + ".dll") && System.IO.File.Exists(path + ".runtimeconfig.json");
}
