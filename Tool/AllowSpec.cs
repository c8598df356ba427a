using Retpoline.Policy;

namespace Retpoline.Tool;

/// <summary>
/// `--allow [KIND:]GLOB[,KIND:GLOB…]=REASON`, translated into the waiver model's plain record, so the tool's waivers
/// mean exactly what RetpolineAllow items mean. KIND is `function` (the default: `--allow 'jit_*=…'` as always),
/// `archive`, `object` or `source`; several kinds in one spec must all match (`archive:liblzma.a,function:lzma_*=…`).
/// The Reason is required (<see cref="Waivers.Parse"/> says so, as for every waiver).
/// </summary>
static class AllowSpec
{
    static readonly string[] Kinds = ["function", "archive", "object", "source"];

    public static WaiverItem Parse(string spec)
    {
        int eq = spec.IndexOf('=');
        string what = eq < 0 ? spec : spec[..eq], reason = eq < 0 ? "" : spec[(eq + 1)..];
        if (what.Length == 0) throw new UsageException($"--allow takes [KIND:]GLOB=REASON with KIND function, archive, object or source, got '{spec}'");
        var parts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var term in what.Split(','))
        {
            int colon = term.IndexOf(':');
            string kind = colon > 0 && Kinds.Contains(term[..colon]) ? term[..colon] : "function";
            string glob = kind == "function" && !term.StartsWith("function:", StringComparison.Ordinal) ? term : term[(colon + 1)..];
            if (glob.Length == 0) throw new UsageException($"--allow '{spec}': '{term}' names no {kind}");
            if (!parts.TryAdd(kind, glob)) throw new UsageException($"--allow '{spec}' names more than one {kind}");
        }
        return new WaiverItem("--allow", what)
        {
            Pattern = parts.GetValueOrDefault("function", ""),
            Archive = parts.GetValueOrDefault("archive", ""),
            Object = parts.GetValueOrDefault("object", ""),
            Source = parts.GetValueOrDefault("source", ""),
            Reason = reason,
        };
    }
}
