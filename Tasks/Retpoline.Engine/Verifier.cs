using Iced.Intel;
using Retpoline.Elf;
using Retpoline.Policy;
using Retpoline.X86;

namespace Retpoline;

/// <summary>
/// Entry point: read one ELF file, sweep its code, check its thunks, and collect the facts about what escaped;
/// <see cref="FindingClassifier"/> classifies each branch and <see cref="Waivers"/> applies the allow-list.
/// </summary>
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

    /// <summary>An object that is a member of a static archive: every finding's origin is that archive and member.</summary>
    internal static VerifyReport Verify(ElfFile elf, VerifyOptions options, FindingOrigin member) => Verify(elf, options, null, null, member);

    /// <summary>With the symbol index and thunks of <paramref name="elf"/> when the caller has them already (patch).</summary>
    internal static VerifyReport Verify(ElfFile elf, VerifyOptions options, SymbolIndex? symbolIndex, List<LocatedThunk>? located, FindingOrigin? member = null)
    {
        var symbols = symbolIndex ?? new SymbolIndex(elf);
        var thunks = located ?? ThunkScanner.Find(elf, symbols);
        // Stripped: the thunk symbols went with the symbol table; their bodies did not.
        if (located is null && !elf.HasStaticSymbols && elf.Kind != ElfKind.Relocatable)
        {
            thunks.AddRange(ThunkScanner.FindByBody(elf, thunks.Select(t => t.Address).ToHashSet()));
            thunks.Sort((a, b) => a.Address.CompareTo(b.Address));
        }
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
        // A file without symbols: where its crt startup code is, found from what stripping keeps.
        var startup = linked ? StartupCode.Find(elf) : null;
        var origins = new Origins(options.Map, new Lazy<DwarfUnits?>(() => linked ? DwarfUnits.Read(elf) : null), member);
        var pltIndexes = new HashSet<int>(plt.Select(s => s.Index));
        var thunkRanges = thunks.Where(t => t.Body is not null).Select(t => (t.Section.Index, start: t.Address, end: t.Address + (ulong)t.Extent)).ToArray();
        var annotated = Annotations.Read(elf).ToHashSet();
        // Call sites `patch --call-sites inline` rewrote on purpose, as .retpoline_sites records them (RPL0017/RPL0018 when the record and the bytes disagree).
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

        Timing.Mark("annotations+split");
        var all = new List<Finding>(userBranches.Count + pltJumps.Count + sweep.SlsGaps.Count);
        all.AddRange(Findings(userBranches, symbols, lines, origins, options, (b, name) =>
        {
            ulong ip = b.Instruction.IP;
            bool patched = patchedSites.TryGetValue(ip, out var record);
            string? crt = startup?.NameAt(b.Section, ip);
            var cls = FindingClassifier.Branch(crt ?? name, patched, annotated.Contains((b.Section, ip)));
            return (cls, FindingClassifier.Detail(cls, record) ?? (crt is null || cls != FindingClass.ToolchainStartup ? null : Recognised(crt)));
        }));
        Timing.Mark("findings");
        bool originWaivers = options.Allow.Any(r => r.Kind == WaiverKind.Origin);
        all.AddRange(ClassifyPlt(elf, symbols, sweep, pltJumps, NewFormatter(), startup, originWaivers ? origins : null));
        Timing.Mark("plt");
        var slsGaps = sweep.SlsGaps.Where(b => !InThunk(thunkRanges, b.Section, b.Instruction.IP)).ToList();
        all.AddRange(Findings(slsGaps, symbols, lines, origins, options, (b, name) => (FindingClassifier.SlsGap(startup?.NameAt(b.Section, b.Instruction.IP) ?? name, pltIndexes.Contains(b.Section)), null)));
        all = Waivers.Apply(all, options.Allow);
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
            FileDiagnostics = [.. fileDiagnostics, .. siteDiagnostics, .. ThunkChecks.Run(elf, thunks, shstk)],
            Strict = options.Strict,
            RuntimeRoutine = Runtime.RuntimeRecord.IsLinked(elf),
        };
    }

    /// <summary>
    /// The PLT's indirect jumps, with the facts their class depends on (who calls each entry, which is the lazy-binding
    /// header); <see cref="FindingClassifier"/> decides the class.
    /// </summary>
    static IEnumerable<Finding> ClassifyPlt(ElfFile elf, SymbolIndex symbols, SweepResult sweep, List<SweptBranch> jumps, Formatter formatter, StartupCode? startup,
        Origins? callerOrigins)
    {
        if (jumps.Count == 0) yield break;
        var bySection = jumps.GroupBy(j => j.Section).ToDictionary(g => g.Key, g => g.Select(j => j.Instruction.IP).OrderBy(a => a).ToArray());
        var pltSections = bySection.Keys.Select(i => elf.Sections[i]).ToArray();
        var isPlt = elf.Sections.Select(s => PltSections.Contains(s.Name)).ToArray();
        // Per entry, the distinct callers. A libc-style entry (memcpy@plt) in a large library has thousands.
        var callers = new Dictionary<ulong, HashSet<string>>();
        // Without static symbols the nearest preceding name (an exported function of a stripped library, a section)
        // would be a guess: such call sites are counted, not named, unless they are crt code found without symbols.
        var unnamed = new Dictionary<ulong, int>();
        // Per entry, where its callers came from (null in the set: a caller of unknown origin).
        var from = new Dictionary<ulong, HashSet<FindingOrigin?>>();
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
            if (!callers.TryGetValue(addresses[i], out var set)) callers[addresses[i]] = set = new HashSet<string>(StringComparer.Ordinal);
            if (callerOrigins is not null)
            {
                if (!from.TryGetValue(addresses[i], out var origins)) from[addresses[i]] = origins = [];
                origins.Add(callerOrigins.At(r.From));
            }
            if (startup is not null)
            {
                if (startup.NameAt(r.Section, r.From) is { } crt) set.Add(crt);
                else unnamed[addresses[i]] = unnamed.GetValueOrDefault(addresses[i]) + 1;
                continue;
            }
            var caller = symbols.Locate(r.Section, r.From);
            set.Add(caller.isSymbol ? caller.name : SymbolIndex.Format(caller.name, caller.offset));
        }

        var gotNames = PltGotNames(elf, jumps);
        // An entry for a function this very file defines and exports: the library calls its own export through the
        // PLT so that it stays interposable (Clang without -fno-semantic-interposition); the fix is not -fno-plt.
        var definedHere = elf.DynamicSymbols.Where(s => s.IsDefined && s.Type == Elf.ElfSymbol.STT_FUNC).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var entries = new List<Finding>();
        Finding? header = null;
        foreach (var j in jumps)
        {
            var section = elf.Sections[j.Section];
            ulong ip = j.Instruction.IP;
            string text = Format(formatter, j.Instruction);
            if (section.Name == ".plt" && ip - section.Address < PltHeaderSize)
            {
                header = new Finding(FindingClassifier.PltHeader(false), SymbolIndex.Format(".plt", ip - section.Address), ip, text, null, null, "lazy-binding PLT header");
                continue;
            }
            string name = j.Instruction.IsIPRelativeMemoryOperand && gotNames.TryGetValue(j.Instruction.IPRelativeMemoryAddress, out var n)
                ? n + "@plt" : SymbolIndex.Format(section.Name, ip - section.Address);
            var who = callers.GetValueOrDefault(ip);
            int sites = unnamed.GetValueOrDefault(ip);
            string detail = sites > 0
                ? (who is { Count: > 0 } ? CalledFrom(who) + " and " : "called from ") + $"{sites} call site(s) in code without symbols"
                : who is { Count: > 0 } ? CalledFrom(who) : "no direct callers: its address is taken";
            var cls = sites > 0 ? FindingClass.Plt : FindingClassifier.PltEntry(who);
            entries.Add(new Finding(cls, name, ip, text, null, null, detail)
            {
                DefinedHere = name.EndsWith("@plt", StringComparison.Ordinal) && definedHere.Contains(name[..^4]),
                CallerOrigins = Known(from.GetValueOrDefault(ip)),
            });
        }
        foreach (var e in entries) yield return e;
        if (header is not null)
        {
            var reaching = entries.Where(e => e.Class == FindingClass.Plt).ToList();
            // The header is reached through those entries: its callers' origins are theirs.
            var headerOrigins = callerOrigins is null || reaching.Any(e => e.CallerOrigins is null) ? null
                : reaching.SelectMany(e => e.CallerOrigins!).Distinct().OrderBy(o => o.ToString(), StringComparer.Ordinal).ToList();
            yield return FindingClassifier.PltHeader(reaching.Count > 0) == FindingClass.Plt
                ? header with { Class = FindingClass.Plt, Detail = "lazy-binding PLT header, reached through the PLT entries user code calls", CallerOrigins = headerOrigins }
                : header;
        }
    }

    /// <summary>The callers' origins when every one is known, in a stable order; otherwise null.</summary>
    static IReadOnlyList<FindingOrigin>? Known(HashSet<FindingOrigin?>? origins)
        => origins is null || origins.Count == 0 || origins.Contains(null) ? null
            : origins.Select(o => o!).OrderBy(o => o.ToString(), StringComparer.Ordinal).ToList();

    /// <summary>
    /// Where the code at an address came from: the link input the linker map names, and the compilation unit's
    /// source from the file's own DWARF. Neither is read unless a finding asks. PLT entries get none: the linker made them.
    /// </summary>
    sealed class Origins(LinkerMap? map, Lazy<DwarfUnits?> units, FindingOrigin? wholeFile)
    {
        public FindingOrigin? At(ulong address)
        {
            if (wholeFile is not null) return wholeFile;
            var input = map?.At(address);
            string? source = units.Value?.SourceAt(address);
            if (input is null) return source is null ? null : new FindingOrigin(null, null, source);
            return source is null ? input : input with { Source = source };
        }
    }

    static string Recognised(string crt) => $"toolchain startup code: {crt}, recognised without symbols";

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

    static bool InThunk((int section, ulong start, ulong end)[] ranges, int section, ulong ip)
    {
        foreach (var r in ranges)
            if (r.section == section && ip >= r.start && ip < r.end) return true;
        return false;
    }

    static ParallelOptions ParallelOptionsFor(VerifyOptions o) => new() { MaxDegreeOfParallelism = o.Parallel ? Environment.ProcessorCount : 1 };

    /// <summary>
    /// One finding per branch the classifier makes one of (null: not a finding), with its name, text and source line.
    /// Naming, formatting and line lookup cost more than the sweep on an unmitigated library (every branch is a
    /// finding), so they run on both cores, each worker with its own formatter; the order is kept.
    /// </summary>
    static IEnumerable<Finding> Findings(IReadOnlyList<SweptBranch> branches, SymbolIndex symbols, Lazy<DwarfLines?> lines, Origins origins, VerifyOptions options,
        Func<SweptBranch, string, (FindingClass? Class, string? Detail)> classify)
    {
        var findings = new Finding?[branches.Count];
        Parallel.For(0, (findings.Length + 4095) / 4096, ParallelOptionsFor(options), NewFormatter, (chunk, _, formatter) =>
        {
            for (int i = chunk * 4096, end = Math.Min(findings.Length, i + 4096); i < end; i++)
            {
                var b = branches[i];
                ulong ip = b.Instruction.IP;
                var (name, offset, _) = symbols.Locate(b.Section, ip);
                var (cls, detail) = classify(b, name);
                if (cls is not { } c) continue;
                string? file = null; int? line = null;
                if (FindingClassifier.HasUserSource(c) && lines.Value is { } table && table.TryLookup(ip, out var f, out var l)) { file = f; line = l; }
                findings[i] = new Finding(c, SymbolIndex.Format(name, offset), ip, Format(formatter, b.Instruction), file, line, detail, Origin: origins.At(ip));
            }
            return formatter;
        }, _ => { });
        return findings.OfType<Finding>();
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
