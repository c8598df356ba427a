namespace Retpoline.Tool;

/// <summary>A usage mistake: reported as RPL0108, exit 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Minimal POSIX-style parsing: known flags, known options with one value (`--opt v` or `--opt=v`, repeatable),
/// `--` ends options, everything else is a file. Unknown options are usage errors, never silently ignored.
/// </summary>
public sealed class Arguments
{
    readonly HashSet<string> flags = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<string>> options = new(StringComparer.Ordinal);
    public List<string> Files { get; } = new();

    public Arguments(string[] args, IReadOnlySet<string> knownFlags, IReadOnlySet<string> knownOptions)
    {
        bool filesOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (filesOnly || !a.StartsWith("--", StringComparison.Ordinal) || a == "-") { Files.Add(a); continue; }
            if (a == "--") { filesOnly = true; continue; }
            string name = a, value = "";
            bool inline = false;
            int eq = a.IndexOf('=');
            if (eq > 0) { name = a[..eq]; value = a[(eq + 1)..]; inline = true; }
            if (knownFlags.Contains(name) && !inline) { flags.Add(name); continue; }
            if (!knownOptions.Contains(name)) throw new UsageException($"unknown option '{name}'");
            if (!inline)
            {
                if (i + 1 >= args.Length) throw new UsageException($"option '{name}' needs a value");
                value = args[++i];
            }
            if (!options.TryGetValue(name, out var list)) options[name] = list = new();
            list.Add(value);
        }
    }

    public bool Has(string flag) => flags.Contains(flag);
    public string? Get(string option) => options.TryGetValue(option, out var v) ? v[^1] : null;
    public IReadOnlyList<string> All(string option) => options.TryGetValue(option, out var v) ? v : [];
}
