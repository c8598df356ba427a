using System.Text;
using Retpoline.Policy;

namespace Retpoline.Reporting;

/// <summary>
/// Human output of `retpoline verify`: one line per diagnostic in the compiler's shape (`file:line: error CODE: …`
/// when the finding has a source line, `binary: error CODE: …` otherwise), allowed findings as `info` lines, then a
/// summary per file. An unmitigated large library has tens of thousands of findings, so lines are formatted as
/// UTF-8 in parallel chunks (numbers formatted in place, no string per line) and written in order.
/// </summary>
public static class TextReport
{
    const int LinesPerChunk = 2048;

    public static void Write(TextWriter o, VerifyReport r)
    {
        if (o is StreamWriter { BaseStream: { CanWrite: true } stream } writer && writer.Encoding is UTF8Encoding)
        {
            writer.Flush();
            Write(stream, r);
            return;
        }
        using var buffer = new MemoryStream();
        Write(buffer, r);
        o.Write(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }

    public static void Write(Stream output, VerifyReport r)
    {
        WriteChunked(output, r, errors: true);
        var sink = new Utf8Sink(4096);
        foreach (var d in r.FileDiagnostics)
        {
            Line(sink, r, d.SourceFile, d.Line, d.Severity == Severity.Error ? "error " : "warning ", d.Code);
            sink.Add(d.Message);
            End(sink, r, d.SourceFile);
        }
        output.Write(sink.Written);
        WriteChunked(output, r, errors: false);
        output.Write(Encoding.UTF8.GetBytes(Summary(r) + "\n"));
    }

    /// <summary>Error lines (errors: true) or info lines for allowed findings, in finding order.</summary>
    static void WriteChunked(Stream output, VerifyReport r, bool errors)
    {
        var findings = r.Findings;
        int chunks = (findings.Count + LinesPerChunk - 1) / LinesPerChunk;
        // A batch per round keeps memory bounded while both cores format; each batch is written in chunk order.
        int batch = Math.Max(1, Environment.ProcessorCount) * 4;
        var sinks = new Utf8Sink[Math.Min(batch, Math.Max(chunks, 1))];
        for (int first = 0; first < chunks; first += batch)
        {
            int count = Math.Min(batch, chunks - first);
            Parallel.For(0, count, i =>
            {
                var sink = sinks[i] ??= new Utf8Sink();
                sink.Clear();
                int from = (first + i) * LinesPerChunk, to = Math.Min(findings.Count, from + LinesPerChunk);
                for (int k = from; k < to; k++)
                {
                    var f = findings[k];
                    if (FindingDiagnostics.IsError(f, r.Strict) != errors) continue;
                    if (errors) ErrorLine(sink, r, f); else InfoLine(sink, r, f);
                }
            });
            for (int i = 0; i < count; i++) output.Write(sinks[i].Written);
        }
    }

    static void ErrorLine(Utf8Sink o, VerifyReport r, Finding f)
    {
        Line(o, r, f.SourceFile, f.Line, "error ", Messages.CodeOf(f));
        Messages.For(o, f);
        End(o, r, f.SourceFile);
    }

    static void InfoLine(Utf8Sink o, VerifyReport r, Finding f)
    {
        o.Add(r.Path); o.Add(": info: "); o.Add(f.Class.ToString()); o.Add(" "); o.Add(Messages.Kind(f)); o.Add(" '"); o.Add(f.Instruction);
        o.Add("' at 0x"); o.AddHex(f.Address); o.Add(" in '"); o.Add(f.Function);
        if (f.Origin is { NamesInput: true } origin) { o.Add("' from '"); o.Add(origin.ToString()); }
        o.Add("' allowed (");
        o.Add(f.AllowedBy ?? f.Detail ?? Why(f.Class)); o.Add(")"); o.Add((byte)'\n');
    }

    /// <summary>`where: severity CODE: ` where is `file:line`, the file, or the binary.</summary>
    static void Line(Utf8Sink o, VerifyReport r, string? file, int? line, string severity, string code)
    {
        if (file is not null)
        {
            o.Add(file);
            if (line is int l) { o.Add((byte)':'); o.AddDecimal(l); }
        }
        else o.Add(r.Path);
        o.Add(": "); o.Add(severity); o.Add(code); o.Add(": ");
    }

    /// <summary>A line that names a source file also names the binary it was found in.</summary>
    static void End(Utf8Sink o, VerifyReport r, string? file)
    {
        if (file is not null) { o.Add(" ["); o.Add(r.Path); o.Add((byte)']'); }
        o.Add((byte)'\n');
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
        int errors = r.Findings.Count(f => FindingDiagnostics.IsError(f, r.Strict)) + r.FileDiagnostics.Count(d => d.Severity == Severity.Error);
        int warnings = r.FileDiagnostics.Count(d => d.Severity == Severity.Warning);
        // SLS gaps are mostly `ret`s, not indirect branches: counted on their own.
        var classes = r.Findings.Where(f => f.Class != FindingClass.SlsGap).GroupBy(f => f.Class).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}");
        int slsGaps = r.Findings.Count(f => f.Class == FindingClass.SlsGap);
        var forms = r.Thunks.GroupBy(t => t.Form).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}");
        string verdict = errors > 0 ? "FAIL" : "PASS";
        return $"{TextEscape.Line(r.Path)}: {verdict}: {r.IndirectBranches} indirect branches ({string.Join(", ", classes.DefaultIfEmpty("none outside thunks"))}); " +
               (slsGaps > 0 ? $"{slsGaps} SLS gap(s); " : "") +
               $"{r.Thunks.Count} thunks ({string.Join(", ", forms.DefaultIfEmpty("none"))}{(r.RuntimeRoutine ? "; Runtime: patched in memory at load" : "")}); {errors} error(s), {warnings} warning(s)" +
               (r.HasSymbols ? "" : "; no symbols (stripped): functions are named section+offset");
    }
}
