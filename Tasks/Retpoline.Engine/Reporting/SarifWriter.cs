using System.Text.Json;
using Retpoline.Policy;

namespace Retpoline.Reporting;

/// <summary>
/// A SARIF 2.1.0 log: one run, tool "retpoline" with one rule per code (help from <see cref="RuleCatalog"/>),
/// one result per diagnostic with the binary and address as physical location, the source line as a second
/// location when known, and the function as logical location; a finding a waiver matched is a result with a
/// suppression that carries the waiver's reason. Paths are written as given: no absolute path is
/// added that the caller did not pass.
/// </summary>
public static class SarifWriter
{
    public const string Version = "1.0.0";

    /// <summary>
    /// Where the finding's code came from, as a related location: the archive (or object) file, its message the
    /// `libthird.a(third.o)` form, and the compilation unit's source as a second one.
    /// </summary>
    static void RelatedOrigin(Utf8JsonWriter w, FindingOrigin origin)
    {
        w.WriteStartArray("relatedLocations");
        int id = 0;
        if ((origin.Archive ?? origin.Object) is { } input)
        {
            w.WriteStartObject();
            w.WriteNumber("id", id++);
            w.WriteStartObject("physicalLocation");
            w.WriteStartObject("artifactLocation");
            w.WriteString("uri", Uri(input));
            w.WriteEndObject();
            w.WriteEndObject();
            Text(w, "message", "code from " + origin);
            w.WriteEndObject();
        }
        if (origin.Source is { } source)
        {
            w.WriteStartObject();
            w.WriteNumber("id", id);
            w.WriteStartObject("physicalLocation");
            w.WriteStartObject("artifactLocation");
            w.WriteString("uri", Uri(source));
            w.WriteEndObject();
            w.WriteEndObject();
            Text(w, "message", "compilation unit");
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    public static void Write(Stream output, IReadOnlyList<VerifyReport> reports, IReadOnlyList<RetpolineException>? unusable = null)
    {
        // A finding a waiver matched is a result too, suppressed with the waiver's reason: the log shows what was decided.
        var results = reports.SelectMany(r => r.Diagnostics.Select(d => (r.Path, d, Waived: (string?)null))
                .Concat(r.Findings.Where(f => f.AllowedBy is not null && FindingDiagnostics.IsError(f with { AllowedBy = null }, r.Strict))
                    .Select(f => (r.Path, d: FindingDiagnostics.Of(f), Waived: f.AllowedBy))))
            .Concat((unusable ?? []).Select(e => (Path: e.FilePath, d: new Diagnostic(e.Code, Severity.Error, e.Message), Waived: (string?)null)))
            .ToList();
        // Every rule, used or not: a SARIF viewer can then explain any code, and the rule indexes never shift.
        var rules = RuleCatalog.All.ToList();
        var ruleIndex = rules.Select((r, i) => (r.Code, i)).ToDictionary(x => x.Code, x => x.i);

        using var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("$schema", "https://json.schemastore.org/sarif-2.1.0.json");
        w.WriteString("version", "2.1.0");
        w.WriteStartArray("runs");
        w.WriteStartObject();

        w.WriteStartObject("tool");
        w.WriteStartObject("driver");
        w.WriteString("name", "retpoline");
        w.WriteString("version", Version);
        w.WriteString("informationUri", "https://github.com/retpoline-sdk/Retpoline.Sdk");
        w.WriteStartArray("rules");
        foreach (var rule in rules)
        {
            w.WriteStartObject();
            w.WriteString("id", rule.Code);
            w.WriteString("name", rule.Name);
            Text(w, "shortDescription", rule.Title);
            Text(w, "fullDescription", rule.Problem);
            w.WriteStartObject("help");
            w.WriteString("text", $"Problem: {rule.Problem}\nFix: {rule.Fix}\nWaive if: {rule.WaiveIf}");
            w.WriteString("markdown", $"**Problem:** {rule.Problem}\n\n**Fix:** {rule.Fix}\n\n**Waive if:** {rule.WaiveIf}");
            w.WriteEndObject();
            w.WriteStartObject("defaultConfiguration");
            w.WriteString("level", Level(rule.Level));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();

        w.WriteStartArray("artifacts");
        foreach (var path in results.Select(x => x.Path).Concat(reports.Select(r => r.Path)).Distinct())
        {
            w.WriteStartObject();
            w.WriteStartObject("location");
            w.WriteString("uri", Uri(path));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartArray("results");
        foreach (var (path, d, waived) in results)
        {
            w.WriteStartObject();
            w.WriteString("ruleId", d.Code);
            if (ruleIndex.TryGetValue(d.Code, out int idx)) w.WriteNumber("ruleIndex", idx);
            w.WriteString("level", Level(d.Severity));
            Text(w, "message", d.Message);
            w.WriteStartArray("locations");
            w.WriteStartObject();
            w.WriteStartObject("physicalLocation");
            w.WriteStartObject("artifactLocation");
            w.WriteString("uri", Uri(path));
            w.WriteEndObject();
            if (d.Address is { } a)
            {
                w.WriteStartObject("address");
                w.WriteNumber("absoluteAddress", a);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (d.Function is { } fn)
            {
                w.WriteStartArray("logicalLocations");
                w.WriteStartObject();
                w.WriteString("name", fn);
                w.WriteString("kind", "function");
                w.WriteEndObject();
                w.WriteEndArray();
            }
            w.WriteEndObject();
            if (d.SourceFile is { } src)
            {
                w.WriteStartObject();
                w.WriteStartObject("physicalLocation");
                w.WriteStartObject("artifactLocation");
                w.WriteString("uri", Uri(src));
                w.WriteEndObject();
                if (d.Line is int line && line > 0)
                {
                    w.WriteStartObject("region");
                    w.WriteNumber("startLine", line);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (d.Origin is { } origin) RelatedOrigin(w, origin);
            if (waived is not null)
            {
                // "external": the waiver lives in the project (RetpolineAllow) or on the command line, not in the code.
                w.WriteStartArray("suppressions");
                w.WriteStartObject();
                w.WriteString("kind", "external");
                w.WriteString("status", "accepted");
                w.WriteString("justification", waived);
                w.WriteEndObject();
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void Text(Utf8JsonWriter w, string name, string text)
    {
        w.WriteStartObject(name);
        w.WriteString("text", text);
        w.WriteEndObject();
    }

    static string Level(Severity s) => s switch { Severity.Error => "error", Severity.Warning => "warning", _ => "note" };

    /// <summary>
    /// A relative path stays a relative URI reference; an absolute one becomes file://. Every byte of the UTF-8 name
    /// but RFC 3986's unreserved characters and '/' is percent-encoded, so a space, '#', '?', '%', ':' or a control
    /// character in a file name stays part of the path instead of ending it or starting a fragment.
    /// </summary>
    public static string Uri(string path) => (Path.IsPathRooted(path) ? "file://" : "") + PercentEncode(path);

    static string PercentEncode(string path)
    {
        var b = new System.Text.StringBuilder(path.Length + 8);
        foreach (byte c in System.Text.Encoding.UTF8.GetBytes(path))
        {
            if (c is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~' or (byte)'/')
                b.Append((char)c);
            else
                b.Append('%').Append(c.ToString("X2"));
        }
        return b.ToString();
    }
}
