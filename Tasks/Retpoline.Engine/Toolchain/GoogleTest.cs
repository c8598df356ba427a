using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Retpoline.Toolchain;

/// <summary>
/// GoogleTest programs: recognised by the help text of their `--gtest_output` flag (in the program's read-only data
/// whether GoogleTest is linked statically or not, stripped or not), and read back from the XML report that flag writes.
/// </summary>
public static class GoogleTest
{
    static readonly byte[] Marker = Encoding.ASCII.GetBytes("--gtest_output=");

    /// <summary>True when the file holds GoogleTest's flag text (libgtest's help message); a plain program does not.
    /// A file that cannot be read is not one: starting it then reports why.</summary>
    public static bool IsGoogleTestProgram(string path)
    {
        try { return Contains(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    static bool Contains(string path)
    {
        // libgtest.so holds the text for a dynamically linked program, not the program itself: ask for its name too.
        var needle = Marker;
        var soName = Encoding.ASCII.GetBytes("libgtest.so");
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var buffer = new byte[1 << 20];
        int carry = 0, read;
        int keep = Math.Max(needle.Length, soName.Length) - 1;
        while ((read = f.Read(buffer, carry, buffer.Length - carry)) > 0)
        {
            var span = buffer.AsSpan(0, carry + read);
            if (span.IndexOf(needle) >= 0 || span.IndexOf(soName) >= 0) return true;
            carry = Math.Min(keep, span.Length);
            span[^carry..].CopyTo(buffer);
        }
        return false;
    }

    /// <summary>
    /// The cases of a GoogleTest XML report, `Suite.Case` each. A program that exited non-zero although every case
    /// passed (a crash after the last case, a sanitizer's exit code) adds one failed case named for the program.
    /// </summary>
    public static IReadOnlyList<TestCaseResult> Results(string xmlPath, string programName, TestProgramRun run)
    {
        XDocument doc;
        try { doc = XDocument.Load(xmlPath); }
        catch (System.Xml.XmlException e)
        {
            return [new TestCaseResult(programName, TestOutcome.Failed, run.Duration, run.Output, $"unreadable GoogleTest report: {e.Message}")];
        }
        var results = new List<TestCaseResult>();
        foreach (var c in doc.Descendants("testcase"))
        {
            string suite = (string?)c.Attribute("classname") ?? "";
            string name = suite.Length > 0 ? $"{suite}.{(string?)c.Attribute("name")}" : (string?)c.Attribute("name") ?? "";
            var duration = TimeSpan.FromSeconds(double.TryParse((string?)c.Attribute("time"), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) ? s : 0);
            var failures = c.Elements("failure").ToList();
            string status = (string?)c.Attribute("status") ?? "run";
            string result = (string?)c.Attribute("result") ?? "completed";
            if (failures.Count > 0)
            {
                // Each failure's text starts with "file:line" of the assertion; the first one locates the case.
                var texts = failures.Select(f => f.Value.Length > 0 ? f.Value : (string?)f.Attribute("message") ?? "").ToList();
                var (file, line, first) = Locate(texts[0]);
                string message = string.Join("\n", new[] { first }.Concat(texts.Skip(1).Select(t => Locate(t).Message))).Trim('\n');
                results.Add(new TestCaseResult(name, TestOutcome.Failed, duration, null, message, file, line));
            }
            else if (status == "notrun" || result is "skipped" or "suppressed")
                results.Add(new TestCaseResult(name, TestOutcome.Skipped, duration, null, c.Element("skipped")?.Attribute("message") is { } skip ? Locate(skip.Value).Message : null));
            else
                results.Add(new TestCaseResult(name, TestOutcome.Passed, duration));
        }
        if (run.ExitCode != 0 && results.All(r => r.Outcome != TestOutcome.Failed))
            results.Add(new TestCaseResult(programName, TestOutcome.Failed, run.Duration, run.Output, TestRun.ExitText(run.ExitCode)));
        return results;
    }

    static readonly Regex Location = new(@"^(?<file>[^\n]+?):(?<line>\d+)\n", RegexOptions.CultureInvariant);

    static (string? File, int? Line, string Message) Locate(string text)
    {
        var m = Location.Match(text);
        return m.Success ? (m.Groups["file"].Value, int.Parse(m.Groups["line"].Value, CultureInfo.InvariantCulture), text[m.Length..]) : (null, null, text);
    }
}
