namespace Retpoline.Policy;

/// <summary>
/// The text of every finding diagnostic. Each error names its fix and its opt-out in one line (MSB8040's lesson),
/// so a reader of a CI log needs no other page to act on it.
/// </summary>
public static class Messages
{
    public static string Kind(Finding f) => f.Instruction.Contains("call", StringComparison.Ordinal) ? "indirect call" : "indirect jump";

    public static string UserCode(Finding f) =>
        $"{Kind(f)} '{f.Instruction}' at 0x{f.Address:x} in function '{f.Function}' is not routed through a retpoline thunk " +
        "(build it with the retpoline flags, route hand-written branches through __x86_indirect_thunk_<reg> or mark them RETPOLINE_SAFE; " +
        $"waive with RetpolineAllow Include=\"{BaseName(f.Function)}\")";

    public static string Plt(Finding f) =>
        $"PLT entry '{f.Function}' at 0x{f.Address:x} ('{f.Instruction}') is an unprotected indirect jump reached from user code ({f.Detail}); " +
        "link with -fno-plt -Wl,-z,now, or with lld's -z retpolineplt " +
        $"(waive with RetpolineAllow Include=\"{f.Function}\")";

    public static string Startup(Finding f) =>
        $"toolchain startup code: {Kind(f)} '{f.Instruction}' at 0x{f.Address:x} in '{f.Function}' is not routed through a retpoline thunk " +
        "(comes from crt objects the compiler does not rebuild; reported because RetpolineStrict is true)";

    /// <summary>`dispatch+0x9` → `dispatch`; `puts@plt` stays.</summary>
    public static string BaseName(string function)
    {
        int plus = function.LastIndexOf("+0x", StringComparison.Ordinal);
        return plus > 0 ? function[..plus] : function;
    }
}
