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
        var elf = ElfFile.Load(path);
        return Verify(elf, options);
    }

    public static VerifyReport Verify(ElfFile elf, VerifyOptions options)
    {
        var symbols = new SymbolIndex(elf);
        var thunks = ThunkScanner.Find(elf, symbols);
        bool linked = elf.Kind != ElfKind.Relocatable;

        var exec = elf.Sections.Where(s => s.IsExecutable).ToList();
        var plt = linked ? exec.Where(s => PltSections.Contains(s.Name)).ToList() : [];
        var thunkStarts = new HashSet<ulong>(thunks.Select(t => t.Address));
        bool Interesting(ulong target)
        {
            if (thunkStarts.Contains(target)) return true;
            foreach (var s in plt) if (s.ContainsAddress(target)) return true;
            return false;
        }
        var sweep = CodeSweep.Run(elf, exec, symbols.Starts, linked ? Interesting : null, options.Parallel);

        var lines = linked ? SourceLines.Read(elf) : null;
        var formatter = NewFormatter();
        var findings = new List<Finding>();
        var pltJumps = new List<SweptBranch>();
        foreach (var b in sweep.Indirect)
        {
            ulong ip = b.Instruction.IP;
            if (thunks.Any(t => t.Section.Index == b.Section && t.Body is not null && ip >= t.Address && ip < t.Address + (ulong)t.Extent))
                continue; // the inside of a recognised thunk is the mitigation itself
            if (plt.Any(s => s.Index == b.Section)) { pltJumps.Add(b); continue; }
            var (name, offset, _) = symbols.Locate(b.Section, ip);
            var cls = StartupFunctions.Contains(name) ? FindingClass.ToolchainStartup : FindingClass.UserCode;
            string? file = null; int? line = null;
            if (lines is not null && lines.TryLookup(ip, out var f, out var l)) { file = f; line = l; }
            findings.Add(new Finding(cls, SymbolIndex.Format(name, offset), ip, Format(formatter, b.Instruction), file, line));
        }
        findings.AddRange(ClassifyPlt(elf, symbols, sweep, pltJumps, formatter));
        findings = ApplyAllowList(findings, options.Allow);
        findings.Sort((a, b) => a.Address.CompareTo(b.Address));

        var diagnostics = new List<Diagnostic>();
        foreach (var f in findings)
        {
            if (f.AllowedBy is not null) continue;
            switch (f.Class)
            {
                case FindingClass.UserCode: diagnostics.Add(FindingDiagnostic(Codes.UserCode, Messages.UserCode(f), f)); break;
                case FindingClass.Plt: diagnostics.Add(FindingDiagnostic(Codes.Plt, Messages.Plt(f), f)); break;
                case FindingClass.ToolchainStartup when options.Strict: diagnostics.Add(FindingDiagnostic(Codes.ToolchainStartup, Messages.Startup(f), f)); break;
            }
        }

        var (ibt, shstk) = GnuProperties.Read(elf);
        var references = sweep.References.GroupBy(r => r.To).ToDictionary(g => g.Key, g => g.Count());
        var thunkInfos = thunks.Select(t => new ThunkInfo(t.Name, t.Parsed.RegisterName, t.Body?.Form ?? ThunkForm.Generic, t.Address, t.Extent,
            references.GetValueOrDefault(t.Address), t.Exported)).ToList();
        diagnostics.AddRange(ThunkChecks.Run(elf, thunks, shstk));

        return new VerifyReport
        {
            Path = elf.Path,
            Kind = elf.Kind,
            IndirectBranches = sweep.Indirect.Count,
            Ibt = ibt,
            Shstk = shstk,
            HasSymbols = elf.Symbols.Count > 0,
            Findings = findings,
            Thunks = thunkInfos.Where((_, i) => thunks[i].Body is not null).ToList(),
            Diagnostics = diagnostics,
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
        var callers = new Dictionary<ulong, SortedSet<string>>();
        foreach (var r in sweep.References)
        {
            var target = elf.SectionAt(r.To);
            if (target is null || !bySection.TryGetValue(target.Index, out var addresses)) continue;
            int i = Array.BinarySearch(addresses, r.To);
            if (i < 0) i = ~i;
            if (i >= addresses.Length || addresses[i] - r.To >= PltHeaderSize) continue;
            var caller = symbols.Locate(r.Section, r.From);
            var callerSection = elf.Sections[r.Section];
            if (PltSections.Contains(callerSection.Name)) continue; // lazy stubs jumping to the header
            if (!callers.TryGetValue(addresses[i], out var set)) callers[addresses[i]] = set = new SortedSet<string>(StringComparer.Ordinal);
            set.Add(caller.isSymbol ? caller.name : SymbolIndex.Format(caller.name, caller.offset));
        }

        var gotNames = new Dictionary<ulong, string>();
        foreach (var rel in elf.DynamicRelocations)
            if (rel.SymbolIndex > 0 && rel.SymbolIndex < elf.DynamicSymbols.Count) gotNames.TryAdd(rel.Offset, elf.DynamicSymbols[(int)rel.SymbolIndex].Name);

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
            string detail = who is { Count: > 0 } ? "called from " + string.Join(", ", who) : "no direct callers: its address is taken";
            entries.Add(new Finding(startupOnly ? FindingClass.ToolchainStartup : FindingClass.Plt, name, ip, text, null, null, detail));
        }
        foreach (var e in entries) yield return e;
        if (header is not null)
            yield return entries.Any(e => e.Class == FindingClass.Plt)
                ? header with { Class = FindingClass.Plt, Detail = "lazy-binding PLT header, reached through the PLT entries user code calls" }
                : header;
    }

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

    static Diagnostic FindingDiagnostic(string code, string message, Finding f)
        => new(code, Severity.Error, message, f.Address, f.Function, f.SourceFile, f.Line);

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
