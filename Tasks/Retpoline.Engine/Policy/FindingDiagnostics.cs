namespace Retpoline.Policy;

/// <summary>Which findings the policy rejects, and the coded diagnostic for each.</summary>
public static class FindingDiagnostics
{
    public static bool IsError(Finding f, bool strict) => f.AllowedBy is null && f.Class switch
    {
        FindingClass.UserCode or FindingClass.Plt => true,
        FindingClass.ToolchainStartup => strict,
        _ => false,
    };

    public static IEnumerable<Diagnostic> For(IEnumerable<Finding> findings, bool strict)
    {
        foreach (var f in findings)
        {
            if (!IsError(f, strict)) continue;
            var (code, message) = f.Class switch
            {
                FindingClass.UserCode => (Codes.UserCode, Messages.UserCode(f)),
                FindingClass.Plt => (Codes.Plt, Messages.Plt(f)),
                _ => (Codes.ToolchainStartup, Messages.Startup(f)),
            };
            yield return new Diagnostic(code, Severity.Error, message, f.Address, f.Function, f.SourceFile, f.Line);
        }
    }
}
