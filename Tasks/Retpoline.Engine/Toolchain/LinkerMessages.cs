using System.Text.RegularExpressions;

namespace Retpoline.Toolchain;

/// <summary>
/// The located messages of GNU ld and lld, one diagnostic per reference, each at the file and line the linker printed.
/// GNU ld names the function once (`/usr/bin/ld: a.o: in function 'f':`) and then prints one line per reference, every
/// one after the first behind its own `/usr/bin/ld: ` prefix; lld prints a block (`ld.lld: error: undefined symbol: x`
/// followed by `>>> referenced by a.c:3 (/src/a.c:3)` / `>>>               a.o:(f)` pairs). Stateful: feed it every
/// line of one linker run in order; what it does not recognise is left to the caller.
/// </summary>
sealed partial class LinkerMessages
{
    // `/usr/bin/ld: `, `ld: `, `ld.bfd: `, `ld.gold: `, `/usr/bin/x86_64-linux-gnu-ld: `: what GNU ld puts before its lines.
    [GeneratedRegex(@"^[^\s:]*ld(?:\.(?:bfd|gold))?(?:-\d+)?:\s+(?<rest>.*)$")]
    private static partial Regex GnuPrefix();

    // `/usr/bin/ld: obj/b.c.o: in function 'g':`: the context of the reference lines that follow.
    [GeneratedRegex(@"^(?<obj>[^:\n]+?): in function [`'\u2018](?<fn>[^'\u2019]+)['\u2019]:$")]
    private static partial Regex GnuContext();

    // After the prefix: `a.c:12: …` (DWARF line), `a.c:(.text+0x1a): …` (no line info), `(.text+0x17): …` (no file
    // symbol), `d.o:/src/d.c:1: multiple definition …` and `m.o:/src/m.c:2: more undefined references …` (object first).
    [GeneratedRegex(@"^(?:(?<first>[^:\n]+):)?(?:(?<second>[^:\n]+):)?(?:\((?<sect>[^)]*)\)|(?<line>\d+)):\s*(?<text>(?:undefined reference|more undefined references|multiple definition|relocation|dangerous relocation).*)$")]
    private static partial Regex GnuLocated();

    // `ld.lld: error: undefined symbol: x`, `ld.lld-14: error: duplicate symbol: y`: the head of a block.
    [GeneratedRegex(@"^[^\s:]*ld\.lld(?:-\d+)?:\s*(?<kind>error|warning):\s*(?<text>(?:undefined symbol|duplicate symbol|undefined hidden symbol|undefined protected symbol).*)$")]
    private static partial Regex LldHead();

    // `>>> referenced by a.c:3 (/src/a.c:3)`, `>>> referenced by a.c`, `>>> referenced by /lib/Scrt1.o:(_start)`, `>>> defined at m.c:3 (/src/m.c:3)`.
    [GeneratedRegex(@"^>>> (?<verb>referenced by|defined at) (?<loc>.+)$")]
    private static partial Regex LldLocation();

    // `>>>               a.o:(f)`: the object and symbol of the location above.
    [GeneratedRegex(@"^>>>\s+(?<obj>[^\s]+?):\((?<sym>[^)]*)\)$")]
    private static partial Regex LldObject();

    [GeneratedRegex(@"^>>> referenced (?<n>\d+) more times$")]
    private static partial Regex LldMore();

    // `a.c:3 (/src/a.c:3)`: the path in parentheses is the one DWARF recorded (relative to the compile directory).
    [GeneratedRegex(@"^(?<short>\S+?)(?::(?<line>\d+))?(?: \((?<path>.+):(?<pline>\d+)\))?$")]
    private static partial Regex LldSource();

    string? gnuObject, gnuFunction;
    // The lld block being read: its head's text and severity, and where its diagnostics start in the list.
    string? lldText;
    Severity lldSeverity;
    int lldStart = -1;
    bool lldHeadPlaced, lldReference;

