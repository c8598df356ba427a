using System.Buffers.Binary;

namespace Retpoline.X86;

/// <summary>
/// The exact bytes of a call site before and after `patch --call-sites inline`.
///
/// A site is what GCC and Clang emit for an indirect branch under thunk-extern: a direct branch to a register thunk,
/// `e8 rel32` / `e9 rel32` (5 bytes), or with GCC's -mindirect-branch-cs-prefix (r8–r15) / LLVM's cs prefix
/// `2e e8 rel32` / `2e e9 rel32` (6 bytes). Conditional jumps (`0f 8x rel32`) are never sites: they keep going
/// through the patched thunk.
///
/// Replacements fill the site exactly, so every instruction boundary around it is unchanged:
/// <code>
/// None, call:  NOP(n)  [3e] [41] ff d0+r            one multi-byte NOP first, so the call is last and pushes the
///                                                   same return address the original call pushed
/// None, jmp:   [3e] [41] ff e0+r  cc…               int3 after the jump against straight-line speculation
/// Amd,  call:  NOP(n)  0f ae e8  [3e] [41] ff d0+r  lfence; call *%reg — only where it fits
/// Amd,  jmp:   0f ae e8  [3e] [41] ff e0+r  cc…     lfence; jmp *%reg — only where it fits
/// </code>
/// `3e` (notrack) for sites of the `__x86_indirect_thunk_nt_&lt;reg&gt;` thunks, which GCC calls for notrack
/// branches under -fcf-protection; `41` (REX.B) for r8–r15. Under Amd a 5-byte site fits rax–rdi (5 bytes) but not
/// r8–r15 (6), and no notrack form fits 5 bytes: those sites keep calling the thunk, which is patched to the same
/// `lfence; jmp *%reg`.
/// </summary>
public static class CallSiteEncoding
{
    public const byte CallRel32 = Opcodes.CallRel32, JmpRel32 = Opcodes.JmpRel32, CsPrefix = Opcodes.CsPrefix, Int3 = Opcodes.Int3;
    static ReadOnlySpan<byte> Lfence => Opcodes.Lfence;
    static byte[][] Nops => Opcodes.Nops;

    /// <summary>
    /// Decodes a direct `call`/`jmp rel32`, optionally cs-prefixed, at <paramref name="address"/>.
    /// False for anything else (conditional jumps, short jumps, other prefixes).
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> code, ulong address, out CallSiteKind kind, out int length, out ulong target)
    {
        kind = default; length = 0; target = 0;
        int i = code.Length > 0 && code[0] == CsPrefix ? 1 : 0;
        if (code.Length < i + 5 || code[i] is not (CallRel32 or JmpRel32)) return false;
        kind = code[i] == CallRel32 ? CallSiteKind.Call : CallSiteKind.Jump;
        length = i + 5;
        int rel = BinaryPrimitives.ReadInt32LittleEndian(code.Slice(i + 1, 4));
        target = unchecked(address + (ulong)length + (ulong)(long)rel);
        return true;
    }

    /// <summary>`call *%reg` = [3e] [41] ff d0+r; `jmp *%reg` = [3e] [41] ff e0+r.</summary>
    public static byte[] IndirectBranch(CallSiteKind kind, int reg, bool notrack) => Registers.IndirectBranch(kind, reg, notrack);

    /// <summary>
    /// The bytes written over a site of <paramref name="length"/> bytes for <paramref name="vendor"/>, or null when
    /// the vendor's form does not fit (the site then keeps calling the thunk). Generic never inlines: its sites are
    /// the original thunk calls.
    /// </summary>
    public static byte[]? Encode(Vendor vendor, CallSiteKind kind, int reg, bool notrack, int length)
    {
        if (vendor == Vendor.Generic) return null;
        byte[] branch = IndirectBranch(kind, reg, notrack);
        byte[] form = vendor == Vendor.Amd ? [.. Lfence, .. branch] : branch;
        int spare = length - form.Length;
        if (spare < 0 || spare >= Nops.Length) return null;
        if (kind == CallSiteKind.Call) return [.. Nops[spare], .. form];
        var bytes = new byte[length];
        Array.Fill(bytes, Int3);
        form.CopyTo(bytes, 0);
        return bytes;
    }

    /// <summary>Offset of the indirect `call`/`jmp` inside <see cref="Encode"/>'s bytes (what the sweep reports).</summary>
    public static int BranchOffset(Vendor vendor, CallSiteKind kind, int reg, bool notrack, int length)
        => kind == CallSiteKind.Call ? length - IndirectBranch(kind, reg, notrack).Length : vendor == Vendor.Amd ? Lfence.Length : 0;

    /// <summary>`call *%rax`, `notrack jmp *%r11`, `lfence; call *%r8` — for messages and reports.</summary>
    public static string Describe(Vendor vendor, CallSiteKind kind, int reg, bool notrack)
        => (vendor == Vendor.Amd ? "lfence; " : "") + (notrack ? "notrack " : "") + (kind == CallSiteKind.Call ? "call" : "jmp") + " *%" + Registers.Name(reg);

    public static string Hex(ReadOnlySpan<byte> bytes)
    {
        var parts = new string[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) parts[i] = bytes[i].ToString("x2");
        return string.Join(' ', parts);
    }
}
