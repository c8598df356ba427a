namespace Retpoline.Tests;

/// <summary>
/// What a test needs from the machine, checked before the test starts its work, so that a missing tool fails it with
/// the one `apt-get install` line that fixes it instead of a linker error further down. The packages come from
/// tests/tools.txt, the list tests/run installs from: a test and the script never disagree about a package name.
/// </summary>
public static class Preconditions
{
    /// <summary>One line of tests/tools.txt: a Debian package and the commands or files that show it is installed.</summary>
    public sealed record Package(string Name, bool FromImage, IReadOnlyList<string> Provides);

    static readonly Lazy<IReadOnlyList<Package>> Table = new(ReadTable);

    public static IReadOnlyList<Package> Packages => Table.Value;

    static IReadOnlyList<Package> ReadTable()
    {
        string path = Path.Combine(NativeToolchain.RepoRoot, "tests", "tools.txt");
        var list = new List<Package>();
        foreach (var raw in File.ReadLines(path))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 3 || fields[1] is not ("install" or "image"))
                throw new InvalidDataException($"{path}: '{raw}' is not 'package install|image command-or-file…'");
            list.Add(new Package(fields[0], fields[1] == "image", fields[2..]));
        }
        return list;
    }

    /// <summary>The Debian package that provides <paramref name="commandOrFile"/>, from tests/tools.txt.</summary>
    public static Package PackageOf(string commandOrFile)
        => Packages.FirstOrDefault(p => p.Provides.Contains(commandOrFile))
           ?? throw new InvalidOperationException($"'{commandOrFile}' is not in tests/tools.txt: add the Debian package that provides it there");

    /// <summary>
    /// The full path of a command (on PATH, or in /usr/sbin or /sbin, where libcap2-bin puts setcap), or of a file
    /// named by its absolute path; null when it is not there.
    /// </summary>
    public static string? Find(string commandOrFile)
    {
        if (commandOrFile.StartsWith('/')) return File.Exists(commandOrFile) ? commandOrFile : null;
        return NativeToolchain.Which(commandOrFile)
               ?? new[] { "/usr/sbin", "/sbin" }.Select(d => Path.Combine(d, commandOrFile)).FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// Fails the calling test, once and before it does anything, when any of <paramref name="commandsOrFiles"/> is
    /// missing: the message names every missing one and the one apt-get line that installs them all.
    /// </summary>
    public static void Require(params string[] commandsOrFiles)
    {
        var missing = commandsOrFiles.Where(c => Find(c) is null).ToList();
        if (missing.Count > 0) throw new NativeToolchainException(MissingMessage(missing));
    }

    /// <summary>The full path of <paramref name="commandOrFile"/>, or the failure <see cref="Require"/> gives.</summary>
    public static string Locate(string commandOrFile)
        => Find(commandOrFile) ?? throw new NativeToolchainException(MissingMessage([commandOrFile]));

    /// <summary>`this test needs ld.lld-14, which is not installed: apt-get install -y --no-install-recommends lld-14 …`</summary>
    public static string MissingMessage(IReadOnlyList<string> missing)
    {
        var packages = missing.Select(PackageOf).Distinct().ToList();
        string what = string.Join(", ", missing);
        string line = "apt-get install -y --no-install-recommends " + string.Join(' ', packages.Select(p => p.Name));
        string who = packages.Any(p => p.FromImage)
            ? "the test machine's image is expected to bring it"
            : "tests/run installs it when run as root";
        return $"this test needs {what}, which {(missing.Count == 1 ? "is" : "are")} not installed: {line} ({who})";
    }
}
