namespace Retpoline.Reporting;

/// <summary>
/// Human output of `retpoline verify`: one line per diagnostic in the compiler's shape (`file:line: error CODE: …`
/// when the finding has a source line, `binary: error CODE: …` otherwise), allowed findings as `info` lines, then a
/// summary per file. Written straight to the writer: a large library produces tens of thousands of lines.
/// </summary>
public static class TextReport
{
    public static void Write(TextWriter o, VerifyReport r)
    {
        // Streamed, not r.Diagnostics: nothing is kept once written (tens of thousands of lines on a large library).
        foreach (var d in Policy.FindingDiagnostics.For(r.Findings, r.Strict).Concat(r.FileDiagnostics))
        {
            string where = d.SourceFile is { } f ? (d.Line is int l ? $"{f}:{l}" : f) : r.Path;
            o.Write(where);
            o.Write(": ");
            o.Write(d.Severity == Severity.Error ? "error " : "warning ");
            o.Write(d.Code);
            o.Write(": ");
            o.Write(d.Message);
            if (d.SourceFile is not null) { o.Write(" ["); o.Write(r.Path); o.Write(']'); }
            o.WriteLine();
        }
        foreach (var f in r.Findings)
        {
            if (Policy.FindingDiagnostics.IsError(f, r.Strict)) continue;
            o.WriteLine($"{r.Path}: info: {f.Class} {Policy.Messages.Kind(f)} '{f.Instruction}' at 0x{f.Address:x} in '{f.Function}' allowed ({f.AllowedBy ?? f.Detail ?? Why(f.Class)})");
        }
        o.WriteLine(Summary(r));
    }

    static string Why(FindingClass c) => c switch
    {
        FindingClass.ToolchainStartup => "toolchain startup code",
        FindingClass.Annotated => "RETPOLINE_SAFE",
        FindingClass.PatchedSite => "call site inlined by patch",
        _ => "allowed",
    };

    public static string Summary(VerifyReport r)
    {
        int errors = r.Findings.Count(f => Policy.FindingDiagnostics.IsError(f, r.Strict)) + r.FileDiagnostics.Count(d => d.Severity == Severity.Error);
        int warnings = r.FileDiagnostics.Count(d => d.Severity == Severity.Warning);
        var classes = r.Findings.GroupBy(f => f.Class).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}");
        var forms = r.Thunks.GroupBy(t => t.Form).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}");
        string verdict = errors > 0 ? "FAIL" : "PASS";
        return $"{r.Path}: {verdict}: {r.IndirectBranches} indirect branches ({string.Join(", ", classes.DefaultIfEmpty("none outside thunks"))}); " +
               $"{r.Thunks.Count} thunks ({string.Join(", ", forms.DefaultIfEmpty("none"))}); {errors} error(s), {warnings} warning(s)" +
               (r.HasSymbols ? "" : "; no symbols (stripped): functions are named section+offset");
    }
}
