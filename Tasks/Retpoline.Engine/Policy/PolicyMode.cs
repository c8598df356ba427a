using Retpoline.Toolchain;

namespace Retpoline.Policy;

/// <summary>RetpolinePolicy: what a finding the verifier rejects becomes in a build.</summary>
public enum PolicyMode
{
    /// <summary>Errors stay errors and fail the build (the default).</summary>
    Error,
    /// <summary>Errors are reported as warnings; nothing fails.</summary>
    Warning,
    /// <summary>Errors are logged as messages only.</summary>
    None,
}

/// <summary>How a front end reports one diagnostic.</summary>
public enum ReportLevel { Error, Warning, Message }

/// <summary>
/// RetpolinePolicy, parsed once and applied in one place. The value is case-insensitive (`warning` is `Warning`), as
/// RetpolineVendor and RetpolineCallSites are; anything else is RPL0208 with the values it takes.
/// </summary>
public static class PolicyModes
{
    /// <exception cref="InvalidSettingException">Not Error, Warning or None (RPL0208).</exception>
    public static PolicyMode Parse(string value)
    {
        foreach (var mode in Enum.GetValues<PolicyMode>())
            if (string.Equals(value?.Trim(), mode.ToString(), StringComparison.OrdinalIgnoreCase)) return mode;
        throw new InvalidSettingException(ToolchainCodes.InvalidPropertyOrItem, $"RetpolinePolicy must be Error, Warning or None, not '{value}'");
    }

    /// <summary>
    /// An error diagnostic is an error under Error, a warning under Warning, a message under None; a warning stays a
    /// warning under every mode (it never fails a build, and the policy does not hide it); anything else is a message.
    /// </summary>
    public static ReportLevel LevelOf(this PolicyMode mode, Diagnostic d) => d.Severity switch
    {
        Severity.Error => mode switch { PolicyMode.Error => ReportLevel.Error, PolicyMode.Warning => ReportLevel.Warning, _ => ReportLevel.Message },
        Severity.Warning => ReportLevel.Warning,
        _ => ReportLevel.Message,
    };

    /// <summary>Whether the report fails a build under this mode.</summary>
    public static bool Fails(this PolicyMode mode, VerifyReport report) => mode == PolicyMode.Error && report.HasErrors;
}
