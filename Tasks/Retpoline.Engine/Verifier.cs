using Iced.Intel;
using Retpoline.Elf;
using Retpoline.Policy;
using Retpoline.X86;

namespace Retpoline;

/// <summary>Entry point: read one ELF file, sweep its code, check its thunks, classify what escaped.</summary>
public static class Verifier
{
    static readonly string[] PltSections = [".plt", ".plt.sec", ".plt.got", ".iplt"];
    /// <summary>The lazy-binding PLT header is the first 16 bytes of .plt (GNU ld and lld alike).</summary>
    const ulong PltHeaderSize = 16;

    /// <exception cref="RetpolineException">The file is unusable (RPL01xx).</exception>
    public static VerifyReport Verify(string path, VerifyOptions? options = null)
    {
        options ??= new VerifyOptions();
        Timing.Mark("start");
        var elf = ElfFile.Load(path);
        return Verify(elf, options);
    }

    public static VerifyReport Verify(ElfFile elf, VerifyOptions options) => Verify(elf, options, null, null);

    /// <summary>With the symbol index and thunks of <paramref name="elf"/> when the caller has them already (patch).</summary>
    internal static VerifyReport Verify(ElfFile elf, VerifyOptions options, SymbolIndex? symbolIndex, List<LocatedThunk>? located)
    {
        var symbols = symbolIndex ?? new SymbolIndex(elf);
        var thunks = located ?? ThunkScanner.Find(elf, symbols);
        Timing.Mark("symbols+thunks");
        bool linked = elf.Kind != ElfKind.Relocatable;

        var exec = elf.Sections.Where(s => s.IsExecutable).ToList();
        var plt = linked ? exec.Where(s => PltSections.Contains(s.Name)).ToList() : [];
        var targets = linked
            ? new TargetFilter(plt.Select(s => (s.Address, s.EndAddress)).ToArray(), thunks.Select(t => t.Address).ToHashSet())
            : TargetFilter.Nothing; // ET_REL branch targets are unrelocated placeholders
        var sweep = CodeSweep.Run(elf, exec, symbols.Starts, targets, options.Parallel, options.HardenSls);

        Timing.Mark("sweep");
        // Parsed on first use: a clean binary has no finding that needs a line, and the line table of a large -g
        // build costs more than its sweep.
        var lines = new Lazy<DwarfLines?>(() => linked ? SourceLines.Read(elf) : null);
        var pltIndexes = new HashSet<int>(plt.Select(s => s.Index));
        var thunkRanges = thunks.Where(t => t.Body is not null).Select(t => (t.Section.Index, start: t.Address, end: t.Address + (ulong)t.Extent)).ToArray();
        var annotated = Annotations.Read(elf).ToHashSet();
        // Issue 5: call sites `patch --call-sites inline` rewrote and recorded in .retpoline_sites (RPL0017/RPL0018 otherwise).
        var (patchedSites, siteDiagnostics) = Patching.CallSitePatcher.CheckRecorded(elf, symbols, thunks);
        var userBranches = new List<SweptBranch>();
        var pltJumps = new List<SweptBranch>();
        foreach (var b in sweep.Indirect)
        {
            ulong ip = b.Instruction.IP;
            if (InThunk(thunkRanges, b.Section, ip)) continue; // the inside of a recognised thunk is the mitigation itself
            (pltIndexes.Contains(b.Section) ? pltJumps : userBranches).Add(b);
        }
        var fileDiagnostics = new List<Diagnostic>();
        if (annotated.Count > 0)
        {
            var branchAt = sweep.Indirect.Select(b => (b.Section, b.Instruction.IP)).ToHashSet();
            foreach (var (section, address) in annotated.Where(a => !branchAt.Contains(a)).OrderBy(a => a.address))
            {
                var (name, offset, _) = symbols.Locate(section, address);
                var where = section >= 0 ? SymbolIndex.Format(name, offset) : "outside any code section";
                fileDiagnostics.Add(new Diagnostic(Codes.AnnotationMisplaced, Severity.Error,
                    $"RETPOLINE_SAFE annotation at 0x{address:x} ({where}) does not mark an indirect call or jump; put it immediately before the branch it vouches for",
                    address, where));
            }
        }

        // Naming, formatting and line lookup cost more than the sweep on an unmitigated library (every branch is a
        // finding), so they run on both cores too, each worker with its own formatter; the order is kept.
        Timing.Mark("annotations+split");
        var findings = new Finding[userBranches.Count];
        Parallel.For(0, (findings.Length + 4095) / 4096, ParallelOptionsFor(options), NewFormatter, (chunk, _, formatter) =>
        {
            for (int i = chunk * 4096, end = Math.Min(findings.Length, i + 4096); i < end; i++)
            {
                var b = userBranches[i];
                ulong ip = b.Instruction.IP;
                var (name, offset, _) = symbols.Locate(b.Section, ip);
                var cls = patchedSites.TryGetValue(ip, out var siteDetail) ? FindingClass.PatchedSite // issue 5
                    : annotated.Contains((b.Section, ip)) ? FindingClass.Annotated
                    : StartupFunctions.Contains(name) ? FindingClass.ToolchainStartup : FindingClass.UserCode;
                string? file = null; int? line = null;
                // crt code (ToolchainStartup) is not the user's source: no line to look up for it.
                if (cls != FindingClass.ToolchainStartup && lines.Value is { } table && table.TryLookup(ip, out var f, out var l)) { file = f; line = l; }
                findings[i] = new Finding(cls, SymbolIndex.Format(name, offset), ip, Format(formatter, b.Instruction), file, line,
                    cls == FindingClass.PatchedSite ? siteDetail : cls == FindingClass.Annotated ? "marked RETPOLINE_SAFE in source" : null);
            }
            return formatter;
        }, _ => { });
        Timing.Mark("findings");
        var all = new List<Finding>(findings.Length + pltJumps.Count);
        all.AddRange(findings);
        all.AddRange(ClassifyPlt(elf, symbols, sweep, pltJumps, NewFormatter()));
        Timing.Mark("plt");
        all = ApplyAllowList(all, options.Allow);
        all = all.OrderBy(f => f.Address).ToList(); // stable: equal addresses (ET_REL sections) keep sweep order
        Timing.Mark("sort");

        var (ibt, shstk) = GnuProperties.Read(elf);
        var references = sweep.References.GroupBy(r => r.To).ToDictionary(g => g.Key, g => g.Count());
        var thunkInfos = thunks.Select(t => new ThunkInfo(t.Name, t.Parsed.RegisterName, t.Body?.Form ?? ThunkForm.Generic, t.Address, t.Extent,
            references.GetValueOrDefault(t.Address), t.Exported)).ToList();
        Timing.Mark("props+refs");

        return new VerifyReport
        {
            Path = elf.Path,
            Kind = elf.Kind,
            IndirectBranches = sweep.Indirect.Count,
            Ibt = ibt,
            Shstk = shstk,
            HasSymbols = elf.Symbols.Count > 0,
            Findings = all,
            Thunks = thunkInfos.Where((_, i) => thunks[i].Body is not null).ToList(),
            FileDiagnostics = [.. fileDiagnostics, .. siteDiagnostics, .. SlsDiagnostics(sweep, thunkRanges, pltIndexes, symbols, lines), .. ThunkChecks.Run(elf, thunks, shstk)],
            Strict = options.Strict,
            RuntimeRoutine = Runtime.RuntimeRecord.IsLinked(elf),
        };
    }

