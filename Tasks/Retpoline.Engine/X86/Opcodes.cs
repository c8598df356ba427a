namespace Retpoline.X86;

/// <summary>
/// Every x86 byte the thunk and call-site forms are built from, in one place: <see cref="ThunkBody"/>,
/// <see cref="CallSiteEncoding"/> and <see cref="Registers"/> compose them, and the native run-time routine's tables
/// (native/retpoline_runtime_tables.h) are generated from those encoders, so the bytes the routine compares and writes
/// are the bytes `patch` writes.
/// </summary>
public static class Opcodes
{
    public const byte Int3 = 0xcc, Ret = 0xc3;
    /// <summary>`call rel32` / `jmp rel32`: a direct branch to a thunk.</summary>
    public const byte CallRel32 = 0xe8, JmpRel32 = 0xe9;
    /// <summary>`3e`: notrack (IBT) on an indirect branch; `2e`: the cs prefix compilers put on thunk calls.</summary>
    public const byte NotrackPrefix = 0x3e, CsPrefix = 0x2e;
    /// <summary>REX.B selects r8–r15 in ModRM.rm (the `jmp *%reg` / `call *%reg` register).</summary>
    public const byte RexB = 0x41;
    /// <summary>REX.W, and REX.W+R for r8–r15 in ModRM.reg (the `mov %reg,(%rsp)` source).</summary>
    public const byte RexW = 0x48, RexWR = 0x4c;
    /// <summary>`ff /2` (call) and `ff /4` (jmp) with a register operand: ModRM d0+r / e0+r.</summary>
    public const byte IndirectGroup = 0xff, CallRegister = 0xd0, JmpRegister = 0xe0;

    /// <summary>`lfence`.</summary>
    public static ReadOnlySpan<byte> Lfence => [0x0f, 0xae, 0xe8];
    /// <summary>`2: pause; lfence; jmp 2b` — the speculation trap both compilers put after the retpoline's `call 1f`.</summary>
    public static ReadOnlySpan<byte> SpeculationTrap => [0xf3, 0x90, 0x0f, 0xae, 0xe8, 0xeb, 0xf9];
    /// <summary>`lea 8(%rsp),%rsp`: the memory thunk's and GCC's return thunk's tail before `ret`.</summary>
    public static ReadOnlySpan<byte> LeaRspPlus8 => [0x48, 0x8d, 0x64, 0x24, 0x08];
    /// <summary>Clang's padding before the 16-byte aligned `mov %reg,(%rsp)`: `nopl 0(%rax)`.</summary>
    public static ReadOnlySpan<byte> ClangTrapPadding => [0x0f, 0x1f, 0x40, 0x00];

    /// <summary>The recommended multi-byte NOPs (Intel SDM, "NOP"), by length.</summary>
    public static readonly byte[][] Nops =
    [
        [],
        [0x90],
        [0x66, 0x90],
        [0x0f, 0x1f, 0x00],
        [0x0f, 0x1f, 0x40, 0x00],
        [0x0f, 0x1f, 0x44, 0x00, 0x00],
    ];
}
