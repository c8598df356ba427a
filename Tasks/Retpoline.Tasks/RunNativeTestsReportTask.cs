using Microsoft.Build.Framework;
using Retpoline.Reporting;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// The end of `dotnet test` for a native test project, whichever driver ran the tests: each case logged (a failure
/// as error RPL0251 at the assertion's file and line when the runner named one, with the program's output), the TRX
/// file when a trx logger was asked for, and the summary line. Fails the build when a case failed.
/// </summary>
public sealed class RunNativeTestsReportTask : Microsoft.Build.Utilities.Task
{
    public ITaskItem[] Results { get; set; } = [];
    /// <summary>The run's name in the TRX file and the log (the project's name).</summary>
    [Required] public string RunName { get; set; } = "";
    /// <summary>`dotnet test --logger …`: each logger, `name;key=value;…` (VSTestLogger).</summary>
    public string[] Loggers { get; set; } = [];
    /// <summary>`--results-directory` (VSTestResultsDirectory); the default is TestResults under the project folder.</summary>
    public string ResultsDirectory { get; set; } = "";
    [Required] public string ProjectDirectory { get; set; } = "";
    /// <summary>`$(_MSBUILDTLENABLED)`: the terminal logger shows errors but not messages, so a failure's output goes into its error.</summary>
    public bool TerminalLogger { get; set; }
    /// <summary>Where a failure that names no source line is reported: the test project.</summary>
    public string ProjectFile { get; set; } = "";

    /// <summary>`dotnet test --filter` (VSTestTestCaseFilter): VSTest's filter language, which native programs do not take.</summary>
    public string Filter { get; set; } = "";

    [Output] public string TrxFile { get; set; } = "";

    public override bool Execute()
    {
        var results = new List<TestCaseResult>();
        foreach (var item in Results)
        {
            var r = TestResultItems.FromItem(item, out var problem);
            if (r is null) { Log.LogError(null, ToolchainCodes.InvalidPropertyOrItem, null, null, 0, 0, 0, 0, "{0}", problem); continue; }
            results.Add(r);
        }
        if (Log.HasLoggedErrors) return false;
        // Said, not silently ignored: a filtered run that ran everything would look like the filter worked.
        if (Filter.Length > 0)
            Log.LogWarning(null, ToolchainCodes.TestFilterIgnored, null, ProjectFile.Length > 0 ? ProjectFile : null, 0, 0, 0, 0,
                "dotnet test --filter is not applied to native test programs: every case of {0} ran (filter '{1}')", RunName, TextEscape.Line(Filter));

        foreach (var r in results)
        {
            string ms = ((long)r.Duration.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            switch (r.Outcome)
            {
                case TestOutcome.Passed:
                    Log.LogMessage(MessageImportance.Normal, "  Passed {0} [{1} ms]", TextEscape.Line(r.Name), ms);
                    break;
                case TestOutcome.Skipped:
                    Log.LogMessage(MessageImportance.High, "  Skipped {0}{1}", TextEscape.Line(r.Name), r.Message is null ? "" : ": " + TextEscape.Line(r.Message));
                    break;
                default:
                    // One error line (CI annotations, the error summary); the rest of the message and what the
                    // program printed follow it as one block, indented, so the failure is readable where it is reported.
                    var lines = (r.Message ?? "failed").Split('\n');
                    string? file = r.File is null ? (ProjectFile.Length > 0 ? ProjectFile : null) : Path.GetFullPath(r.File, ProjectDirectory);
                    string error = TextEscape.Line($"test '{r.Name}' failed: {lines[0]}");
                    var detail = lines.Skip(1).Where(l => l.Length > 0).ToList();
                    if (!string.IsNullOrEmpty(r.Output))
                        detail.AddRange(new[] { $"output of '{r.Name}':" }.Concat(r.Output.TrimEnd('\n', '\r').Split('\n').Select(l => "  " + l.TrimEnd('\r'))));
                    // What a program printed must not drive the terminal: each line escaped, the line breaks ours.
                    string block = string.Join("\n", detail.Select(l => "    " + TextEscape.Line(l)));
                    if (TerminalLogger && detail.Count > 0)
                        Log.LogError(null, ToolchainCodes.NativeTestFailed, null, file, r.Line ?? 0, 0, 0, 0, "{0}", error + "\n" + block);
                    else
                    {
                        Log.LogError(null, ToolchainCodes.NativeTestFailed, null, file, r.Line ?? 0, 0, 0, 0, "{0}", error);
                        if (detail.Count > 0) Log.LogMessage(MessageImportance.High, "{0}", block);
                    }
                    break;
            }
        }

        string? trx = TrxPath();
        if (trx is not null)
        {
            try
            {
                TrxWriter.Write(trx, RunName, results);
                TrxFile = trx;
                Log.LogMessage(MessageImportance.High, "Results File: {0}", trx);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.LogError(null, ToolchainCodes.TestResultsUnwritable, null, ProjectFile.Length > 0 ? ProjectFile : null, 0, 0, 0, 0,
                    "cannot write the test results file '{0}': {1} (choose another folder with --results-directory)", trx, e.Message);
            }
        }
        LogSummary(results);
        return !Log.HasLoggedErrors;
    }

    /// <summary>
    /// The summary line, as the message the terminal logger collects for its "Test summary" (what VSTest's task sends,
    /// TLTESTFINISH); every other logger prints its text.
    /// </summary>
    void LogSummary(IReadOnlyList<TestCaseResult> results)
    {
        string text = $"{RunName}: {TestSummary.Line(results)}";
        static string N(int n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var e = new ExtendedBuildMessageEventArgs("TLTESTFINISH", text, null, null, MessageImportance.High)
        {
            ExtendedMetadata = new Dictionary<string, string?>
            {
                ["total"] = N(results.Count),
                ["passed"] = N(results.Count(r => r.Outcome == TestOutcome.Passed)),
                ["skipped"] = N(results.Count(r => r.Outcome == TestOutcome.Skipped)),
                ["failed"] = N(results.Count(r => r.Outcome == TestOutcome.Failed)),
                ["duration"] = results.Aggregate(TimeSpan.Zero, (t, r) => t + r.Duration).ToString("c", System.Globalization.CultureInfo.InvariantCulture),
            },
        };
        BuildEngine.LogMessageEvent(e);
    }

    /// <summary>The TRX path when a trx logger was asked for: LogFileName (relative to the results directory) or RunName.trx.</summary>
    string? TrxPath()
    {
        foreach (var logger in Loggers)
        {
            var parts = logger.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length == 0 || !parts[0].Equals("trx", StringComparison.OrdinalIgnoreCase)) continue;
            string dir = Path.GetFullPath(ResultsDirectory.Length > 0 ? ResultsDirectory : "TestResults", ProjectDirectory);
            string? name = parts.Skip(1).Select(p => p.Split('=', 2)).Where(kv => kv.Length == 2 && kv[0].Trim().Equals("LogFileName", StringComparison.OrdinalIgnoreCase))
                .Select(kv => kv[1].Trim()).LastOrDefault();
            return Path.GetFullPath(name ?? RunName + ".trx", dir);
        }
        return null;
    }
}
