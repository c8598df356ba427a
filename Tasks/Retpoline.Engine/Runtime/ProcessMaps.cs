using System.Globalization;

namespace Retpoline.Runtime;

/// <summary>One line of /proc/PID/maps: `start-end perms offset dev inode path`.</summary>
public sealed record Mapping(ulong Start, ulong End, string Permissions, ulong Offset, string Device, ulong Inode, string Path)
{
    public bool Executable => Permissions.Length > 2 && Permissions[2] == 'x';
    public bool Deleted => Path.EndsWith(" (deleted)", StringComparison.Ordinal);

    /// <summary>Null for a line that is not a mapping (an empty line, or a kernel whose format we do not know).</summary>
    public static Mapping? Parse(string line)
    {
        var f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 5) return null;
        int dash = f[0].IndexOf('-');
        if (dash < 0 || !Hex(f[0][..dash], out ulong start) || !Hex(f[0][(dash + 1)..], out ulong end) || !Hex(f[2], out ulong offset)
            || !ulong.TryParse(f[4], NumberStyles.None, CultureInfo.InvariantCulture, out ulong inode)) return null;
        return new Mapping(start, end, f[1], offset, f[3], inode, f.Length > 5 ? f[5].Trim() : "");
    }

    static bool Hex(string s, out ulong v) => ulong.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out v);
}

/// <summary>One loaded instance of a file: its mappings, from the one at file offset 0 to before the next such one.</summary>
public sealed record MappedModule(string Path, string Device, ulong Inode, IReadOnlyList<Mapping> Mappings)
{
    /// <summary>
    /// The module files a process has mapped, each load of a file separately (dlmopen can load one twice). Only
    /// files with an executable mapping: code is what has thunks.
    /// </summary>
    public static List<MappedModule> From(IEnumerable<Mapping> maps)
    {
        var open = new Dictionary<(string, ulong, string), List<Mapping>>();
        var modules = new List<(string path, string dev, ulong inode, List<Mapping> maps)>();
        foreach (var m in maps)
        {
            if (m.Inode == 0 || !m.Path.StartsWith('/')) continue; // anonymous, [heap], [vdso], …
            var key = (m.Device, m.Inode, m.Path);
            if (m.Offset == 0 || !open.TryGetValue(key, out var list))
            {
                list = [];
                open[key] = list;
                modules.Add((m.Path, m.Device, m.Inode, list));
            }
            list.Add(m);
        }
        return modules.Where(x => x.maps.Any(m => m.Executable)).Select(x => new MappedModule(x.path, x.dev, x.inode, x.maps)).ToList();
    }
}
