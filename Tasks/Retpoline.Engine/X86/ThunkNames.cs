namespace Retpoline.X86;

public enum ThunkKind
{
    /// <summary>`__x86_indirect_thunk_<reg>` (GCC thunk-extern, Clang -mretpoline-external-thunk).</summary>
    Register,
    /// <summary>`__x86_indirect_thunk_nt_<reg>`: GCC's target for `notrack` branches under -fcf-protection.</summary>
    RegisterNoTrack,
    /// <summary>`__llvm_retpoline_<reg>`: Clang's own thunk under plain -mretpoline.</summary>
    LlvmRetpoline,
    /// <summary>`__x86_indirect_thunk`: GCC without -mindirect-branch-register (target pushed on the stack).</summary>
    Memory,
    /// <summary>`__x86_return_thunk`.</summary>
    Return,
    /// <summary>`__llvm_lvi_thunk_r11` = lfence; jmp *%r11.</summary>
    LlvmLvi,
}

/// <summary>A thunk symbol name taken apart: which kind, and for which register (-1 for none).</summary>
public readonly record struct ThunkName(ThunkKind Kind, int Register)
{
    const string Indirect = "__x86_indirect_thunk", NoTrack = "__x86_indirect_thunk_nt_", Llvm = "__llvm_retpoline_";

    public bool HasRegister => Register >= 0;
    public string RegisterName => Register >= 0 ? Registers.Name(Register) : "";
    /// <summary>Register thunks are the ones `patch` rewrites.</summary>
    public bool IsPatchable => Kind is ThunkKind.Register or ThunkKind.RegisterNoTrack or ThunkKind.LlvmRetpoline;

    public static bool TryParse(string symbol, out ThunkName name)
    {
        name = default;
        if (symbol.Length < 16 || symbol[0] != '_' || symbol[1] != '_') return false; // fast reject for the common case
        if (symbol == "__x86_return_thunk") { name = new(ThunkKind.Return, -1); return true; }
        if (symbol == Indirect) { name = new(ThunkKind.Memory, -1); return true; }
        if (symbol == "__llvm_lvi_thunk_r11") { name = new(ThunkKind.LlvmLvi, 11); return true; }
        if (symbol.StartsWith(NoTrack, StringComparison.Ordinal)) return Reg(symbol[NoTrack.Length..], ThunkKind.RegisterNoTrack, out name);
        if (symbol.StartsWith(Indirect + "_", StringComparison.Ordinal)) return Reg(symbol[(Indirect.Length + 1)..], ThunkKind.Register, out name);
        // 32-bit __llvm_retpoline_eax etc. cannot occur in an x86-64 ELF; only the 64-bit form is accepted.
        if (symbol.StartsWith(Llvm, StringComparison.Ordinal)) return Reg(symbol[Llvm.Length..], ThunkKind.LlvmRetpoline, out name);
        return false;
    }

    static bool Reg(string suffix, ThunkKind kind, out ThunkName name)
    {
        int r = Registers.Number(suffix);
        name = r >= 0 && r != 4 ? new ThunkName(kind, r) : default;
        return r >= 0 && r != 4;
    }
}
