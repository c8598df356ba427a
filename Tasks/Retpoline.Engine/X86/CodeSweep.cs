using Iced.Intel;
using Retpoline.Elf;

namespace Retpoline.X86;

/// <summary>An indirect call/jmp found by the sweep, with the section it lives in (ET_REL sections all start at 0).</summary>
public readonly record struct SweptBranch(int Section, Instruction Instruction);

/// <summary>A direct call/jmp/jcc whose target the caller asked about (a PLT entry or a thunk).</summary>
public readonly record struct DirectReference(int Section, ulong From, ulong To);

/// <summary>
/// Which direct branch targets the sweep records: every branch into a thunk (each one counts), and branches into
/// the PLT (once per calling symbol region and target: the classifier only asks who calls an entry).
/// </summary>
public sealed class TargetFilter((ulong start, ulong end)[] pltRanges, IReadOnlySet<ulong> thunkStarts)
{
    readonly ulong low = pltRanges.Length == 0 ? ulong.MaxValue : pltRanges.Min(r => r.start);
    readonly ulong high = pltRanges.Length == 0 ? 0 : pltRanges.Max(r => r.end);
    readonly ulong thunkLow = thunkStarts.Count == 0 ? ulong.MaxValue : thunkStarts.Min();
    readonly ulong thunkHigh = thunkStarts.Count == 0 ? 0 : thunkStarts.Max();

    public static readonly TargetFilter Nothing = new([], new HashSet<ulong>());

    public bool IsPlt(ulong target)
    {
        if (target < low || target >= high) return false;
        foreach (var (start, end) in pltRanges) if (target >= start && target < end) return true;
        return false;
    }

    public bool IsThunk(ulong target) => target >= thunkLow && target <= thunkHigh && thunkStarts.Contains(target);
}

/// <summary>What one sweep over every executable section found.</summary>
public sealed class SweepResult(List<SweptBranch> indirect, List<DirectReference> references, List<SweptBranch> slsGaps)
{
    public IReadOnlyList<SweptBranch> Indirect { get; } = indirect;
    public IReadOnlyList<DirectReference> References { get; } = references;
    /// <summary>With <c>checkSls</c>: every `ret` and indirect `jmp` not followed by `int3`.</summary>
    public IReadOnlyList<SweptBranch> SlsGaps { get; } = slsGaps;
}

/// <summary>
/// Linear sweep of every executable section with one reused Iced decoder per work chunk and a struct
/// <see cref="Instruction"/> per step: nothing is allocated per instruction and no section bytes are copied.
/// Decoding restarts at every symbol so data in code cannot desynchronise what follows, and runs of zero bytes
/// are skipped exactly as objdump skips them, so our count of indirect branches equals `objdump -d`'s.
/// Direct branch targets are collected in the same pass (only those the caller cares about), because classifying
/// a PLT entry needs to know who calls it and a second pass would double the cost.
/// </summary>
public static class CodeSweep
{
    /// <summary>Work is cut into chunks of about this many bytes (at symbol boundaries) for the two cores.</summary>
    const int ChunkBytes = 256 * 1024;
    // objdump's DEFAULT_SKIP_ZEROES and DEFAULT_SKIP_ZEROES_AT_END (binutils objdump.c).
    const int SkipZeroes = 8, SkipZeroesAtEnd = 3;

    /// <param name="restarts">Per section: sorted, distinct symbol addresses inside it.</param>
    public static SweepResult Run(ElfFile elf, IReadOnlyList<ElfSection> sections, Func<ElfSection, ulong[]> restarts,
        TargetFilter targets, bool parallel, bool checkSls = false)
    {
        var chunks = new List<(ElfSection section, ulong[] bounds)>();
        foreach (var s in sections) Cut(s, restarts(s), chunks);

        var indirect = new List<SweptBranch>[chunks.Count];
        var refs = new List<DirectReference>[chunks.Count];
        var sls = new List<SweptBranch>[chunks.Count];
        void Work(int i)
        {
            var (s, bounds) = chunks[i];
            (indirect[i], refs[i], sls[i]) = SweepChunk(elf.Data, s, bounds, targets, checkSls);
        }
        if (parallel && chunks.Count > 1)
            Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, Work);
        else
            for (int i = 0; i < chunks.Count; i++) Work(i);

