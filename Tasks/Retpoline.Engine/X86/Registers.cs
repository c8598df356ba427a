namespace Retpoline.X86;

/// <summary>
/// The general-purpose registers a compiler names thunks for, with their encoding numbers and the two register forms
/// every thunk and call-site encoding is made of. rsp is absent on purpose: it cannot hold a branch target (the thunk
/// itself uses the stack), and neither GCC nor LLVM ever names a thunk for it.
/// </summary>
public static class Registers
{
    static readonly string[] ByNumber = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    /// <summary>
    /// The 15 thunk registers in GCC's order (i386.cc): rax rbx rcx rdx rsi rdi rbp r8 … r15. native/retpoline_thunks.S
    /// defines its thunks from this list (its `.irp` line is generated from it).
    /// </summary>
    public static readonly IReadOnlyList<string> ThunkRegisters =
        ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    public static int Number(string name) => Array.IndexOf(ByNumber, name);
    public static string Name(int number) => ByNumber[number];

    /// <summary>`mov %reg,(%rsp)`: REX.W (+R for r8–r15: the source is in ModRM.reg), 89, ModRM, SIB 24.</summary>
    public static byte[] MovToStackTop(int reg) => [reg >= 8 ? Opcodes.RexWR : Opcodes.RexW, 0x89, (byte)(0x04 | (reg & 7) << 3), 0x24];

    /// <summary>`jmp *%reg`: [41] ff e0+r.</summary>
    public static byte[] JmpIndirect(int reg) => IndirectBranch(CallSiteKind.Jump, reg, notrack: false);

    /// <summary>`call *%reg` = [3e] [41] ff d0+r; `jmp *%reg` = [3e] [41] ff e0+r.</summary>
    public static byte[] IndirectBranch(CallSiteKind kind, int reg, bool notrack)
    {
        if (reg is < 0 or > 15 || reg == 4) throw new ArgumentOutOfRangeException(nameof(reg));
        var b = new List<byte>(4);
        if (notrack) b.Add(Opcodes.NotrackPrefix);
        if (reg >= 8) b.Add(Opcodes.RexB);
        b.Add(Opcodes.IndirectGroup);
        b.Add((byte)((kind == CallSiteKind.Call ? Opcodes.CallRegister : Opcodes.JmpRegister) | (reg & 7)));
        return [.. b];
    }
}