    /// <summary>Adds what <paramref name="line"/> says to <paramref name="list"/>; false when it is not a linker location line.</summary>
    public bool TryConsume(string line, List<CompilerDiagnostic> list)
    {
        if (line.StartsWith(">>>", StringComparison.Ordinal) && lldText is not null) { ConsumeLldDetail(line, list); return true; }
        lldText = null;

        Match m;
        if ((m = LldHead().Match(line)).Success)
        {
            lldText = m.Groups["text"].Value;
            lldSeverity = m.Groups["kind"].Value == "warning" ? Severity.Warning : Severity.Error;
            lldStart = list.Count;
            lldHeadPlaced = false;
            list.Add(new CompilerDiagnostic(lldSeverity, null, 0, 0, "LD", lldText)); // placed by its first location line
            return true;
        }

        string rest = GnuPrefix().Match(line) is { Success: true } p ? p.Groups["rest"].Value : line;
        if ((m = GnuContext().Match(rest)).Success)
        {
            gnuObject = m.Groups["obj"].Value;
            gnuFunction = m.Groups["fn"].Value;
            return true;
        }
        if ((m = GnuLocated().Match(rest)).Success)
        {
            // The last name before the line or section is the file: a source path, or an object without line info.
            string? file = m.Groups["second"].Success ? m.Groups["second"].Value : m.Groups["first"].Success ? m.Groups["first"].Value : null;
            string? objectFirst = m.Groups["second"].Success ? m.Groups["first"].Value : null;
            if (file == "<stdin>") file = null;
            file ??= objectFirst ?? gnuObject;
            int ln = m.Groups["line"].Success ? int.Parse(m.Groups["line"].Value) : 0;
            string text = m.Groups["text"].Value;
            string? obj = objectFirst ?? gnuObject;
            if (gnuFunction is not null) text += $" (in function '{gnuFunction}'{(obj is not null && file != obj ? $" of {obj}" : "")})";
            list.Add(new CompilerDiagnostic(Severity.Error, file, ln, 0, "LD", text));
            return true;
        }
        return false;
    }

    void ConsumeLldDetail(string line, List<CompilerDiagnostic> list)
    {
        Match m;
        if ((m = LldLocation().Match(line)).Success)
        {
            lldReference = m.Groups["verb"].Value == "referenced by";
            string loc = m.Groups["loc"].Value;
            CompilerDiagnostic d;
            if (LldObject().Match(">>> " + loc) is { Success: true } o) // no line info: the object and its symbol
                d = new CompilerDiagnostic(lldSeverity, o.Groups["obj"].Value, 0, 0, "LD", lldText + Within(o.Groups["sym"].Value, null));
            else
            {
                var s = LldSource().Match(loc);
                string file = s.Groups["path"].Success ? s.Groups["path"].Value : s.Groups["short"].Value;
                var lineGroup = s.Groups["pline"].Success ? s.Groups["pline"] : s.Groups["line"];
                d = new CompilerDiagnostic(lldSeverity, file, lineGroup.Success ? int.Parse(lineGroup.Value) : 0, 0, "LD", lldText!);
            }
            if (!lldHeadPlaced) { list[lldStart] = d; lldHeadPlaced = true; } else list.Add(d);
            return;
        }
        if (lldHeadPlaced && (m = LldObject().Match(line)).Success)
        {
            list[^1] = list[^1] with { Message = list[^1].Message + Within(m.Groups["sym"].Value, m.Groups["obj"].Value) };
            return;
        }
        if (lldHeadPlaced && (m = LldMore().Match(line)).Success)
        {
            list[^1] = list[^1] with { Message = $"{list[^1].Message} (referenced {m.Groups["n"].Value} more times)" };
            return;
        }
        // `>>> did you mean: f`, `>>> defined in: a.o`: a note on every diagnostic of the block.
        string note = line[3..].Trim();
        for (int i = lldStart; i < list.Count; i++) list[i] = list[i] with { Message = $"{list[i].Message} (note: {note})" };
    }

    /// <summary>` (in function 'f' of a.o)` for a reference, ` (in 'dup' of m.o)` for a definition, as GNU ld's lines read.</summary>
    string Within(string symbol, string? obj)
        => $" (in {(lldReference ? "function " : "")}'{symbol}'{(obj is not null ? $" of {obj}" : "")})";
}
