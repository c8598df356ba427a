using System.Text.Json;

namespace Retpoline.Reporting;

/// <summary>
/// `retpoline verify --json`: exactly DESIGN.md §4's object, `{"files":[{"path","indirectBranches","ibt","shstk",
/// "findings":[{"class","function","address","instruction","source"}],"thunks":[{"name","register","form","address"}]}]}`,
/// with optional fields after the required ones ("kind", "vendor", "detail", "allowedBy", "origin", "diagnostics"). "vendor" is
/// "Runtime" for a file that patches its thunks at load, else the form its register thunks share, or null. Addresses are
/// "0x…" strings; order is the report's (address order); nothing depends on time or the machine.
/// </summary>
public static class JsonReport
{
    public static void Write(Stream output, IEnumerable<VerifyReport> reports, IEnumerable<RetpolineException>? unusable = null)
    {
        using var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteStartArray("files");
        foreach (var r in reports) WriteFile(w, r);
        w.WriteEndArray();
        if (unusable is not null)
        {
            w.WriteStartArray("errors");
            foreach (var e in unusable)
            {
                w.WriteStartObject();
                w.WriteString("path", e.FilePath);
                w.WriteString("code", e.Code);
                w.WriteString("message", e.Message);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    static void WriteFile(Utf8JsonWriter w, VerifyReport r)
    {
        w.WriteStartObject();
        w.WriteString("path", r.Path);
        w.WriteNumber("indirectBranches", r.IndirectBranches);
        w.WriteBoolean("ibt", r.Ibt);
        w.WriteBoolean("shstk", r.Shstk);
        w.WriteStartArray("findings");
        foreach (var f in r.Findings)
        {
            w.WriteStartObject();
            w.WriteString("class", f.Class.ToString());
            w.WriteString("function", f.Function);
            w.WriteString("address", Hex(f.Address));
            w.WriteString("instruction", f.Instruction);
            if (f.Source is { } s) w.WriteString("source", s); else w.WriteNull("source");
            if (f.Detail is { } d) w.WriteString("detail", d);
            if (f.AllowedBy is { } a) w.WriteString("allowedBy", a);
            if (f.Origin is { } o) WriteOrigin(w, o);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("thunks");
        foreach (var t in r.Thunks)
        {
            w.WriteStartObject();
            w.WriteString("name", t.Name);
            w.WriteString("register", t.Register);
            w.WriteString("form", t.Form.ToString());
            w.WriteString("address", Hex(t.Address));
            w.WriteNumber("directReferences", t.DirectReferences);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("kind", r.Kind.ToString());
        if (r.Vendor is { } vendor) w.WriteString("vendor", vendor); else w.WriteNull("vendor");
        w.WriteStartArray("diagnostics");
        foreach (var d in r.FileDiagnostics) // per-finding diagnostics are implied by each finding's class
            WriteDiagnostic(w, d);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>`"origin": {"name": "libthird.a(third.o)", "archive", "object", "source"}`, the parts known.</summary>
    static void WriteOrigin(Utf8JsonWriter w, FindingOrigin o)
    {
        w.WriteStartObject("origin");
        w.WriteString("name", o.ToString());
        if (o.Archive is { } archive) w.WriteString("archive", archive);
        if (o.Object is { } obj) w.WriteString("object", obj);
        if (o.Source is { } source) w.WriteString("source", source);
        w.WriteEndObject();
    }

    static void WriteDiagnostic(Utf8JsonWriter w, Diagnostic d)
    {
        w.WriteStartObject();
        w.WriteString("code", d.Code);
        w.WriteString("severity", d.Severity.ToString().ToLowerInvariant());
        w.WriteString("message", d.Message);
        if (d.Address is { } a) w.WriteString("address", Hex(a));
        w.WriteEndObject();
    }

    public static string Hex(ulong a) => $"0x{a:x}";
}
