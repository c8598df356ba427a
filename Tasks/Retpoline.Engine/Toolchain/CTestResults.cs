using System.Globalization;
using System.Xml.Linq;

namespace Retpoline.Toolchain;

/// <summary>
/// ctest's run of a CMake build tree, `ctest --test-dir BUILD --output-on-failure -j N --output-junit FILE` (JUnit
/// since CMake 3.21), and its report read back as <see cref="TestCaseResult"/>s: one `testcase` per test, with
/// `status` run/fail/notrun/disabled, a `failure` or `skipped` child, `time` in seconds and `system-out`.
/// </summary>
public static class CTestResults
{
    public static List<string> Arguments(string build, int jobs, string junitFile) =>
        ["--test-dir", build, "--output-on-failure", "-j", Math.Max(1, jobs).ToString(CultureInfo.InvariantCulture), "--output-junit", junitFile];

    /// <summary>Runs ctest; the results, or (null, the reason) when it produced no report.</summary>
    public static (IReadOnlyList<TestCaseResult>? results, ForeignStep step) Run(string ctest, string build, int jobs, string junitFile)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(junitFile)!);
        File.Delete(junitFile);
        var args = Arguments(build, jobs, junitFile);
        var r = ProcessRunner.Run(ctest, args, build);
        string output = (r.StandardOutput + "\n" + r.StandardError).Trim();
        string command = ProcessRunner.Display(ctest, args);
        if (r.ExitCode == -1 && r.StandardError.StartsWith("cannot start", StringComparison.Ordinal))
            return (null, CMakeBuild.NotFound(ctest, "apt-get install cmake (3.21 or newer), or set CTestCommand to its path"));
        if (!File.Exists(junitFile))
            return (null, new ForeignStep(false, command, output, [new CompilerDiagnostic(Severity.Error, null, 0, 0, CMakeCodes.BuildFailed,
                $"ctest exited with code {r.ExitCode} and wrote no JUnit report (ctest 3.21 or newer writes one): {CMakeBuild.Tail(output)}")]));
        return (Parse(File.ReadAllText(junitFile)), new ForeignStep(true, command, output, []));
    }

    public static List<TestCaseResult> Parse(string junit)
    {
        var list = new List<TestCaseResult>();
        foreach (var t in XDocument.Parse(junit).Descendants("testcase"))
        {
            string name = (string?)t.Attribute("name") ?? "";
            string status = (string?)t.Attribute("status") ?? "";
            var failure = t.Element("failure");
            var skipped = t.Element("skipped");
            var outcome = failure is not null || status == "fail" ? TestOutcome.Failed
                : skipped is not null || status is "notrun" or "disabled" ? TestOutcome.Skipped
                : TestOutcome.Passed;
            double.TryParse((string?)t.Attribute("time"), NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds);
            string? output = t.Element("system-out")?.Value is { Length: > 0 } o ? o : null;
            string? message = outcome switch
            {
                TestOutcome.Failed => (string?)failure?.Attribute("message") is { Length: > 0 } m ? m : "ctest reports the test failed (non-zero exit, a FAIL_REGULAR_EXPRESSION match or a timeout)",
                TestOutcome.Skipped => (string?)skipped?.Attribute("message") is { Length: > 0 } s ? s : $"ctest status '{status}'",
                _ => null,
            };
            list.Add(new TestCaseResult(name, outcome, TimeSpan.FromSeconds(seconds), output, message));
        }
        return list;
    }
}