        // Merged in chunk order: the result does not depend on scheduling.
        var allIndirect = new List<SweptBranch>(indirect.Sum(l => l.Count));
        var allRefs = new List<DirectReference>(refs.Sum(l => l.Count));
        var allSls = new List<SweptBranch>();
        for (int i = 0; i < chunks.Count; i++) { allIndirect.AddRange(indirect[i]); allRefs.AddRange(refs[i]); allSls.AddRange(sls[i]); }
        return new SweepResult(allIndirect, allRefs, allSls);
    }

    /// <summary>Splits a section into region boundaries [b0, b1, …, bn] grouped into chunks of roughly ChunkBytes.</summary>
    static void Cut(ElfSection s, ulong[] symbolStarts, List<(ElfSection, ulong[])> chunks)
    {
        if (s.Size <= 0) return;
        var bounds = new List<ulong> { s.Address };
        foreach (var a in symbolStarts)
            if (a > s.Address && a < s.EndAddress && a != bounds[^1]) bounds.Add(a);
        bounds.Add(s.EndAddress);

        int from = 0;
        for (int i = 1; i < bounds.Count; i++)
        {
            if (bounds[i] - bounds[from] < ChunkBytes && i != bounds.Count - 1) continue;
            chunks.Add((s, bounds.GetRange(from, i - from + 1).ToArray()));
            from = i;
        }
    }

    static (List<SweptBranch>, List<DirectReference>, List<SweptBranch>) SweepChunk(byte[] data, ElfSection s, ulong[] bounds, TargetFilter targets, bool checkSls)
    {
        var indirect = new List<SweptBranch>();
        var sls = new List<SweptBranch>();
        long sectionEnd = s.FileOffset + s.Size;
        var refs = new List<DirectReference>();
        var reader = new ByteArrayCodeReader(data, (int)s.FileOffset, (int)s.Size);
        var decoder = Decoder.Create(64, reader, s.Address, DecoderOptions.None);
        long baseOffset = s.FileOffset;
        var pltSeen = new HashSet<ulong>();

        for (int r = 0; r + 1 < bounds.Length; r++)
        {
            ulong ip = bounds[r], stop = bounds[r + 1];
            pltSeen.Clear();
            reader.Position = (int)(ip - s.Address);
            decoder.IP = ip;
            while (ip < stop)
            {
                long off = baseOffset + (long)(ip - s.Address);
                if (data[off] == 0)
                {
                    long stopOff = baseOffset + (long)(stop - s.Address);
                    long z = off;
                    while (z < stopOff && data[z] == 0) z++;
                    long run = z - off;
                    bool atEnd = z == stopOff;
                    if (run >= SkipZeroes || (atEnd && run < SkipZeroesAtEnd))
                    {
                        // Not at the end: only multiples of 4, so an instruction starting with 00 is not swallowed.
                        long skip = atEnd ? run : run & ~3L;
                        ip += (ulong)skip;
                        reader.Position = (int)(ip - s.Address);
                        decoder.IP = ip;
                        continue;
                    }
                }
                decoder.Decode(out var instr);
                if (instr.Length == 0) break; // end of section bytes
                if (instr.Code == Code.INVALID)
                {
                    // Resynchronise one byte on, as objdump does after "(bad)": no byte goes unexamined, and the
                    // counts stay comparable with objdump's (Iced may report a longer invalid length).
                    ip++;
                    reader.Position = (int)(ip - s.Address);
                    decoder.IP = ip;
                    continue;
                }
                ip = decoder.IP;
                switch (instr.FlowControl)
                {
                    case FlowControl.IndirectBranch:
                    case FlowControl.IndirectCall:
                        indirect.Add(new SweptBranch(s.Index, instr));
                        if (checkSls && instr.FlowControl == FlowControl.IndirectBranch && !Int3Follows(data, off + instr.Length, sectionEnd))
                            sls.Add(new SweptBranch(s.Index, instr));
                        break;
                    case FlowControl.Return:
                        if (checkSls && !Int3Follows(data, off + instr.Length, sectionEnd))
                            sls.Add(new SweptBranch(s.Index, instr));
                        break;
                    case FlowControl.Call:
                    case FlowControl.UnconditionalBranch:
                    case FlowControl.ConditionalBranch:
                        ulong target = instr.NearBranchTarget;
                        if (targets.IsThunk(target) || (targets.IsPlt(target) && pltSeen.Add(target)))
                            refs.Add(new DirectReference(s.Index, instr.IP, target));
                        break;
                }
            }
        }
        return (indirect, refs, sls);
    }

    /// <summary>-mharden-sls=all puts an int3 after every ret and indirect jmp, so speculation stops there.</summary>
    static bool Int3Follows(byte[] data, long next, long sectionEnd) => next < sectionEnd && data[next] == 0xcc;
}
