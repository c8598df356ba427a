namespace Retpoline.Toolchain;

/// <summary>
/// The `-ffile-prefix-map` pairs that keep the checkout's absolute path out of every object and its debug info, so two
/// checkouts build the same bytes. The project folder becomes `.`, the package's native/ folder `retpoline-sdk`, and
/// each other folder a compile reads (an include directory, a source's folder) that shares more than `/` with the
/// project becomes its path relative to the project, e.g. `../mathx`. Folders that share nothing but `/` with the
/// project (system headers) keep their absolute paths, which do not depend on the checkout. The project and package
/// come last: GCC applies the last matching map and Clang the longest, so both agree.
/// </summary>
public static class PathMaps
{
    public static IReadOnlyList<(string From, string To)> For(string projectDirectory, string packageNativeDirectory, IEnumerable<string> folders)
    {
        string project = WithSlash(Path.GetFullPath(projectDirectory));
        string native = WithSlash(Path.GetFullPath(packageNativeDirectory));
        // The first component of the project's path: `/work/` for `/work/main/app/`.
        int second = project.IndexOf('/', 1);
        string top = second < 0 ? project : project[..(second + 1)];

        var maps = new List<(string, string)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in folders)
        {
            if (folder.Length == 0) continue;
            string dir = WithSlash(Path.GetFullPath(folder, project));
            if (!seen.Add(dir) || dir == native) continue;
            if (dir.StartsWith(top, StringComparison.Ordinal) && !dir.StartsWith(project, StringComparison.Ordinal))
                maps.Add((dir.TrimEnd('/'), Path.GetRelativePath(project, dir).TrimEnd('/')));
        }
        maps.Add((project.TrimEnd('/'), "."));
        maps.Add((native.TrimEnd('/'), "retpoline-sdk"));
        return maps;
    }

    static string WithSlash(string path) => path.EndsWith('/') ? path : path + "/";
}
