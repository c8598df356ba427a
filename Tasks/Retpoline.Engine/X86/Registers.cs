namespace Retpoline.X86;

/// <summary>
/// The general-purpose registers a compiler names thunks for, with their encoding numbers. rsp is absent on purpose:
/// it cannot hold a branch target (the thunk itself uses the stack), and neither GCC nor LLVM ever names a thunk for it.
/// </summary>
public static class Registers
{
    static readonly string[] ByNumber = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    /// <summary>The 15 thunk registers in GCC's order (i386.cc): rax rbx rcx rdx rsi rdi rbp r8 … r15.</summary>
    public static readonly IReadOnlyList<string> ThunkRegisters =
        ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    public static int Number(string name) => Array.IndexOf(ByNumber, name);
    public static string Name(int number) => ByNumber[number];

    /// <summary>`mov %reg,(%rsp)`: REX.W (+B for r8–r15 as the source is in ModRM.reg → REX.R), 89, ModRM, SIB 24.</summary>
    public static byte[] MovToStackTop(int reg) => [(byte)(reg >= 8 ? 0x4c : 0x48), 0x89, (byte)(0x04 | (reg & 7) << 3), 0x24];

    /// <summary>`jmp *%reg`: [41] ff e0+r.</summary>
    public static byte[] JmpIndirect(int reg) => reg >= 8 ? [0x41, 0xff, (byte)(0xe0 | reg & 7)] : [0xff, (byte)(0xe0 | reg & 7)];
}
