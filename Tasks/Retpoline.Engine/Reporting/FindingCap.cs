using Retpoline.Policy;
using Retpoline.Toolchain;

namespace Retpoline.Reporting;

/// <summary>
/// How many error diagnostics a build log lists per verified file (RetpolineMaxFindings), the same for native and
/// managed projects: an unmitigated third-party library has thousands, and the first few say what to do. The rest
/// are counted in one line that names the command listing them all; they fail the build all the same.
/// </summary>
public static class FindingCap
{
    public const int Default = 20;

    /// <summary>Empty: <see cref="Default"/>; 0: no cap.</summary>
    /// <exception cref="InvalidSettingException">Not a whole number from 0 up (RPL0208).</exception>
    public static int Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return Default;
        if (int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int max)) return max;
        throw new InvalidSettingException(ToolchainCodes.InvalidPropertyOrItem, $"RetpolineMaxFindings must be a whole number from 0 (list every finding) up, not '{text}'");
    }

    /// <summary>Every warning and message, the first <paramref name="max"/> errors (0: all), in order; and how many errors were left out.</summary>
    public static (List<Diagnostic> Shown, int Hidden) Apply(IEnumerable<Diagnostic> diagnostics, int max)
    {
        var shown = new List<Diagnostic>();
        int errors = 0, hidden = 0;
        foreach (var d in diagnostics)
        {
            if (d.Severity == Severity.Error && max > 0 && errors >= max) { hidden++; continue; }
            if (d.Severity == Severity.Error) errors++;
            shown.Add(d);
        }
        return (shown, hidden);
    }

    /// <summary>The line that stands for the errors left out.</summary>
    public static string More(string shownFile, int hidden) =>
        $"Retpoline: {shownFile}: {hidden} more finding(s) not shown; `retpoline verify {shownFile}` lists them all";
}
