using Retpoline.Toolchain;

namespace Retpoline.Policy;

/// <summary>What a waiver names: a function, where code came from, or a whole shipped file.</summary>
public enum WaiverKind
{
    /// <summary>A symbol name or glob (RetpolineAllow `Include` or `Pattern`): every finding in matching functions.</summary>
    Function,
    /// <summary>An archive, object or source (RetpolineAllow `Archive`/`Object`/`Source`), optionally with a function pattern.</summary>
    Origin,
    /// <summary>A shipped binary left unverified (RetpolineExclude: file name, output-relative path or glob).</summary>
    File,
}

/// <summary>
/// One waiver as the user wrote it, as plain data: a RetpolineAllow or RetpolineExclude item's Include and metadata
/// values (empty when not set), or a `--allow` translated by the tool. <see cref="Waivers.Parse"/> turns a list of
/// them into the rules the engine applies.
/// </summary>
public sealed record WaiverItem(string ItemType, string Include)
{
    public const string Allow = "RetpolineAllow";
    public const string Exclude = "RetpolineExclude";

    public string Pattern { get; init; } = "";
    public string Archive { get; init; } = "";
    public string Object { get; init; } = "";
    public string Source { get; init; } = "";
    public string Reason { get; init; } = "";

    /// <summary>An item from its Include and a metadata reader (an MSBuild task item's or an evaluated item's): the
    /// metadata names the waiver model reads are listed here once.</summary>
    public static WaiverItem From(string itemType, string include, Func<string, string> metadata) => new(itemType, include)
    {
        Pattern = metadata("Pattern"),
        Archive = metadata("Archive"),
        Object = metadata("Object"),
        Source = metadata("Source"),
        Reason = metadata("Reason"),
    };
}

/// <summary>A RetpolineExclude: a shipped file left unverified, matched by file name or output-relative path.</summary>
public sealed record FileWaiver(string Name, string Pattern, string Reason)
{
    /// <param name="relativePath">The file's path relative to the folder it ships in, with `/` separators.</param>
    public bool Matches(string path, string relativePath) => Glob.IsMatch(Pattern, System.IO.Path.GetFileName(path)) || Glob.IsMatch(Pattern, relativePath);
}

/// <summary>A project's waivers: finding waivers (<see cref="AllowRule"/>) and file waivers, each with its Reason.</summary>
public sealed class WaiverSet(IReadOnlyList<AllowRule> findings, IReadOnlyList<FileWaiver> files)
{
    public static readonly WaiverSet Empty = new([], []);

    public IReadOnlyList<AllowRule> Findings { get; } = findings;
    public IReadOnlyList<FileWaiver> Files { get; } = files;

    /// <summary>The first file waiver that exempts this file, or null.</summary>
    public FileWaiver? Exempting(string path, string relativePath) => Files.FirstOrDefault(w => w.Matches(path, relativePath));

    /// <summary>
    /// Every part of every finding waiver, in order: what a remembered verdict of a verified file depends on. File
    /// waivers are not in it: they decide whether a file is verified at all, before any verdict is looked up.
    /// </summary>
    public string FindingsFingerprint => string.Join("\u001e",
        Findings.Select(r => string.Join('\u001f', "allow", r.Pattern ?? "", r.Archive ?? "", r.Object ?? "", r.Source ?? "", r.Reason)));
}

