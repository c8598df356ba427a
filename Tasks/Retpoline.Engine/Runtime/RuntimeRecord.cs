using System.Buffers.Binary;
using System.Text;
using Retpoline.Elf;
using Retpoline.Patching;

namespace Retpoline.Runtime;

/// <summary>
/// `retpoline_runtime_record`, the structure native/retpoline_runtime.c keeps in every module built with
/// RetpolineVendor=Runtime: what its start-up routine chose and why. Its presence in a file's symbol table is what
/// marks the file as Runtime; <see cref="ProcessStatus"/> reads it from a running process. The layout is fixed here and
/// in the C source (a test compares what a program prints of its own record with what this reads).
/// </summary>
public sealed record RuntimeRecord(
    /// <summary>0: not run, 1: ran, 2: nothing to run (built with minimum Generic).</summary>
    int State,
    Vendor Minimum,
    /// <summary>What the host rules chose; null when they were not needed.</summary>
    Vendor? Host,
    Vendor Chosen,
    uint Flags,
    int Error,
    int Thunks,
    int Patched,
    int Unchanged,
    int LeftAlone,
    /// <summary>minimum | environment | host | no-proc | write-refused, or "" before the routine ran.</summary>
    string DecidedBy,
    /// <summary>The deciding <see cref="HostRule.Reason"/>, "" when the rules were not evaluated.</summary>
    string Reason,
    string Mechanism)
{
    public const string Symbol = "retpoline_runtime_record";
    public const int Size = 120;
    static ReadOnlySpan<byte> Magic => "RPLRUN1\0"u8;

    public const uint SecureFlag = 0x1, EnvironmentGenericFlag = 0x2, EnvironmentIgnoredFlag = 0x4, RolledBackFlag = 0x8, FixtureRootFlag = 0x100;
    const byte NotEvaluated = 0xff;

    /// <summary>True when the file links the run-time routine (it defines the record).</summary>
    public static bool IsLinked(ElfFile elf) => elf.Symbols.Any(s => s.IsDefined && s.Name == Symbol);

    /// <summary>The record from its bytes; null when they are not one (wrong magic or size).</summary>
    public static RuntimeRecord? Parse(ReadOnlySpan<byte> b)
    {
        if (b.Length < Size || !b[..8].SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(b[8..]) < Size) return null;
        static Vendor V(byte x) => x <= (byte)Vendor.None ? (Vendor)x : Vendor.Generic;
        static string Text(ReadOnlySpan<byte> s) { int n = s.IndexOf((byte)0); return Encoding.ASCII.GetString(n < 0 ? s : s[..n]); }
        static int U16(ReadOnlySpan<byte> s) => BinaryPrimitives.ReadUInt16LittleEndian(s);
        return new RuntimeRecord(b[12], V(b[13]), b[14] == NotEvaluated ? null : V(b[14]), V(b[15]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[16..]), BinaryPrimitives.ReadInt32LittleEndian(b[20..]),
            U16(b[24..]), U16(b[26..]), U16(b[28..]), U16(b[30..]), Text(b.Slice(32, 16)), Text(b.Slice(48, 24)), Text(b.Slice(72, 48)));
    }

    /// <summary>Why the thunks have the form they have, in one sentence.</summary>
    public string Explain()
    {
        var why = new StringBuilder(State switch
        {
            0 => "the start-up routine has not run",
            2 => $"built with RetpolineRuntimeMinimum={Minimum}: nothing to decide, the thunks stay Generic",
            _ => DecidedBy switch
            {
                "host" => HostExplanation.Why(Reason, Mechanism, Addition),
                "minimum" => $"{HostExplanation.Minimum(Minimum)}; the host rules alone pick {Host}: {HostExplanation.Why(Reason, Mechanism, Addition)}",
                "environment" => "RETPOLINE_RUNTIME=generic in the environment keeps the full retpoline",
                "no-proc" => $"/proc/self is not there ({Errno(Error)}), so the thunks stay Generic",
                "write-refused" => $"the kernel refused the write through /proc/self/mem ({Errno(Error)}; a kernel built or booted to refuse it, a seccomp filter, a sandbox), so the thunks stay Generic" +
                    ((Flags & RolledBackFlag) != 0 ? " (the ones already written were written back)" : ""),
                _ => $"decided by '{DecidedBy}' (not one this version of the tool knows)",
            },
        });
        if ((Flags & SecureFlag) != 0) why.Append("; RETPOLINE_RUNTIME was ignored: the process is AT_SECURE (setuid/setcap)");
        if ((Flags & EnvironmentIgnoredFlag) != 0) why.Append("; RETPOLINE_RUNTIME had a value other than 'generic', which nothing honours");
        if (LeftAlone > 0) why.Append($"; {LeftAlone} thunk(s) held neither the Generic body nor the chosen form and were left alone");
        if ((Flags & FixtureRootFlag) != 0) why.Append("; a TEST build: the machine files were read from a fixture folder");
        return why.ToString();
    }

    string? Addition
    {
        get
        {
            int plus = Mechanism.IndexOf(HostRules.AdditionSeparator, StringComparison.Ordinal);
            return plus < 0 ? null : Mechanism[(plus + HostRules.AdditionSeparator.Length)..];
        }
    }

    static string Errno(int e) => e switch
    {
        1 => "EPERM", 2 => "ENOENT", 5 => "EIO", 13 => "EACCES", 14 => "EFAULT", 22 => "EINVAL", 30 => "EROFS", 38 => "ENOSYS",
        _ => $"errno {e}",
    };
}
