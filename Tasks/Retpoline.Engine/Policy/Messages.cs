namespace Retpoline.Policy;

/// <summary>
/// The text of every finding diagnostic. Each error names its fix and its opt-out in one line (MSB8040's lesson),
/// so a reader of a CI log needs no other page to act on it. Written to a sink so the same text becomes a string
/// (MSBuild, SARIF) or UTF-8 bytes straight into the text report.
/// </summary>
public static class Messages
{
    public static string Kind(Finding f) => f.Class == FindingClass.SlsGap ? "unhardened " + (f.Instruction.StartsWith("ret", StringComparison.Ordinal) ? "return" : "jump")
        : f.Instruction.Contains("call", StringComparison.Ordinal) ? "indirect call" : "indirect jump";

    // Kept short: a large unmitigated library yields tens of thousands of these. The full Problem / Fix / Waive if
    // text lives in docs/diagnostics.md and the SARIF rule help.
    public static void UserCode<T>(T o, Finding f) where T : IMessageSink
    {
        o.Add(Kind(f)); o.Add(" '"); o.Add(f.Instruction); o.Add("' at 0x"); o.AddHex(f.Address);
        o.Add(" in function '"); o.Add(f.Function);
        if (f.Origin is { Archive: { } archive } origin)
        {
            // Code from a static archive: the project's flags never compiled it, so the fix is that archive's build.
            string name = Path.GetFileName(archive);
            o.Add("' (from "); o.Add(origin.ToString());
            o.Add(") is not routed through a retpoline thunk (rebuild "); o.Add(name);
            o.Add(" with the retpoline flags, it is not compiled by this build; or waive the archive: RetpolineAllow Include=\"");
            o.Add(Path.GetFileNameWithoutExtension(name)); o.Add("\" Archive=\""); o.Add(name); o.Add("\")");
            return;
        }
        o.Add("' is not routed through a retpoline thunk (rebuild with the retpoline flags; waive: RetpolineAllow \"");
        o.Add(BaseNameSpan(f.Function)); o.Add("\")");
    }

    public static void Plt<T>(T o, Finding f) where T : IMessageSink
    {
        o.Add("PLT entry '"); o.Add(f.Function); o.Add("' at 0x"); o.AddHex(f.Address); o.Add(" ('"); o.Add(f.Instruction);
        o.Add("') is reached from user code ("); o.Add(f.Detail);
        o.Add(f.DefinedHere
            ? "); the library calls its own exported function through its PLT so it can be interposed: compile with -fno-semantic-interposition (Clang; GCC: -fno-plt) or link with -Wl,-Bsymbolic-functions (waive: RetpolineAllow \""
            : "); link with -fno-plt -Wl,-z,now or lld's -z retpolineplt (waive: RetpolineAllow \"");
        o.Add(f.Function); o.Add("\")");
    }

    public static void Startup<T>(T o, Finding f) where T : IMessageSink
    {
        o.Add("toolchain startup "); o.Add(Kind(f)); o.Add(" '"); o.Add(f.Instruction); o.Add("' at 0x"); o.AddHex(f.Address);
        o.Add(" in '"); o.Add(f.Function);
        o.Add("' is not routed through a retpoline thunk (crt code the compiler does not rebuild; reported because RetpolineStrict is true)");
    }

    public static void SlsGap<T>(T o, Finding f) where T : IMessageSink
    {
        o.Add("'"); o.Add(f.Instruction); o.Add("' at 0x"); o.AddHex(f.Address); o.Add(" in function '"); o.Add(f.Function);
        o.Add("' is not followed by int3, so the CPU may speculate straight past it (build with -mharden-sls=all, or add int3 after it in hand-written assembly; waive: RetpolineHardenSls=false)");
    }

    /// <summary>The diagnostic code of a finding the policy rejects (its message: <see cref="For(Finding)"/>).</summary>
    public static string CodeOf(Finding f) => f.Class switch
    {
        FindingClass.UserCode => Codes.UserCode,
        FindingClass.Plt => Codes.Plt,
        FindingClass.SlsGap => Codes.SlsUnprotected,
        _ => Codes.ToolchainStartup,
    };

    public static void For<T>(T o, Finding f) where T : IMessageSink
    {
        switch (f.Class)
        {
            case FindingClass.UserCode: UserCode(o, f); break;
            case FindingClass.Plt: Plt(o, f); break;
            case FindingClass.SlsGap: SlsGap(o, f); break;
            default: Startup(o, f); break;
        }
    }

    public static string For(Finding f)
    {
        var s = new StringSink();
        For(s, f);
        return s.ToString();
    }

    /// <summary>`dispatch+0x9` → `dispatch`; `puts@plt` stays.</summary>
    public static string BaseName(string function)
    {
        int length = BaseNameLength(function);
        return length == function.Length ? function : function[..length];
    }

    static ReadOnlySpan<char> BaseNameSpan(string function) => function.AsSpan(0, BaseNameLength(function));

    static int BaseNameLength(string function)
    {
        int plus = function.LastIndexOf("+0x", StringComparison.Ordinal);
        return plus > 0 ? plus : function.Length;
    }
}
