using System.Text.RegularExpressions;

namespace Retpoline.Toolchain;

/// <summary>One diagnostic a compiler or linker printed, with notes that followed it folded into the message.</summary>
public sealed record CompilerDiagnostic(Severity Severity, string? File, int Line, int Column, string Code, string Message);

/// <summary>
/// Parses GCC/Clang/ld output ourselves rather than with MSBuild's canonical-error regex, which invents `G<hash>`
/// codes for GCC lines and misses `fatal error:`, notes and linker errors. Recognised:
/// `file:line:col: error|warning|fatal error|note: text [-Wflag]`, `file:line: …`, `cc1: error: …`,
/// `file.o:(.text+0x1f): undefined reference to 'x'`, `/usr/bin/ld: …`, `collect2: error: …`.
/// The code is `GCC`/`CLANG` for compiler lines (the -W flag stays in the text) and `LD` for linker lines.
/// </summary>
public static partial class CompilerDiagnostics
{
    [GeneratedRegex(@"^(?<file>[^:\n]+?):(?<line>\d+):(?:(?<col>\d+):)?\s*(?<kind>fatal error|error|warning|note):\s*(?<text>.*)$")]
    private static partial Regex Located();

    [GeneratedRegex(@"^(?<tool>cc1plus|cc1|cc1as|clang(?:\+\+)?(?:-\d+)?|gcc|g\+\+|collect2|ld(?:\.\w+)?(?:-\d+)?|/usr/bin/ld(?:\.\w+)?(?:-\d+)?|[^\s:]*ld\.lld(?:-\d+)?):\s*(?<kind>fatal error|error|warning|note)?:?\s*(?<text>.*)$")]
    private static partial Regex Tool();

    [GeneratedRegex(@"^(?<file>[^:\n]+?):(?:\((?<sect>[^)]*)\)|(?<line>\d+)):\s*(?<text>(?:undefined reference|multiple definition|relocation).*)$")]
    private static partial Regex LinkerLocated();

    public static List<CompilerDiagnostic> Parse(string output, CompilerFamily family)
    {
        string code = family == CompilerFamily.Clang ? "CLANG" : "GCC";
        var list = new List<CompilerDiagnostic>();
        foreach (var raw in output.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            Match m;
            if ((m = Located().Match(line)).Success)
            {
                string kind = m.Groups["kind"].Value, text = m.Groups["text"].Value;
                string file = m.Groups["file"].Value;
                int ln = int.Parse(m.Groups["line"].Value), col = m.Groups["col"].Success ? int.Parse(m.Groups["col"].Value) : 0;
                if (kind == "note")
                {
                    if (list.Count > 0) { var last = list[^1]; list[^1] = last with { Message = $"{last.Message} (note: {file}:{ln}: {text})" }; }
                    continue;
                }
                list.Add(new CompilerDiagnostic(kind == "warning" ? Severity.Warning : Severity.Error, file, ln, col, code, text));
            }
            else if ((m = LinkerLocated().Match(line)).Success)
            {
                int ln = m.Groups["line"].Success ? int.Parse(m.Groups["line"].Value) : 0;
                list.Add(new CompilerDiagnostic(Severity.Error, m.Groups["file"].Value, ln, 0, "LD", m.Groups["text"].Value));
            }
            else if ((m = Tool().Match(line)).Success)
            {
                string tool = m.Groups["tool"].Value, kind = m.Groups["kind"].Value, text = m.Groups["text"].Value;
                if (text.Length == 0 || text.EndsWith("in function", StringComparison.Ordinal) || text.Contains(": in function `", StringComparison.Ordinal)) continue; // context for the next line
                bool linker = tool.Contains("ld", StringComparison.Ordinal) || tool == "collect2";
                if (kind == "note") { if (list.Count > 0) list[^1] = list[^1] with { Message = $"{list[^1].Message} (note: {text})" }; continue; }
                var severity = kind == "warning" ? Severity.Warning : Severity.Error;
                if (tool == "collect2" && list.Any(d => d.Severity == Severity.Error)) continue; // "ld returned 1 exit status" repeats what was said
                list.Add(new CompilerDiagnostic(severity, null, 0, 0, linker ? "LD" : code, text));
            }
        }
        return list;
    }
}
