namespace Retpoline.Tool;

/// <summary>A usage mistake: reported as RPL0108, exit 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Strict POSIX-style parsing: known flags, known options with one value (`--opt v` or `--opt=v`), `--` ends
/// options, everything else is a file. Each flag and option may be given once, unless the command documents it as
/// repeatable (`--allow`); a second one is an error rather than a silent last-wins. Unknown options, a flag given a
/// value, an option without one, an empty value or an empty FILE are usage errors that quote what was typed.
/// </summary>
public sealed class Arguments
{
    readonly HashSet<string> flags = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<string>> options = new(StringComparer.Ordinal);

    public List<string> Files { get; } = new();

    public Arguments(string[] args, IReadOnlySet<string> knownFlags, IReadOnlySet<string> knownOptions, IReadOnlySet<string>? repeatable = null)
    {
        bool filesOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (filesOnly || !a.StartsWith("--", StringComparison.Ordinal) || a == "-")
            {
                if (a.Length == 0) throw new UsageException("an empty FILE argument ('')");
                Files.Add(a);
                continue;
            }
            if (a == "--") { filesOnly = true; continue; }
            string name = a, value = "";
            bool inline = false;
            int eq = a.IndexOf('=');
            if (eq > 0) { name = a[..eq]; value = a[(eq + 1)..]; inline = true; }
            if (knownFlags.Contains(name))
            {
                if (inline) throw new UsageException($"option '{name}' takes no value (got '{a}')");
                if (!flags.Add(name)) throw new UsageException($"option '{name}' is given twice");
                continue;
            }
            if (!knownOptions.Contains(name)) throw new UsageException($"unknown option '{name}'");
            if (!inline)
            {
                if (i + 1 >= args.Length) throw new UsageException($"option '{name}' needs a value");
                value = args[++i];
                // `--sarif --json app`: the value is most likely a forgotten one (write `--sarif=--json` to mean it).
                if (value.StartsWith("--", StringComparison.Ordinal) && value.Length > 2)
                    throw new UsageException($"option '{name}' needs a value, got the option '{value}' (write {name}={value} if that is the value)");
            }
            if (value.Length == 0) throw new UsageException($"option '{name}' needs a non-empty value");
            if (!options.TryGetValue(name, out var list)) options[name] = list = new();
            else if (repeatable?.Contains(name) != true)
                throw new UsageException($"option '{name}' is given twice ('{list[0]}' and '{value}'); give it once");
            list.Add(value);
        }
    }

    public bool Has(string flag) => flags.Contains(flag);

    public string? Get(string option) => options.TryGetValue(option, out var v) ? v[0] : null;

    public IReadOnlyList<string> All(string option) => options.TryGetValue(option, out var v) ? v : [];

    /// <summary>
    /// The value of <paramref name="option"/> as one of <paramref name="names"/> (any case, spelled as listed), or
    /// null when the option was not given. Only names: `--vendor 1` is not Amd, whatever the enum's numbering.
    /// </summary>
    public string? Choice(string option, params string[] names)
    {
        if (Get(option) is not { } value) return null;
        return names.FirstOrDefault(n => n.Equals(value, StringComparison.OrdinalIgnoreCase))
            ?? throw new UsageException($"{option} takes {string.Join(", ", names[..^1])} or {names[^1]}, not '{value}'");
    }
}
