using Retpoline.Toolchain;

namespace Retpoline.Reporting;

/// <summary>
/// The one summary line every native test runner ends with, whatever ran the tests (plain programs, GoogleTest,
/// ctest): the same words for the same counts, so a CI log is read the same way for each of them.
/// </summary>
public static class TestSummary
{
    public static string Line(IReadOnlyList<TestCaseResult> results)
    {
        int passed = 0, failed = 0, skipped = 0;
        foreach (var r in results)
        {
            switch (r.Outcome)
            {
                case TestOutcome.Passed: passed++; break;
                case TestOutcome.Failed: failed++; break;
                default: skipped++; break;
            }
        }
        return $"{passed} passed, {failed} failed, {skipped} skipped";
    }
}
