using System.Buffers.Binary;
using System.Text;
using Retpoline.Elf;
using Retpoline.Patching;
using Retpoline.X86;

namespace Retpoline;

/// <summary>
/// Runs verify and a dry-run patch over a small ELF image built in memory, on a background thread. A build starts it
/// while its compilers run (the MSBuild node only waits for them then), so by the time the linked binary is patched
/// and verified the engine, Iced and ELFSharp are loaded and ready, and that step takes milliseconds instead of the
/// ~65 ms (ReadyToRun) or ~200 ms (JIT) a cold start costs. Nothing is written anywhere; a failure is swallowed (it
/// only ever costs the time it saves).
/// </summary>
public static class Warmup
{
    static int started;
    static Thread? thread;

    /// <summary>Starts the warm-up once per process; later calls do nothing.</summary>
    public static void Start()
    {
        if (Interlocked.Exchange(ref started, 1) != 0) return;
        thread = new Thread(Run) { IsBackground = true, Name = "retpoline warm-up", Priority = ThreadPriority.BelowNormal };
        thread.Start();
    }

    /// <summary>Waits for a started warm-up (tests; a build never waits).</summary>
    public static void Wait() => thread?.Join();

    /// <summary>What stopped the warm-up early, if anything (a build ignores it; tests assert there is none).</summary>
    public static Exception? Failure { get; private set; }
    public static int RoundsDone { get; private set; }

    /// <summary>
    /// Two rounds: the first loads the types, binds the ReadyToRun code (tasks/net10.0) and JIT-compiles what it
    /// cannot hold (generic instantiations over our types); the second reaches what the first initialised lazily.
    /// More rounds only buy tier-1 re-compilation, which cost ~0.5 s of CPU taken from the compilers for no gain
    /// after link (measured with bench/build-vs-make.sh and the build process's own CPU time).
    /// </summary>
    const int Rounds = 2;

    static void Run()
    {
        try
        {
            var image = SampleImage();
            for (int i = 0; i < Rounds; i++)
            {
                var report = Verifier.Verify(ElfFile.Parse("(warm-up)", image), new VerifyOptions());
                _ = report.Diagnostics;
                _ = Reporting.TextReport.Summary(report);
                Patcher.Patch("(warm-up)", ElfFile.Parse("(warm-up)", image), Vendor.Generic);
                RoundsDone = i + 1;
            }
        }
        catch (Exception e) { Failure = e; /* a warm-up that fails has only wasted its own time */ }
    }

    const ulong TextAddress = 0x1000, PltAddress = 0x8000;
    /// <summary>Copies of the call pattern in `dispatch`: enough instructions for the decoder to reach optimised code.</summary>
    const int Blocks = 32;

