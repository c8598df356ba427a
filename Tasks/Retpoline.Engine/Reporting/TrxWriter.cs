using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Xml;
using Retpoline.Toolchain;

namespace Retpoline.Reporting;

/// <summary>
/// A Visual Studio test results file (TRX, namespace TeamTest/2010) for native test results, as `dotnet test
/// --logger trx` writes one for managed tests: one UnitTest definition and one UnitTestResult per case, the standard
/// test list, and the result summary with its counters. Azure DevOps, GitHub test reporters and Visual Studio read it.
///
/// The same results give the same bytes: every id is derived from the run name, the case name and its occurrence
/// (a name-based GUID), and no start/finish times or computer name are written — the schema makes them optional,
/// and a timestamp would make every run's file differ. Durations are written because they are the results.
/// </summary>
public static class TrxWriter
{
    const string Ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
    // The fixed ids every TRX uses: the unit-test type, and the list "Results Not in a List".
    const string UnitTestType = "13cdc9d9-ddb5-4fa4-a97d-d965ccfc6d4b";
    const string ResultsNotInAList = "8c84fa94-04c1-424b-9868-57a2d4851a1d";
    const string AllLoadedResults = "19431567-8539-422a-85d7-44ee4e166bda";

    public static void Write(string path, string runName, IReadOnlyList<TestCaseResult> results)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(stream, runName, results);
    }

    public static void Write(Stream output, string runName, IReadOnlyList<TestCaseResult> results)
    {
        // A name that occurs twice (a parameterised case, two programs of one name) still gets ids of its own.
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var cases = results.Select(r =>
        {
            int n = seen.TryGetValue(r.Name, out var k) ? k + 1 : 0;
            seen[r.Name] = n;
            return (Result: r,
                TestId: NameGuid("test", runName, r.Name, n),
                ExecutionId: NameGuid("execution", runName, r.Name, n));
        }).ToList();

        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), NewLineChars = "\n" };
        using var w = XmlWriter.Create(output, settings);
        w.WriteStartDocument();
        w.WriteStartElement("TestRun", Ns);
        w.WriteAttributeString("id", NameGuid("run", runName, "", 0));
        w.WriteAttributeString("name", Clean(runName));

        w.WriteStartElement("Results", Ns);
        foreach (var (r, testId, executionId) in cases)
        {
            w.WriteStartElement("UnitTestResult", Ns);
            w.WriteAttributeString("executionId", executionId);
            w.WriteAttributeString("testId", testId);
            w.WriteAttributeString("testName", Clean(r.Name));
            w.WriteAttributeString("duration", r.Duration.ToString("c", CultureInfo.InvariantCulture));
            w.WriteAttributeString("testType", UnitTestType);
            w.WriteAttributeString("outcome", Outcome(r.Outcome));
            w.WriteAttributeString("testListId", ResultsNotInAList);
            if (r.Output is not null || r.Message is not null)
            {
                w.WriteStartElement("Output", Ns);
                if (!string.IsNullOrEmpty(r.Output)) w.WriteElementString("StdOut", Ns, Clean(r.Output));
                if (r.Message is not null)
                {
                    w.WriteStartElement("ErrorInfo", Ns);
                    w.WriteElementString("Message", Ns, Clean(r.Message));
                    // TRX has no file/line fields; a stack-trace line is where readers look for them.
                    if (r.File is not null)
                        w.WriteElementString("StackTrace", Ns, Clean(r.Line is int line ? $"at {r.Name} in {r.File}:line {line}" : $"at {r.Name} in {r.File}"));
                    w.WriteEndElement();
                }
                w.WriteEndElement();
            }
            w.WriteEndElement();
        }
        w.WriteEndElement();

        w.WriteStartElement("TestDefinitions", Ns);
        foreach (var (r, testId, executionId) in cases)
        {
            var (className, method) = Split(r.Name, runName);
            w.WriteStartElement("UnitTest", Ns);
            w.WriteAttributeString("name", Clean(r.Name));
            w.WriteAttributeString("storage", Clean(runName));
            w.WriteAttributeString("id", testId);
            w.WriteStartElement("Execution", Ns);
            w.WriteAttributeString("id", executionId);
            w.WriteEndElement();
            w.WriteStartElement("TestMethod", Ns);
            w.WriteAttributeString("codeBase", Clean(runName));
            w.WriteAttributeString("adapterTypeName", "executor://retpoline/native");
            w.WriteAttributeString("className", Clean(className));
            w.WriteAttributeString("name", Clean(method));
            w.WriteEndElement();
            w.WriteEndElement();
        }
        w.WriteEndElement();

        w.WriteStartElement("TestEntries", Ns);
        foreach (var (_, testId, executionId) in cases)
        {
            w.WriteStartElement("TestEntry", Ns);
            w.WriteAttributeString("testId", testId);
            w.WriteAttributeString("executionId", executionId);
            w.WriteAttributeString("testListId", ResultsNotInAList);
            w.WriteEndElement();
        }
        w.WriteEndElement();

        w.WriteStartElement("TestLists", Ns);
        TestList(w, "Results Not in a List", ResultsNotInAList);
        TestList(w, "All Loaded Results", AllLoadedResults);
        w.WriteEndElement();

        int passed = results.Count(r => r.Outcome == TestOutcome.Passed);
        int failed = results.Count(r => r.Outcome == TestOutcome.Failed);
        int skipped = results.Count(r => r.Outcome == TestOutcome.Skipped);
        w.WriteStartElement("ResultSummary", Ns);
        w.WriteAttributeString("outcome", failed > 0 ? "Failed" : "Completed");
        w.WriteStartElement("Counters", Ns);
        foreach (var (name, value) in new[]
        {
            ("total", results.Count), ("executed", passed + failed), ("passed", passed), ("failed", failed),
            ("error", 0), ("timeout", 0), ("aborted", 0), ("inconclusive", 0), ("passedButRunAborted", 0),
            ("notRunnable", 0), ("notExecuted", skipped), ("disconnected", 0), ("warning", 0), ("completed", 0),
            ("inProgress", 0), ("pending", 0),
        })
            w.WriteAttributeString(name, value.ToString(CultureInfo.InvariantCulture));
        w.WriteEndElement();
        w.WriteEndElement();

        w.WriteEndElement();
        w.WriteEndDocument();
    }

    static void TestList(XmlWriter w, string name, string id)
    {
        w.WriteStartElement("TestList", Ns);
        w.WriteAttributeString("name", name);
        w.WriteAttributeString("id", id);
        w.WriteEndElement();
    }

    static string Outcome(TestOutcome o) => o switch
    {
        TestOutcome.Passed => "Passed",
        TestOutcome.Failed => "Failed",
        _ => "NotExecuted",
    };

    /// <summary>`Suite.Case` → (Suite, Case); a name without a dot belongs to the run (the program's project).</summary>
    static (string ClassName, string Method) Split(string name, string runName)
    {
        int dot = name.LastIndexOf('.');
        return dot > 0 && dot < name.Length - 1 ? (name[..dot], name[(dot + 1)..]) : (runName, name);
    }

    /// <summary>
    /// A GUID from a name (SHA-256, version and variant bits set as RFC 9562 asks of a name-based one): the same
    /// case gets the same id in every run, so two TRX files of one suite can be compared.
    /// </summary>
    static string NameGuid(string kind, string runName, string name, int occurrence)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{kind}\0{runName}\0{name}\0{occurrence}"));
        var bytes = hash.AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0f) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3f) | 0x80);
        return new Guid(bytes, bigEndian: true).ToString("D");
    }

    /// <summary>
    /// Test output is whatever a program printed; XML 1.0 cannot hold most control characters (the writer would
    /// throw), so they are written as C-style escapes, the way the text report writes them.
    /// </summary>
    static string Clean(string text)
    {
        StringBuilder? b = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool ok = c is '\t' or '\n' or '\r' || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd)
                || (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                || (char.IsLowSurrogate(c) && i > 0 && char.IsHighSurrogate(text[i - 1]));
            if (ok) { b?.Append(c); continue; }
            b ??= new StringBuilder(text.Length + 8).Append(text, 0, i);
            b.Append(c < 0x100 ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}");
        }
        return b?.ToString() ?? text;
    }
}
