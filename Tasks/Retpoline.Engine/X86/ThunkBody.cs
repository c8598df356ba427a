namespace Retpoline.X86;

/// <summary>
/// Recognises a thunk body by its bytes (DESIGN.md §3), never by st_size: GCC's COMDAT thunks have size 0.
/// A recognised body says which form it is, which register it branches through, and how many bytes it spans.
/// </summary>
public readonly record struct RecognisedBody(ThunkForm Form, int Register, int Length, GenericLayout Layout, bool NoTrack);

/// <summary>Where the generic body's `mov %reg,(%rsp)` sits: right after the loop (GCC) or 16-byte aligned (Clang).</summary>
public enum GenericLayout { None, Gcc, Clang }

public static class ThunkBody
{
    public const byte Int3 = Opcodes.Int3, Ret = Opcodes.Ret, NotrackPrefix = Opcodes.NotrackPrefix;
    /// <summary>GCC's generic layout is 17 bytes, Clang's 21 (the mov target padded to 16).</summary>
    public const int GccGenericLength = 17, ClangGenericLength = 21;

    /// <summary>Recognise the bytes at a thunk's entry. Returns false for anything unknown.</summary>
    public static bool TryRecognise(ReadOnlySpan<byte> code, out RecognisedBody body)
    {
        body = default;
        if (code.Length >= 12 && code[0] == Opcodes.CallRel32 && code.Slice(5, 7).SequenceEqual(Opcodes.SpeculationTrap))
        {
            int rel = BitConverter.ToInt32(code.Slice(1, 4));
            int target = 5 + rel;
            if (target < 12 || target > 12 + 15) return false; // the mov target follows the trap, at most aligned to 16
            for (int i = 12; i < target; i++)
                if (!IsPadding(code, i, target)) return false;
            var layout = target == 12 ? GenericLayout.Gcc : GenericLayout.Clang;
            var tail = code[target..];
            if (tail.Length >= 5 && (tail[0] is Opcodes.RexW or Opcodes.RexWR) && tail[1] == 0x89 && (tail[2] & 0xc7) == 0x04 && tail[3] == 0x24 && tail[4] == Ret)
            {
                int reg = (tail[2] >> 3 & 7) | (tail[0] == Opcodes.RexWR ? 8 : 0);
                body = new(ThunkForm.Generic, reg, target + 5, layout, false);
                return true;
            }
            if (tail.Length >= 6 && tail[..5].SequenceEqual(Opcodes.LeaRspPlus8) && tail[5] == Ret)
            {
                body = new(ThunkForm.GenericReturn, -1, target + 6, layout, false);
                return true;
            }
            return false;
        }
        if (code.Length >= 2 && code[0] == Ret && code[1] == Int3) { body = new(ThunkForm.Return, -1, 2, GenericLayout.None, false); return true; }
        if (code.Length >= 3 && code[..3].SequenceEqual(Opcodes.Lfence) && TryJmp(code[3..], out int r, out int n, out bool nt))
        {
            body = new(ThunkForm.Amd, r, 3 + n, GenericLayout.None, nt);
            return true;
        }
        if (TryJmp(code, out r, out n, out nt)) { body = new(ThunkForm.None, r, n, GenericLayout.None, nt); return true; }
        return false;
    }

    /// <summary>`[3e] [41] ff e0+r` — a register jump, optionally notrack.</summary>
    static bool TryJmp(ReadOnlySpan<byte> c, out int reg, out int length, out bool notrack)
    {
        reg = -1; length = 0; notrack = false;
        int i = 0;
        if (c.Length > i && c[i] == NotrackPrefix) { notrack = true; i++; }
        int high = 0;
        if (c.Length > i && c[i] == Opcodes.RexB) { high = 8; i++; }
        if (c.Length < i + 2 || c[i] != Opcodes.IndirectGroup || (c[i + 1] & 0xf8) != Opcodes.JmpRegister) return false;
        reg = (c[i + 1] & 7) | high;
        length = i + 2;
        return true;
    }

    /// <summary>Alignment padding between the trap and the mov: int3 or any of the NOP forms assemblers emit.</summary>
    static bool IsPadding(ReadOnlySpan<byte> code, int i, int end)
    {
        byte b = code[i];
        return b is 0x90 or Int3 or 0x66 or 0x0f or 0x1f or 0x00 or 0x40 or 0x44 or 0x80 or 0x84 or 0x2e;
    }

    /// <summary>
    /// The bytes `patch` writes for a vendor into a body of <paramref name="length"/> bytes (rest filled with int3,
    /// which also stops straight-line speculation past the jump). Generic uses Clang's layout only when the body is
    /// exactly Clang's length, so a Clang thunk round-trips to its original bytes; everything else gets GCC's.
    /// </summary>
    public static byte[] Encode(Vendor vendor, int reg, int length, bool notrack)
    {
        var body = new byte[length];
        Array.Fill(body, Int3);
        var jmp = Registers.IndirectBranch(CallSiteKind.Jump, reg, notrack);
        byte[] form = vendor switch
        {
            Vendor.None => jmp,
            Vendor.Amd => [.. Opcodes.Lfence, .. jmp],
            _ => length == ClangGenericLength ? Generic(reg, 0x0b, Opcodes.ClangTrapPadding) : Generic(reg, 0x07, []),
        };
        if (form.Length > length) throw new ArgumentException($"a {vendor} body needs {form.Length} bytes, the thunk has {length}");
        form.CopyTo(body, 0);
        return body;
    }

    static byte[] Generic(int reg, byte rel, ReadOnlySpan<byte> pad) => [Opcodes.CallRel32, rel, 0, 0, 0, .. Opcodes.SpeculationTrap, .. pad, .. Registers.MovToStackTop(reg), Ret];

    /// <summary>How many bytes a vendor form needs (for the too-small check before any write).</summary>
    public static int Needed(Vendor vendor, int reg, bool notrack) => vendor switch
    {
        Vendor.None => Registers.IndirectBranch(CallSiteKind.Jump, reg, notrack).Length,
        Vendor.Amd => Opcodes.Lfence.Length + Registers.IndirectBranch(CallSiteKind.Jump, reg, notrack).Length,
        _ => GccGenericLength,
    };
}
