using System.Xml.Linq;
using Retpoline.Reporting;
using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

public class TrxTests
{
    static readonly XNamespace Ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";

    static readonly TestCaseResult[] Results =
    [
        new("Math.Adds", TestOutcome.Passed, TimeSpan.FromMilliseconds(12)),
        new("Math.Divides", TestOutcome.Failed, TimeSpan.FromMilliseconds(3), Output: "got 3\n", Message: "Expected equality of these values:\n  2\n  3", File: "math_test.cc", Line: 17),
        new("Math.Later", TestOutcome.Skipped, TimeSpan.Zero),
        new("selftest", TestOutcome.Failed, TimeSpan.FromSeconds(1.5), Output: "bell\u0007 nul\0 end", Message: "exit code 3"),
    ];

    static string WriteTrx(TestCaseResult[] results, string name = "mathtests")
    {
        var path = Path.Combine(Path.GetTempPath(), $"trx-{Guid.NewGuid():N}", "out.trx");
        TrxWriter.Write(path, name, results);
        return path;
    }

    [Fact]
    public void Summary_line_counts_each_outcome()
    {
        Assert.Equal("1 passed, 2 failed, 1 skipped", TestSummary.Line(Results));
        Assert.Equal("0 passed, 0 failed, 0 skipped", TestSummary.Line([]));
    }

    [Fact]
    public void Trx_has_one_definition_result_and_entry_per_case_with_counters()
    {
        var doc = XDocument.Load(WriteTrx(Results));
        var run = doc.Root!;
        Assert.Equal(Ns + "TestRun", run.Name);
        Assert.Equal("mathtests", (string?)run.Attribute("name"));

        var results = run.Element(Ns + "Results")!.Elements(Ns + "UnitTestResult").ToList();
        Assert.Equal(["Math.Adds", "Math.Divides", "Math.Later", "selftest"], results.Select(r => (string)r.Attribute("testName")!));
        Assert.Equal(["Passed", "Failed", "NotExecuted", "Failed"], results.Select(r => (string)r.Attribute("outcome")!));
        Assert.Equal(["00:00:00.0120000", "00:00:00.0030000", "00:00:00", "00:00:01.5000000"], results.Select(r => (string)r.Attribute("duration")!));

        var failure = results[1].Element(Ns + "Output")!;
        Assert.Equal("got 3\n", (string?)failure.Element(Ns + "StdOut"));
        Assert.Equal("Expected equality of these values:\n  2\n  3", (string?)failure.Element(Ns + "ErrorInfo")!.Element(Ns + "Message"));
        Assert.Equal("at Math.Divides in math_test.cc:line 17", (string?)failure.Element(Ns + "ErrorInfo")!.Element(Ns + "StackTrace"));
        // Control characters a program printed are escaped, not an XML error.
        Assert.Equal("bell\\x07 nul\\x00 end", (string?)results[3].Element(Ns + "Output")!.Element(Ns + "StdOut"));

        var definitions = run.Element(Ns + "TestDefinitions")!.Elements(Ns + "UnitTest").ToList();
        var methods = definitions.Select(d => d.Element(Ns + "TestMethod")!).ToList();
        Assert.Equal(["Math", "Math", "Math", "mathtests"], methods.Select(m => (string)m.Attribute("className")!));
        Assert.Equal(["Adds", "Divides", "Later", "selftest"], methods.Select(m => (string)m.Attribute("name")!));
        // Each result points at its definition and its execution.
        Assert.Equal(definitions.Select(d => (string)d.Attribute("id")!), results.Select(r => (string)r.Attribute("testId")!));
        Assert.Equal(definitions.Select(d => (string)d.Element(Ns + "Execution")!.Attribute("id")!), results.Select(r => (string)r.Attribute("executionId")!));
        Assert.Equal(4, run.Element(Ns + "TestEntries")!.Elements().Count());
        Assert.Equal(4, definitions.Select(d => (string)d.Attribute("id")!).Distinct().Count());

        var summary = run.Element(Ns + "ResultSummary")!;
        Assert.Equal("Failed", (string?)summary.Attribute("outcome"));
        var counters = summary.Element(Ns + "Counters")!;
        Assert.Equal(("4", "3", "1", "2", "1"), ((string)counters.Attribute("total")!, (string)counters.Attribute("executed")!,
            (string)counters.Attribute("passed")!, (string)counters.Attribute("failed")!, (string)counters.Attribute("notExecuted")!));
    }

    [Fact]
    public void Same_results_give_the_same_bytes_and_repeated_names_their_own_ids()
    {
        Assert.Equal(File.ReadAllBytes(WriteTrx(Results)), File.ReadAllBytes(WriteTrx(Results)));
        var twice = XDocument.Load(WriteTrx([new("t", TestOutcome.Passed, TimeSpan.Zero), new("t", TestOutcome.Passed, TimeSpan.Zero)]));
        Assert.Equal(2, twice.Root!.Element(Ns + "TestDefinitions")!.Elements().Select(d => (string)d.Attribute("id")!).Distinct().Count());
        var passing = XDocument.Load(WriteTrx([new("t", TestOutcome.Passed, TimeSpan.Zero)]));
        Assert.Equal("Completed", (string?)passing.Root!.Element(Ns + "ResultSummary")!.Attribute("outcome"));
        Assert.DoesNotContain("Times", File.ReadAllText(WriteTrx(Results)));
    }
}
