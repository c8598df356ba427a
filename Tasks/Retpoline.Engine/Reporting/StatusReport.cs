using System.Text.Json;
using Retpoline.Patching;
using Retpoline.Runtime;

namespace Retpoline.Reporting;

/// <summary>
/// `retpoline status`: text and JSON. With a PID, `{"pid","modules":[{"path","runtime","choice","reason","thunks":
/// [{"name","register","form","address"}]}]}` plus optional fields after those (the routine's record in detail);
/// without one, what a Runtime module would choose on this machine (`"pid": null`, `"host": {…}`).
/// </summary>
public static class StatusReport
{
    public static void WriteText(TextWriter o, int pid, IReadOnlyList<LiveModule> modules)
    {
        o.WriteLine($"process {pid}: {modules.Count} module(s) with retpoline thunks");
        foreach (var m in modules)
        {
            string head = !m.Runtime ? "built without Runtime: the thunks keep the form written on disk"
                : m.Record is { } r ? $"Runtime (minimum {r.Minimum}), {(r.State == 0 ? "not run" : $"chose {r.Chosen}")}: {r.Explain()}"
                : "Runtime, record unreadable";
            o.WriteLine($"{m.Path}: {head}");
            if (m.Problem is { } p) o.WriteLine($"  problem: {p}");
            var forms = m.Thunks.GroupBy(t => t.Form?.ToString() ?? "unknown").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}");
            o.WriteLine($"  thunks in memory: {string.Join(", ", forms.DefaultIfEmpty("none"))}");
            foreach (var t in m.Thunks) o.WriteLine($"  {t.Name} 0x{t.Address:x}: {t.Form?.ToString() ?? "unknown bytes"}");
        }
    }

    public static void WriteJson(Stream output, int pid, IReadOnlyList<LiveModule> modules)
    {
        using var w = Writer(output);
        w.WriteStartObject();
        w.WriteNumber("pid", pid);
        w.WriteStartArray("modules");
        foreach (var m in modules)
        {
            var r = m.Record;
            w.WriteStartObject();
            w.WriteString("path", m.Path);
            w.WriteBoolean("runtime", m.Runtime);
            if (r is { State: > 0 }) w.WriteString("choice", r.Chosen.ToString()); else w.WriteNull("choice");
            if (r is not null) w.WriteString("reason", r.Explain()); else w.WriteNull("reason");
            w.WriteStartArray("thunks");
            foreach (var t in m.Thunks)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                if (t.Register is { } reg) w.WriteString("register", reg); else w.WriteNull("register");
                if (t.Form is { } f) w.WriteString("form", f.ToString()); else w.WriteNull("form");
                w.WriteString("address", JsonReport.Hex(t.Address));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (r is not null)
            {
                w.WriteString("decidedBy", r.DecidedBy);
                w.WriteString("minimum", r.Minimum.ToString());
                if (r.Host is { } h) w.WriteString("hostChoice", h.ToString()); else w.WriteNull("hostChoice");
                w.WriteString("hostReason", r.Reason);
                w.WriteBoolean("secure", (r.Flags & RuntimeRecord.SecureFlag) != 0);
                w.WriteBoolean("environmentGeneric", (r.Flags & RuntimeRecord.EnvironmentGenericFlag) != 0);
                w.WriteNumber("patched", r.Patched);
                w.WriteNumber("unchanged", r.Unchanged);
                w.WriteNumber("leftAlone", r.LeftAlone);
                w.WriteNumber("error", r.Error);
                w.WriteBoolean("testBuild", (r.Flags & RuntimeRecord.FixtureRootFlag) != 0);
            }
            if (m.Problem is { } p) w.WriteString("problem", p);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>No PID: this machine's host rules, and what a Runtime module would choose under each minimum.</summary>
    public static void WriteHostText(TextWriter o, HostVendorChoice choice)
    {
        foreach (var line in choice.Explanation.SkipLast(1)) o.WriteLine($"host: {line}");
        o.WriteLine($"host rules: {choice.RuleVendor}: {HostExplanation.Why(choice.Reason)}");
        o.WriteLine($"a Runtime module here chooses {choice.Vendor} with minimum {choice.Minimum}{(choice.Minimum == HostVendor.DefaultMinimum ? " (the default)" : "")}; " +
            string.Join(", ", Enum.GetValues<Vendor>().Where(v => v != choice.Minimum).Select(v => $"{HostVendor.AtLeast(choice.RuleVendor, v)} with {v}")));
    }

    public static void WriteHostJson(Stream output, HostVendorChoice choice)
    {
        using var w = Writer(output);
        w.WriteStartObject();
        w.WriteNull("pid");
        w.WriteStartObject("host");
        w.WriteString("choice", choice.Vendor.ToString());
        w.WriteString("minimum", choice.Minimum.ToString());
        w.WriteString("rules", choice.RuleVendor.ToString());
        w.WriteString("reason", choice.Reason);
        w.WriteStartArray("explanation");
        foreach (var line in choice.Explanation) w.WriteStringValue(line);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteStartArray("modules");
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static Utf8JsonWriter Writer(Stream output)
        => new(output, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
