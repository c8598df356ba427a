using System.Text.RegularExpressions;

namespace Retpoline.Toolchain;

/// <summary>One diagnostic a compiler or linker printed, with notes that followed it folded into the message.</summary>
public sealed record CompilerDiagnostic(Severity Severity, string? File, int Line, int Column, string Code, string Message);

/// <summary>
/// Parses GCC/Clang/ld output ourselves rather than with MSBuild's canonical-error regex, which invents `G<hash>`
/// codes for GCC lines and misses `fatal error:`, notes and linker errors. Recognised:
/// `file:line:col: error|warning|fatal error|note: text [-Wflag]`, `file:line: …`, `cc1: error: …`,
/// the linker's located messages (<see cref="LinkerMessages"/>: every GNU ld and lld reference at its own file and
/// line, the function it is in folded in), `/usr/bin/ld: …`, `collect2: error: …`. GCC's -mindirect-branch /
/// -fcf-protection clash gets its own code (RPL0210), and so does a link that needs GCC's memory-operand thunk (RPL0215).
/// The code is `GCC`/`CLANG` for compiler lines (the -W flag stays in the text) and `LD` for linker lines.
/// </summary>
public static partial class CompilerDiagnostics
{
    [GeneratedRegex(@"^(?<file>[^:\n]+?):(?<line>\d+):(?:(?<col>\d+):)?\s*(?<kind>fatal error|error|warning|note):\s*(?<text>.*)$")]
    private static partial Regex Located();

    [GeneratedRegex(@"^(?<tool>cc1plus|cc1|cc1as|clang(?:\+\+)?(?:-\d+)?|gcc|g\+\+|collect2|ld(?:\.\w+)?(?:-\d+)?|/usr/bin/ld(?:\.\w+)?(?:-\d+)?|[^\s:]*ld\.lld(?:-\d+)?):\s*(?<kind>fatal error|error|warning|note)?:?\s*(?<text>.*)$")]
    private static partial Regex Tool();

    /// <summary>
    /// GCC's text when `-mindirect-branch=thunk|thunk-inline` or `-mfunction-return=thunk|thunk-inline` meets
    /// `-fcf-protection` (DESIGN.md §3; GCC before 10 says it for thunk-extern too). GCC says it once per function,
    /// the inline functions of system headers included.
    /// </summary>
    [GeneratedRegex(@"^'-m(?<flag>indirect-branch|function-return)' and '-fcf-protection' are not compatible")]
    private static partial Regex CfProtectionConflict();

    /// <summary>What to do about it: the SDK's thunk-extern forms are compatible, so a user flag overrode them.</summary>
    static string CfProtectionFix(string flag) =>
        $" (the SDK's own -m{flag}=thunk-extern works with -fcf-protection: remove -m{flag}=thunk or thunk-inline from CFlags/CxxFlags; " +
        "GCC before 10 rejects thunk-extern too: use GCC >= 10 or clang)";

    /// <summary>
    /// `undefined reference to `__x86_indirect_thunk'` (GNU ld) or `undefined symbol: __x86_indirect_thunk` (lld): GCC
    /// calls its memory-operand thunk (`push foo@GOTPCREL(%rip); jmp __x86_indirect_thunk`) for -fno-plt calls of
    /// position-dependent code, where PIC code loads the GOT entry into a register and calls a register thunk. The package
    /// defines register thunks only: their bodies are what the vendor modes and the run-time routine rewrite, and a
    /// stack-operand branch has no register to `jmp` through.
    /// </summary>
    [GeneratedRegex(@"^(?:undefined reference to [`'\u2018]__x86_indirect_thunk['\u2019]|undefined symbol: __x86_indirect_thunk\b(?!_))")]
    private static partial Regex MemoryThunkReference();

    const string MemoryThunkFix =
        " (GCC's thunk for a branch through memory, which it emits for -fno-plt calls in position-dependent code: build the " +
        "objects position-independent, -fPIE or -fPIC, which is GCC's default on Debian; remove -fno-pie from CFlags/CxxFlags)";

    public static List<CompilerDiagnostic> Parse(string output, CompilerFamily family)
    {
        string code = family == CompilerFamily.Clang ? "CLANG" : "GCC";
        var list = new List<CompilerDiagnostic>();
        var linker = new LinkerMessages();
        foreach (var raw in output.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (linker.TryConsume(line, list)) continue;
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
                if (CfProtectionConflict().Match(text) is { Success: true } conflict)
                {
                    // RPL0210: one coded error per compile and per message, at the first function, naming the
                    // fix; the repeats for every later function (a screenful at -O2) add nothing.
                    if (!list.Any(d => d.Code == ToolchainCodes.CfProtectionConflict && d.Message.StartsWith(text, StringComparison.Ordinal)))
                        list.Add(new CompilerDiagnostic(Severity.Error, file, ln, col, ToolchainCodes.CfProtectionConflict, text + CfProtectionFix(conflict.Groups["flag"].Value)));
                    continue;
                }
                list.Add(new CompilerDiagnostic(kind == "warning" ? Severity.Warning : Severity.Error, file, ln, col, code, text));
            }
            else if ((m = Tool().Match(line)).Success)
            {
                string tool = m.Groups["tool"].Value, kind = m.Groups["kind"].Value, text = m.Groups["text"].Value;
                if (text.Length == 0 || text.EndsWith("in function", StringComparison.Ordinal) || text.Contains(": in function `", StringComparison.Ordinal)) continue; // context for the next line
                // collect2's "ld returned 1" and clang's "linker command failed" summarise the linker's own errors.
                bool summary = tool == "collect2" || text.StartsWith("linker command failed", StringComparison.Ordinal);
                bool fromLinker = summary || tool.Contains("ld", StringComparison.Ordinal);
                if (kind == "note") { if (list.Count > 0) list[^1] = list[^1] with { Message = $"{list[^1].Message} (note: {text})" }; continue; }
                var severity = kind == "warning" ? Severity.Warning : Severity.Error;
                if (summary && list.Any(d => d.Severity == Severity.Error)) continue; // repeats what was said
                list.Add(new CompilerDiagnostic(severity, null, 0, 0, fromLinker ? "LD" : code, text));
            }
        }
        for (int i = 0; i < list.Count; i++)
            if (list[i].Code == "LD" && MemoryThunkReference().IsMatch(list[i].Message))
                list[i] = list[i] with { Code = ToolchainCodes.MemoryThunkNeeded, Message = list[i].Message + MemoryThunkFix };
        return list;
    }
}