    /// <summary>
    /// A PLT entry's indirect jump is ToolchainStartup when only crt functions call the entry, Plt otherwise (also when
    /// nothing calls it directly: its address was taken, so user code reaches it). The lazy-binding header is
    /// ToolchainStartup unless some entry is Plt (then user code reaches the resolver through it).
    /// </summary>
    static IEnumerable<Finding> ClassifyPlt(ElfFile elf, SymbolIndex symbols, SweepResult sweep, List<SweptBranch> jumps, Formatter formatter)
    {
        if (jumps.Count == 0) yield break;
        var bySection = jumps.GroupBy(j => j.Section).ToDictionary(g => g.Key, g => g.Select(j => j.Instruction.IP).OrderBy(a => a).ToArray());
        var pltSections = bySection.Keys.Select(i => elf.Sections[i]).ToArray();
        var isPlt = elf.Sections.Select(s => PltSections.Contains(s.Name)).ToArray();
        // Per entry, the distinct callers. A libc-style entry (memcpy@plt) in a large library has thousands.
        var callers = new Dictionary<ulong, HashSet<string>>();
        foreach (var r in sweep.References)
        {
            if (isPlt[r.Section]) continue; // lazy stubs jumping to the header
            ElfSection? target = null;
            foreach (var s in pltSections) if (s.ContainsAddress(r.To)) { target = s; break; }
            if (target is null) continue;
            var addresses = bySection[target.Index];
            int i = Array.BinarySearch(addresses, r.To);
            if (i < 0) i = ~i;
            if (i >= addresses.Length || addresses[i] - r.To >= PltHeaderSize) continue;
            var caller = symbols.Locate(r.Section, r.From);
            if (!callers.TryGetValue(addresses[i], out var set)) callers[addresses[i]] = set = new HashSet<string>(StringComparer.Ordinal);
            set.Add(caller.isSymbol ? caller.name : SymbolIndex.Format(caller.name, caller.offset));
        }

        var gotNames = PltGotNames(elf, jumps);
        var entries = new List<Finding>();
        Finding? header = null;
        foreach (var j in jumps)
        {
            var section = elf.Sections[j.Section];
            ulong ip = j.Instruction.IP;
            string text = Format(formatter, j.Instruction);
            if (section.Name == ".plt" && ip - section.Address < PltHeaderSize)
            {
                header = new Finding(FindingClass.ToolchainStartup, SymbolIndex.Format(".plt", ip - section.Address), ip, text, null, null, "lazy-binding PLT header");
                continue;
            }
            string name = j.Instruction.IsIPRelativeMemoryOperand && gotNames.TryGetValue(j.Instruction.IPRelativeMemoryAddress, out var n)
                ? n + "@plt" : SymbolIndex.Format(section.Name, ip - section.Address);
            var who = callers.GetValueOrDefault(ip);
            bool startupOnly = who is { Count: > 0 } && who.All(StartupFunctions.Contains);
            string detail = who is { Count: > 0 } ? CalledFrom(who) : "no direct callers: its address is taken";
            entries.Add(new Finding(startupOnly ? FindingClass.ToolchainStartup : FindingClass.Plt, name, ip, text, null, null, detail));
        }
        foreach (var e in entries) yield return e;
        if (header is not null)
            yield return entries.Any(e => e.Class == FindingClass.Plt)
                ? header with { Class = FindingClass.Plt, Detail = "lazy-binding PLT header, reached through the PLT entries user code calls" }
                : header;
    }

