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
            if (IsError(f, strict))
                yield return new Diagnostic(Messages.CodeOf(f), Severity.Error, Messages.For(f), f.Address, f.Function, f.SourceFile, f.Line);
    }
}
