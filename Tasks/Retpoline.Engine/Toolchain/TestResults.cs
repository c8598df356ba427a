namespace Retpoline.Toolchain;

public enum TestOutcome { Passed, Failed, Skipped }

/// <summary>
/// One test case as any native test runner reported it: a plain program (its exit code), a GoogleTest case (its XML
/// report), a ctest test (its JUnit report). Every runner produces these, so `dotnet test` reports, summarises and
/// writes TRX for all of them the same way.
/// </summary>
public sealed record TestCaseResult(
    /// <summary>`Suite.Case` for GoogleTest, the ctest test name, or the program's name.</summary>
    string Name,
    TestOutcome Outcome,
    TimeSpan Duration,
    /// <summary>What the test printed (shown on failure).</summary>
    string? Output = null,
    /// <summary>The failure message: the assertion text, "exit code 3", "timed out after 60 s".</summary>
    string? Message = null,
    /// <summary>Where the failure was reported, when the runner says (GoogleTest: file and line of the assertion).</summary>
    string? File = null,
    int? Line = null);