    /// <summary>How many callers a PLT finding names: enough to find the call, short enough to read in a CI log.</summary>
    const int CallersNamed = 5;

    /// <summary>`called from a, b, c` or, past <see cref="CallersNamed"/>, `called from a, b, c, d, e and 4812 more`.</summary>
    static string CalledFrom(HashSet<string> who)
    {
        if (who.Count <= CallersNamed) return "called from " + string.Join(", ", who.Order(StringComparer.Ordinal));
        return "called from " + string.Join(", ", who.Order(StringComparer.Ordinal).Take(CallersNamed)) + $" and {who.Count - CallersNamed} more";
    }

    /// <summary>
    /// The dynamic symbol behind each GOT slot a PLT entry jumps through (`memcpy` for `jmp *memcpy@GOT`). Only those
    /// slots are looked up: a large library has hundreds of thousands of relocations and a few hundred PLT entries.
    /// </summary>
    static Dictionary<ulong, string> PltGotNames(ElfFile elf, List<SweptBranch> jumps) =>
        elf.RelocatedSymbols(jumps.Where(j => j.Instruction.IsIPRelativeMemoryOperand).Select(j => j.Instruction.IPRelativeMemoryAddress).ToHashSet());

    /// <summary>RPL0005: a `ret` or indirect `jmp` in user code with no `int3` after it (only under HardenSls).</summary>
    static IEnumerable<Diagnostic> SlsDiagnostics(SweepResult sweep, (int, ulong, ulong)[] thunkRanges, HashSet<int> plt, SymbolIndex symbols, Lazy<DwarfLines?> lines)
    {
        var formatter = NewFormatter();
        foreach (var b in sweep.SlsGaps)
        {
            ulong ip = b.Instruction.IP;
            if (InThunk(thunkRanges, b.Section, ip) || plt.Contains(b.Section)) continue;
            var (name, offset, _) = symbols.Locate(b.Section, ip);
            if (StartupFunctions.Contains(name)) continue;
            string function = SymbolIndex.Format(name, offset);
            string? file = null; int? line = null;
            if (lines.Value is { } table && table.TryLookup(ip, out var f, out var l)) { file = f; line = l; }
            yield return new Diagnostic(Codes.SlsUnprotected, Severity.Error,
                $"'{Format(formatter, b.Instruction)}' at 0x{ip:x} in function '{function}' is not followed by int3, so the CPU may speculate straight past it " +
                "(build with -mharden-sls=all, or add int3 after it in hand-written assembly; waive: RetpolineHardenSls=false)", ip, function, file, line);
        }
    }

    static bool InThunk((int section, ulong start, ulong end)[] ranges, int section, ulong ip)
    {
        foreach (var r in ranges)
            if (r.section == section && ip >= r.start && ip < r.end) return true;
        return false;
    }

    static ParallelOptions ParallelOptionsFor(VerifyOptions o) => new() { MaxDegreeOfParallelism = o.Parallel ? Environment.ProcessorCount : 1 };

    static List<Finding> ApplyAllowList(List<Finding> findings, IReadOnlyList<AllowRule> rules)
    {
        if (rules.Count == 0) return findings;
        return findings.Select(f =>
        {
            string name = Messages.BaseName(f.Function);
            var rule = rules.FirstOrDefault(r => Glob.IsMatch(r.Pattern, name) || Glob.IsMatch(r.Pattern, f.Function));
            return rule is null ? f : f with { AllowedBy = rule.Reason };
        }).ToList();
    }

    static Formatter NewFormatter()
    {
        var f = new IntelFormatter();
        f.Options.HexPrefix = "0x";
        f.Options.HexSuffix = null;
        f.Options.UppercaseHex = false;
        f.Options.SpaceAfterOperandSeparator = true;
        f.Options.BranchLeadingZeros = false;
        f.Options.LeadingZeros = false;
        return f;
    }

    static string Format(Formatter formatter, in Instruction instruction)
    {
        var output = new StringOutput();
        formatter.Format(instruction, output);
        return output.ToStringAndReset();
    }
}
