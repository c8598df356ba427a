using System.Globalization;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// A test case as an MSBuild item, `RetpolineTestResult`: how every native test driver (test programs, ctest) hands
/// its results to the one report step of `dotnet test`. Include = the case name; metadata Outcome (Passed, Failed,
/// Skipped), Duration (seconds, invariant culture), and when known TestOutput (what it printed; MSBuild reserves the name Output), Message, File, Line.
/// </summary>
public static class TestResultItems
{
    public static ITaskItem ToItem(TestCaseResult r)
    {
        var item = new TaskItem(EscapeSpec(r.Name));
        item.SetMetadata("Outcome", r.Outcome.ToString());
        item.SetMetadata("Duration", r.Duration.TotalSeconds.ToString("0.######", CultureInfo.InvariantCulture));
        if (r.Output is not null) Literal(item, "TestOutput", r.Output);
        if (r.Message is not null) Literal(item, "Message", r.Message);
        if (r.File is not null) Literal(item, "File", r.File);
        if (r.Line is int line) item.SetMetadata("Line", line.ToString(CultureInfo.InvariantCulture));
        return item;
    }

    /// <summary>The case an item describes; null (with the reason) when its Outcome or Duration cannot be read.</summary>
    public static TestCaseResult? FromItem(ITaskItem item, out string? problem)
    {
        problem = null;
        if (!Enum.TryParse<TestOutcome>(item.GetMetadata("Outcome"), ignoreCase: true, out var outcome))
        {
            problem = $"RetpolineTestResult '{item.ItemSpec}' has Outcome '{item.GetMetadata("Outcome")}'; it takes Passed, Failed or Skipped";
            return null;
        }
        string d = item.GetMetadata("Duration");
        double seconds = 0;
        if (d.Length > 0 && !double.TryParse(d, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds))
        {
            problem = $"RetpolineTestResult '{item.ItemSpec}' has Duration '{d}'; it takes seconds, such as 0.25";
            return null;
        }
        static string? Get(ITaskItem i, string name) => i.GetMetadata(name) is { Length: > 0 } v ? v : null;
        return new TestCaseResult(item.ItemSpec, outcome, TimeSpan.FromSeconds(seconds), Get(item, "TestOutput"), Get(item, "Message"),
            Get(item, "File"), int.TryParse(item.GetMetadata("Line"), NumberStyles.None, CultureInfo.InvariantCulture, out var line) ? line : null);
    }

    /// <summary>An item spec is read as MSBuild text: `%`, `;`, `$`, `@`, quotes, parentheses and wildcards escaped keep the name as it is.</summary>
    static string EscapeSpec(string s)
    {
        var b = new System.Text.StringBuilder(s.Length);
        foreach (char c in s)
            if ("%;$@'()*?".Contains(c)) b.Append('%').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            else b.Append(c);
        return b.ToString();
    }

    // Literal: output and names may hold `%`, `;`, `$` or `@`, which plain SetMetadata would read as MSBuild escapes.
    static void Literal(TaskItem item, string name, string value) => ((ITaskItem2)item).SetMetadataValueLiteral(name, value);
}
