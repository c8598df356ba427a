namespace Retpoline.Policy;

/// <summary>
/// Decides the class of everything the verifier found (DESIGN.md §3). The verifier collects the facts — where a
/// branch is, which function holds it, whether the file records it as patched or annotated, who calls a PLT entry —
/// and asks here; what each class then means (error or allowed) is <see cref="FindingDiagnostics"/>'s.
/// </summary>
public static class FindingClassifier
{
    /// <summary>An indirect call or jump outside the PLT and outside every recognised thunk.</summary>
    /// <param name="function">The containing symbol's name (without offset).</param>
    public static FindingClass Branch(string function, bool patchedSite, bool annotated)
        => patchedSite ? FindingClass.PatchedSite
        : annotated ? FindingClass.Annotated
        : StartupFunctions.Contains(function) ? FindingClass.ToolchainStartup
        : FindingClass.UserCode;

    /// <summary>
    /// A PLT entry's indirect jump: ToolchainStartup when only crt functions call the entry, Plt otherwise — also when
    /// nothing calls it directly, since then its address was taken and user code reaches it that way.
    /// </summary>
    public static FindingClass PltEntry(IReadOnlyCollection<string>? callers)
        => callers is { Count: > 0 } && callers.All(StartupFunctions.Contains) ? FindingClass.ToolchainStartup : FindingClass.Plt;

    /// <summary>The lazy-binding PLT header: user code reaches the resolver through it when it reaches any entry.</summary>
    public static FindingClass PltHeader(bool someEntryIsPlt) => someEntryIsPlt ? FindingClass.Plt : FindingClass.ToolchainStartup;

    /// <summary>
    /// A `ret` or indirect `jmp` with no `int3` after it (HardenSls): a finding in user code; nothing in the PLT or in
    /// crt startup code, which no compiler flag of this project rebuilds.
    /// </summary>
    public static FindingClass? SlsGap(string function, bool inPlt)
        => inPlt || StartupFunctions.Contains(function) ? null : FindingClass.SlsGap;

    /// <summary>crt code is not the user's source: no line is looked up for it.</summary>
    public static bool HasUserSource(FindingClass c) => c != FindingClass.ToolchainStartup;

    /// <summary>The finding's detail for the classes whose reason the file itself records.</summary>
    public static string? Detail(FindingClass c, string? patchRecord) => c switch
    {
        FindingClass.PatchedSite => patchRecord,
        FindingClass.Annotated => "marked RETPOLINE_SAFE in source",
        _ => null,
    };
}