/// <summary>
/// The one waiver model: every front end (the build's tasks, `retpoline verify --allow`, `retpoline audit`) turns what
/// the user wrote into <see cref="WaiverItem"/>s and calls <see cref="Parse"/>, so the kinds, the meaning of each
/// metadata and the Reason requirement are decided here once; <see cref="Apply"/> is the only place a finding is waived.
/// </summary>
public static class Waivers
{
    /// <summary>
    /// RetpolineAllow: without origin metadata the function pattern is `Pattern`, else `Include` (kind Function, as
    /// always). With `Archive`, `Object` or `Source` (kind Origin) the function pattern is `Pattern` only, and `Include`
    /// just names the waiver: `Include="liblzma" Archive="liblzma.a"` waives everything from that archive, adding
    /// `Pattern="lzma_*"` narrows it to those functions. RetpolineExclude: `Pattern`, else `Include`.
    /// </summary>
    /// <exception cref="InvalidSettingException">A waiver without a Reason (RPL0208).</exception>
    public static WaiverSet Parse(IEnumerable<WaiverItem> items)
    {
        var findings = new List<AllowRule>();
        var files = new List<FileWaiver>();
        foreach (var item in items)
        {
            string reason = item.Reason.Trim();
            if (reason.Length == 0) throw MissingReason(item.ItemType, item.Include);
            if (item.ItemType == WaiverItem.Exclude)
            {
                files.Add(new FileWaiver(item.Include, OrNull(item.Pattern) ?? item.Include, reason));
                continue;
            }
            string? archive = OrNull(item.Archive), obj = OrNull(item.Object), source = OrNull(item.Source);
            bool origin = archive is not null || obj is not null || source is not null;
            string? function = OrNull(item.Pattern) ?? (origin ? null : item.Include);
            findings.Add(new AllowRule(function, reason) { Archive = archive, Object = obj, Source = source, Name = item.Include });
        }
        return new WaiverSet(findings, files);
    }

    /// <summary>The one message for a waiver without a Reason, whichever front end it came from.</summary>
    public static InvalidSettingException MissingReason(string itemType, string name) => new(ToolchainCodes.InvalidPropertyOrItem,
        $"{itemType} '{name}' needs a Reason (every waiver says why what it waives is acceptable; it is shown beside each finding or file it waives)");

    /// <summary>Each finding a rule matches gets that rule's Reason in <see cref="Finding.AllowedBy"/>; first rule wins.</summary>
    public static List<Finding> Apply(List<Finding> findings, IReadOnlyList<AllowRule> rules)
    {
        if (rules.Count == 0) return findings;
        for (int i = 0; i < findings.Count; i++)
            if (Waiving(rules, findings[i]) is { } rule) findings[i] = findings[i] with { AllowedBy = rule.Reason };
        return findings;
    }

    /// <summary>The first rule that waives this finding, or null.</summary>
    public static AllowRule? Waiving(IReadOnlyList<AllowRule> rules, Finding f)
    {
        foreach (var r in rules) if (Matches(r, f)) return r;
        return null;
    }

    /// <summary>Every part the rule gives must match; an origin part never matches a finding whose origin is unknown.</summary>
    public static bool Matches(AllowRule rule, Finding f)
    {
        if (rule.Pattern is { } p && !Glob.IsMatch(p, Messages.BaseName(f.Function)) && !Glob.IsMatch(p, f.Function)) return false;
        if (rule.Kind != WaiverKind.Origin) return true;
        // A PLT entry has no origin of its own: the rule must match where every one of its callers came from.
        if (f.Origin is null && f.CallerOrigins is { Count: > 0 } callers) return callers.All(c => OriginMatches(rule, c, null));
        return OriginMatches(rule, f.Origin, f.SourceFile);
    }

    static bool OriginMatches(AllowRule rule, FindingOrigin? origin, string? sourceFile)
    {
        if (rule.Archive is { } a && !PathMatches(a, origin?.Archive)) return false;
        if (rule.Object is { } o && !PathMatches(o, origin?.Object)) return false;
        // The compilation unit's source when the origin is known, else the file of the finding's own line (DWARF).
        if (rule.Source is { } s && !PathMatches(s, origin?.Source) && !PathMatches(s, sourceFile)) return false;
        return true;
    }

    /// <summary>
    /// A path glob matches the whole path or any tail of it that starts after a `/`: `liblzma.a` matches
    /// `/usr/lib/x86_64-linux-gnu/liblzma.a`, `third_party/*` matches `/src/app/third_party/z/inflate.c`; a pattern
    /// starting with `/` matches the whole path only.
    /// </summary>
    public static bool PathMatches(string pattern, string? path)
    {
        if (path is null) return false;
        path = path.Replace('\\', '/');
        if (Glob.IsMatch(pattern, path)) return true;
        if (pattern.StartsWith('/')) return false;
        for (int slash = path.IndexOf('/'); slash >= 0; slash = path.IndexOf('/', slash + 1))
            if (Glob.IsMatch(pattern, path[(slash + 1)..])) return true;
        return false;
    }

    static string? OrNull(string s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}

/// <summary>A property or item the engine cannot use (RPL0208): one line, its code, what to write instead.</summary>
public sealed class InvalidSettingException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
