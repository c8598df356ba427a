namespace Retpoline.Policy;

/// <summary>
/// The text of every finding diagnostic. Each error names its fix and its opt-out in one line (MSB8040's lesson),
/// so a reader of a CI log needs no other page to act on it.
/// </summary>
public static class Messages
{
    public static string Kind(Finding f) => f.Instruction.Contains("call", StringComparison.Ordinal) ? "indirect call" : "indirect jump";

    // Kept short: a large unmitigated library yields tens of thousands of these. The full Problem / Fix / Waive if
    // text lives in docs/diagnostics.md and the SARIF rule help.
    public static string UserCode(Finding f) =>
        $"{Kind(f)} '{f.Instruction}' at 0x{f.Address:x} in function '{f.Function}' is not routed through a retpoline thunk " +
        $"(rebuild with the retpoline flags; waive: RetpolineAllow \"{BaseName(f.Function)}\")";

    public static string Plt(Finding f) =>
        $"PLT entry '{f.Function}' at 0x{f.Address:x} ('{f.Instruction}') is reached from user code ({f.Detail}); " +
        $"link with -fno-plt -Wl,-z,now or lld's -z retpolineplt (waive: RetpolineAllow \"{f.Function}\")";

    public static string Startup(Finding f) =>
        $"toolchain startup {Kind(f)} '{f.Instruction}' at 0x{f.Address:x} in '{f.Function}' is not routed through a retpoline thunk " +
        "(crt code the compiler does not rebuild; reported because RetpolineStrict is true)";

    /// <summary>`dispatch+0x9` → `dispatch`; `puts@plt` stays.</summary>
    public static string BaseName(string function)
    {
        int plus = function.LastIndexOf("+0x", StringComparison.Ordinal);
        return plus > 0 ? function[..plus] : function;
    }
}