    /// <summary>
    /// An ET_DYN image with a .text holding a Generic `__x86_indirect_thunk_rax` (our own encoder's bytes), a return
    /// thunk, and `dispatch`: direct calls into the thunk and into a PLT entry, indirect calls and jumps through
    /// memory; and a .plt with the lazy header and one entry. Every path of the sweep, the thunk checks, the
    /// classifier (PLT callers included) and the patch planner.
    /// </summary>
    public static byte[] SampleImage()
    {
        var thunk = ThunkBody.Encode(Vendor.Generic, 0, ThunkBody.GccGenericLength, notrack: false);
        var text = new List<byte>(thunk) { ThunkBody.Ret, ThunkBody.Int3 };
        int returnThunk = thunk.Length, function = text.Count;
        void Rel32(int from) => text.AddRange(BitConverter.GetBytes(from));
        for (int i = 0; i < Blocks; i++)
        {
            text.AddRange([0xff, 0xd0]);                                                        // call rax
            text.Add(0xe8); Rel32(-(text.Count + 4));                                           // call __x86_indirect_thunk_rax
            text.Add(0xe8); Rel32((int)(PltAddress + 16 - TextAddress) - (text.Count + 4));     // call the PLT entry
            text.AddRange([0xff, 0x25, 0, 0, 0, 0]);                                           // jmp qword ptr [rip]
        }
        text.Add(ThunkBody.Ret);
        byte[] plt =
        [
            0xff, 0x35, 0, 0, 0, 0, 0xff, 0x25, 0, 0, 0, 0, 0x0f, 0x1f, 0x40, 0,   // push/jmp through the GOT: lazy header
            0xff, 0x25, 0, 0, 0, 0, 0x68, 0, 0, 0, 0, 0xe9, 0xe0, 0xff, 0xff, 0xff, // jmp *GOT; push 0; jmp header
        ];

        var strtab = new List<byte> { 0 };
        int Name(string s) { int at = strtab.Count; strtab.AddRange(Encoding.ASCII.GetBytes(s)); strtab.Add(0); return at; }
        var symbols = new (int name, ulong value, ulong size, byte other)[]
        {
            (Name("__x86_indirect_thunk_rax"), TextAddress, (ulong)thunk.Length, 2 /* hidden */),
            (Name("__x86_return_thunk"), TextAddress + (ulong)returnThunk, 2, 2),
            (Name("dispatch"), TextAddress + (ulong)function, (ulong)(text.Count - function), 0),
        };
        var shstrtab = new List<byte> { 0 };
        int SectionName(string s) { int at = shstrtab.Count; shstrtab.AddRange(Encoding.ASCII.GetBytes(s)); shstrtab.Add(0); return at; }
        int textName = SectionName(".text"), pltName = SectionName(".plt"), symtabName = SectionName(".symtab"),
            strtabName = SectionName(".strtab"), shstrtabName = SectionName(".shstrtab");

        static int Align8(int n) => (n + 7) & ~7;
        const int SectionCount = 6;
        int textOff = 64, pltOff = Align8(textOff + text.Count), symOff = Align8(pltOff + plt.Length), symSize = 24 * (symbols.Length + 1);
        int strOff = symOff + symSize, shstrOff = strOff + strtab.Count, shOff = Align8(shstrOff + shstrtab.Count);
        var b = new byte[shOff + SectionCount * 64];
        var d = b.AsSpan();
        d[0] = 0x7f; d[1] = (byte)'E'; d[2] = (byte)'L'; d[3] = (byte)'F';
        d[4] = 2; d[5] = 1; d[6] = 1;                                            // ELFCLASS64, little-endian, version 1
        BinaryPrimitives.WriteUInt16LittleEndian(d[16..], 3);                    // ET_DYN
        BinaryPrimitives.WriteUInt16LittleEndian(d[18..], 62);                   // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(d[40..], (ulong)shOff);
        BinaryPrimitives.WriteUInt16LittleEndian(d[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(d[58..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(d[60..], SectionCount);
        BinaryPrimitives.WriteUInt16LittleEndian(d[62..], SectionCount - 1);
        text.ToArray().CopyTo(d[textOff..]);
        plt.CopyTo(d[pltOff..]);
        for (int i = 0; i < symbols.Length; i++)
        {
            var s = d[(symOff + 24 * (i + 1))..];
            BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)symbols[i].name);
            s[4] = (1 << 4) | 2;                                                 // STB_GLOBAL, STT_FUNC
            s[5] = symbols[i].other;
            BinaryPrimitives.WriteUInt16LittleEndian(s[6..], 1);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], symbols[i].value);
            BinaryPrimitives.WriteUInt64LittleEndian(s[16..], symbols[i].size);
        }
        strtab.ToArray().CopyTo(d[strOff..]);
        shstrtab.ToArray().CopyTo(d[shstrOff..]);
        void Section(int index, int name, uint type, ulong flags, ulong address, int offset, int size, uint link, uint info, ulong align, ulong entsize)
        {
            var h = b.AsSpan(shOff + 64 * index);
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)name);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], type);
            BinaryPrimitives.WriteUInt64LittleEndian(h[8..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(h[16..], address);
            BinaryPrimitives.WriteUInt64LittleEndian(h[24..], (ulong)offset);
            BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)size);
            BinaryPrimitives.WriteUInt32LittleEndian(h[40..], link);
            BinaryPrimitives.WriteUInt32LittleEndian(h[44..], info);
            BinaryPrimitives.WriteUInt64LittleEndian(h[48..], align);
            BinaryPrimitives.WriteUInt64LittleEndian(h[56..], entsize);
        }
        const ulong Code = ElfSection.SHF_ALLOC | ElfSection.SHF_EXECINSTR;
        Section(1, textName, ElfSection.SHT_PROGBITS, Code, TextAddress, textOff, text.Count, 0, 0, 16, 0);
        Section(2, pltName, ElfSection.SHT_PROGBITS, Code, PltAddress, pltOff, plt.Length, 0, 0, 16, 16);
        Section(3, symtabName, ElfSection.SHT_SYMTAB, 0, 0, symOff, symSize, 4, 1, 8, 24);
        Section(4, strtabName, ElfSection.SHT_STRTAB, 0, 0, strOff, strtab.Count, 0, 0, 1, 0);
        Section(5, shstrtabName, ElfSection.SHT_STRTAB, 0, 0, shstrOff, shstrtab.Count, 0, 0, 1, 0);
        return b;
    }
}
