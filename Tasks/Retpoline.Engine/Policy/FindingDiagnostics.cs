namespace Retpoline.Policy;

/// <summary>Which findings the policy rejects (unless a waiver matched), and the coded diagnostic for each.</summary>
public static class FindingDiagnostics
{
    public static bool IsError(Finding f, bool strict) => f.AllowedBy is null && f.Class switch
    {
        FindingClass.UserCode or FindingClass.Plt or FindingClass.SlsGap => true,
        FindingClass.ToolchainStartup => strict,
        _ => false,
    };

    public static IEnumerable<Diagnostic> For(IEnumerable<Finding> findings, bool strict)
    {
        foreach (var f in findings)
            if (IsError(f, strict))
                yield return Of(f);
    }

    /// <summary>The diagnostic a finding is (or, when waived, would be).</summary>
    public static Diagnostic Of(Finding f) => new(Messages.CodeOf(f), Severity.Error, Messages.For(f), f.Address, f.Function, f.SourceFile, f.Line, f.Origin);
}
