using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Verify on binaries the real compilers build from tests/Engine.Tests/Fixtures/native. Expected addresses, names and
/// branch counts come from nm and objdump run by the test; the classes are the ones DESIGN.md §3 prescribes, written
/// down exactly as a correct GCC 12 / clang-14 + lld-14 link on Debian 12 leaves them.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class VerifyTests(FixtureSet fx)
{
    static VerifyReport Verify(string path, bool strict = false) => Verifier.Verify(path, new VerifyOptions { Strict = strict });

    /// <summary>`name+0x1f` → `name`; `.plt+0x6` → `.plt`; `printf@plt` stays.</summary>
    static string BaseName(string function)
    {
        int plus = function.LastIndexOf("+0x", StringComparison.Ordinal);
        return plus > 0 ? function[..plus] : function;
    }

    static string Names(IEnumerable<Finding> findings) => string.Join(", ", findings.Select(f => $"{f.Class}:{f.Function}@0x{f.Address:x}"));

    static SortedSet<string> Set(params string[] names) => new(names, StringComparer.Ordinal);

    static SortedSet<string> BaseNames(VerifyReport r, FindingClass c) => new(r.Findings.Where(f => f.Class == c).Select(f => BaseName(f.Function)), StringComparer.Ordinal);

    // What a correct link leaves (observed with objdump on Debian 12: gcc 12.2 + GNU ld 2.40, clang-14 + lld-14, glibc 2.36).
    // crt1.o: _start (call *__libc_start_main@GOTPCREL); crti.o: _init (call *%rax, __gmon_start__);
    // crtbeginS.o: deregister_tm_clones/register_tm_clones (jmp *%rax), and __do_global_dtors_aux calling
    // __cxa_finalize through its .plt.got entry; GNU ld always emits the 16-byte lazy PLT header (.plt+0x6 jmp *GOT+16).
    static readonly SortedSet<string> GnuLdPieStartup = Set("_start", "_init", "deregister_tm_clones", "register_tm_clones", "__cxa_finalize@plt", ".plt");
    static readonly SortedSet<string> GnuLdPieStartupWithPlt = Set("_start", "_init", "deregister_tm_clones", "register_tm_clones", "__cxa_finalize@plt");
    static readonly SortedSet<string> GnuLdSharedStartup = Set("_init", "deregister_tm_clones", "register_tm_clones", "__cxa_finalize@plt", ".plt");
    static readonly SortedSet<string> GnuLdSharedStartupWithPlt = Set("_init", "deregister_tm_clones", "register_tm_clones", "__cxa_finalize@plt");
    // lld with -z retpolineplt: its PLT is itself a retpoline (no indirect jmp at all), __cxa_finalize goes through it.
    static readonly SortedSet<string> LldPieStartup = Set("_start", "_init", "deregister_tm_clones", "register_tm_clones");
    static readonly SortedSet<string> LldSharedStartup = Set("_init", "deregister_tm_clones", "register_tm_clones");

    public static TheoryData<string, string> CorrectLinks => new()
    {
        { FixtureSet.GccExeNoPlt, "gnu-pie" },
        { FixtureSet.GxxVirtualNoPlt, "gnu-pie" },
        { FixtureSet.GccGcSections, "gnu-pie" },
        { FixtureSet.GccCfProtection, "gnu-pie" },
        { FixtureSet.GccLarge, "gnu-pie" },
        { FixtureSet.GccLibNoPlt, "gnu-so" },
        { FixtureSet.ClangExe, "lld-pie" },
        { FixtureSet.ClangLib, "lld-so" },
    };

    [Theory]
    [MemberData(nameof(CorrectLinks))]
    public void CorrectLink_LeavesExactlyTheToolchainStartupSet(string fixture, string kind)
    {
        var r = Verify(fx.Get(fixture));
        var expected = kind switch
        {
            "gnu-pie" => GnuLdPieStartup,
            "gnu-so" => GnuLdSharedStartup,
            "lld-pie" => LldPieStartup,
            _ => LldSharedStartup,
        };
        Assert.True(r.Findings.All(f => f.Class == FindingClass.ToolchainStartup), $"{fixture}: {Names(r.Findings)}");
        Assert.Equal(expected, BaseNames(r, FindingClass.ToolchainStartup));
        Assert.Equal(expected.Count, r.Findings.Count); // one branch each
        Assert.False(r.HasErrors, string.Join("\n", r.Diagnostics.Select(d => $"{d.Code} {d.Message}")));
        Assert.Empty(r.FileDiagnostics);
        Assert.Equal(kind.EndsWith("so") ? ElfKind.SharedLibrary : ElfKind.PositionIndependentExecutable, r.Kind);
        Assert.All(r.Findings.Where(f => f.Function.EndsWith("@plt", StringComparison.Ordinal)),
            f => Assert.Equal("called from __do_global_dtors_aux", f.Detail));
    }

    [Theory]
    [MemberData(nameof(CorrectLinks))]
    public void CorrectLink_StrictMakesEveryStartupBranchAnError(string fixture, string kind)
    {
        _ = kind;
        var r = Verify(fx.Get(fixture), strict: true);
        Assert.True(r.HasErrors);
        var codes = r.Diagnostics.Select(d => d.Code).ToList();
        Assert.Equal(Enumerable.Repeat(Codes.ToolchainStartup, r.Findings.Count), codes);
        Assert.Equal(r.Findings.Select(f => f.Address), r.Diagnostics.Select(d => d.Address ?? 0));
    }

    /// <summary>Without -fno-plt every PLT entry user code calls is class Plt, naming its callers; so is the lazy header.</summary>
    [Theory]
    [InlineData(FixtureSet.GccExe, "gnu-pie", "printf@plt=main")]
    [InlineData(FixtureSet.GxxVirtual, "gnu-pie", "printf@plt=main", "_ZdlPvm@plt=_ZN4RectD0Ev, _ZN6SquareD0Ev")]
    [InlineData(FixtureSet.GccLib, "gnu-so", "lib_classify@plt=lib_total", "lib_dispatch@plt=lib_total")]
    public void LinkWithPlt_PltEntriesCalledFromUserCodeAreClassPlt(string fixture, string kind, params string[] entries)
    {
        var r = Verify(fx.Get(fixture));
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);
        Assert.Equal(kind == "gnu-pie" ? GnuLdPieStartupWithPlt : GnuLdSharedStartupWithPlt, BaseNames(r, FindingClass.ToolchainStartup));

        var plt = r.Findings.Where(f => f.Class == FindingClass.Plt).ToList();
        var expected = entries.Select(e => e.Split('=')).ToDictionary(p => p[0], p => "called from " + p[1]);
        expected[".plt"] = "lazy-binding PLT header, reached through the PLT entries user code calls";
        Assert.Equal(new SortedSet<string>(expected.Keys, StringComparer.Ordinal), BaseNames(r, FindingClass.Plt));
        foreach (var f in plt) Assert.Equal(expected[BaseName(f.Function)], f.Detail);

        // The header is the jmp *GOT+16 at .plt+6, every entry's address is where objdump labels it.
        var objdump = FixtureSet.ObjdumpIndirect(fx.Get(fixture));
        var pltSection = ElfBits.Read(fx.Get(fixture))[".plt"]!;
        var header = Assert.Single(plt, f => f.Function.StartsWith(".plt", StringComparison.Ordinal));
        Assert.Equal(".plt+0x6", header.Function);
        Assert.Equal(pltSection.Address + 6, header.Address);
        foreach (var f in plt.Where(f => f != header))
            Assert.Contains(objdump, o => o.Address == f.Address && o.Function == f.Function);

        // One RPL0002 error per Plt finding, naming the entry and the fix.
        var errors = r.Diagnostics.Where(d => d.Severity == Severity.Error).ToList();
        Assert.Equal(plt.Count, errors.Count);
        Assert.All(errors, d => Assert.Equal(Codes.Plt, d.Code));
        Assert.All(errors, d => Assert.Contains("-fno-plt", d.Message));
        Assert.True(r.HasErrors);
    }

    /// <summary>
    /// Every finding's address and `symbol+0xoff` name against objdump and nm: the same indirect branches, in the same
    /// order, with the offsets into the symbols nm gives (thunk bodies hold none in their Generic form).
    /// </summary>
    [Theory]
    [InlineData(FixtureSet.GccExe)]
    [InlineData(FixtureSet.GccExeNoPlt)]
    [InlineData(FixtureSet.GccLib)]
    [InlineData(FixtureSet.GxxVirtual)]
    [InlineData(FixtureSet.ClangExe)]
    [InlineData(FixtureSet.ClangLib)]
    [InlineData(FixtureSet.Handwritten)]
    [InlineData(FixtureSet.GccComdat)]
    [InlineData(FixtureSet.ClangRetpoline)]
    public void Findings_MatchObjdumpAndNm(string fixture)
    {
        string path = fx.Get(fixture);
        var r = Verify(path);
        var nm = FixtureSet.Nm(path);
        var elf = ElfBits.Read(path);
        var pltSections = elf.Sections.Where(s => s.Name is ".plt" or ".plt.got" or ".plt.sec").ToList();
        var expected = FixtureSet.ObjdumpIndirect(path).Select(o =>
        {
            var plt = pltSections.FirstOrDefault(s => o.Address >= s.Address && o.Address < s.Address + (ulong)s.Size);
            if (plt is not null)
                return (o.Address, plt.Name == ".plt" && o.Address - plt.Address < 16 ? $".plt+0x{o.Address - plt.Address:x}" : o.Function);
            ulong start = nm[o.Function];
            return (o.Address, o.Address == start ? o.Function : $"{o.Function}+0x{o.Address - start:x}");
        }).ToList();
        Assert.Equal(expected, r.Findings.Select(f => (f.Address, f.Function)).ToList());
        Assert.Equal(expected.Count, r.IndirectBranches);
    }

    /// <summary>The hand-written branches: UserCode with function, address, instruction text and source line.</summary>
    [Fact]
    public void HandwrittenAssembly_IsUserCodeWithFunctionAddressAndLine()
    {
        string path = fx.Get(FixtureSet.Handwritten);
        string source = FixtureSet.Source("handwritten.S");
        var nm = FixtureSet.Nm(path);
        var objdump = FixtureSet.ObjdumpIndirect(path);
        ulong table = objdump.Single(o => o.Function == "asm_jump_table").Address;
        var expected = new[]
        {
            ("asm_call_rax", nm["asm_call_rax"], "call rax", FixtureSet.LineOf(source, "RPL: asm_call_rax")),
            ("asm_jmp_mem", nm["asm_jmp_mem"], "jmp qword ptr [rax]", FixtureSet.LineOf(source, "RPL: asm_jmp_mem")),
            ("asm_notrack_jmp", nm["asm_notrack_jmp"], "notrack jmp rdx", FixtureSet.LineOf(source, "RPL: asm_notrack_jmp")),
            ($"asm_jump_table+0x{table - nm["asm_jump_table"]:x}", table, "jmp rdx", FixtureSet.LineOf(source, "RPL: asm_jump_table")),
        };

        var r = Verify(path);
        var user = r.Findings.Where(f => f.Class == FindingClass.UserCode).ToList();
        Assert.Equal(expected.Select(e => (e.Item1, e.Item2, e.Item3, e.Item4)), user.Select(f => (f.Function, f.Address, f.Instruction, f.Line ?? -1)));
        Assert.All(user, f => Assert.Equal(source, f.SourceFile));
        Assert.All(user, f => Assert.Equal($"{source}:{f.Line}", f.Source));
        Assert.Equal(GnuLdPieStartup, BaseNames(r, FindingClass.ToolchainStartup));
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.Plt);

        // One RPL0001 per hand-written branch, carrying the same location.
        var errors = r.Diagnostics.Where(d => d.Severity == Severity.Error).ToList();
        Assert.Equal(expected.Select(e => (Codes.UserCode, (ulong?)e.Item2, e.Item4)), errors.Select(d => (d.Code, d.Address, d.Line ?? -1)));
        Assert.All(errors, d => Assert.Equal(source, d.SourceFile));
        Assert.True(r.HasErrors);
    }

    /// <summary>The ET_REL object of the same assembly: section-relative addresses, the same names, no thunk checks.</summary>
    [Fact]
    public void RelocatableObject_Verifies()
    {
        string path = fx.Get(FixtureSet.HandwrittenObject);
        var nm = FixtureSet.Nm(path);
        var objdump = FixtureSet.ObjdumpIndirect(path);
        var r = Verify(path);
        Assert.Equal(ElfKind.Relocatable, r.Kind);
        Assert.Equal(4, r.IndirectBranches);
        Assert.Equal(objdump.Select(o => o.Address), r.Findings.Select(f => f.Address));
        Assert.Equal(["asm_call_rax", "asm_jmp_mem", "asm_notrack_jmp", $"asm_jump_table+0x{objdump[3].Address - nm["asm_jump_table"]:x}"],
            r.Findings.Select(f => f.Function));
        Assert.All(r.Findings, f => Assert.Equal(FindingClass.UserCode, f.Class));
        Assert.Empty(r.FileDiagnostics);

        // Compiled with the retpoline flags, an object calls thunks it does not define: that is the link's job, not an error.
        string dispatch = fx.Get(FixtureSet.DispatchObject);
        Assert.Contains(FixtureSet.UndefinedSymbols(dispatch), s => s.StartsWith("__x86_indirect_thunk_", StringComparison.Ordinal));
        var d = Verify(dispatch);
        Assert.Equal(ElfKind.Relocatable, d.Kind);
        Assert.Equal(0, d.IndirectBranches);
        Assert.Empty(d.Findings);
        Assert.Empty(d.Diagnostics);
        Assert.False(d.HasErrors);
    }

    [Fact]
    public void RelocatableThunkObject_ListsEveryThunkAtItsSectionOffset()
    {
        string path = fx.Get(FixtureSet.ThunksObject);
        var r = Verify(path);
        Assert.Equal(ElfKind.Relocatable, r.Kind);
        Assert.Equal(31, r.Thunks.Count);
        Assert.All(r.Thunks, t => Assert.Equal(0ul, t.Address));
        Assert.Equal(30, r.Thunks.Count(t => t.Form == ThunkForm.Generic));
        Assert.Equal(ThunkForm.Return, Assert.Single(r.Thunks, t => t.Name == "__x86_return_thunk").Form);
        Assert.Empty(r.Findings);
        Assert.Empty(r.Diagnostics);
    }

    /// <summary>Every thunk the shipped file defines is found where nm puts it, recognised for its own register.</summary>
    [Theory]
    [InlineData(FixtureSet.GccExeNoPlt)]
    [InlineData(FixtureSet.GccLib)]
    [InlineData(FixtureSet.ClangExe)]
    public void ShippedThunks_AreRecognisedWithAddressesAndReferenceCounts(string fixture)
    {
        string path = fx.Get(fixture);
        var r = Verify(path);
        var nm = FixtureSet.Nm(path);
        var expectedNames = FixtureSet.Registers.SelectMany(reg => new[] { "__x86_indirect_thunk_" + reg, "__x86_indirect_thunk_nt_" + reg })
            .Append("__x86_return_thunk").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedNames, r.Thunks.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var t in r.Thunks)
        {
            Assert.Equal(nm[t.Name], t.Address);
            Assert.False(t.Exported);
            if (t.Name == "__x86_return_thunk")
            {
                Assert.Equal((ThunkForm.Return, "", 2), (t.Form, t.Register, t.BodyLength));
                continue;
            }
            string reg = t.Name[(t.Name.LastIndexOf('_') + 1)..];
            Assert.Equal((ThunkForm.Generic, reg, 17), (t.Form, t.Register, t.BodyLength));
        }

        // Direct references: every call/jmp/jcc objdump shows into each thunk.
        var refs = FixtureSet.DirectReferences(path);
        Assert.Equal(r.Thunks.ToDictionary(t => t.Name, t => refs.GetValueOrDefault(t.Name)), r.Thunks.ToDictionary(t => t.Name, t => t.DirectReferences));
        Assert.Contains(r.Thunks, t => t.DirectReferences > 0);
    }

    [Fact]
    public void GcSections_DropsTheThunksNothingCalls()
    {
        string path = fx.Get(FixtureSet.GccGcSections);
        var r = Verify(path);
        var defined = FixtureSet.Nm(path).Keys.Where(k => k.StartsWith("__x86_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.InRange(defined.Count, 1, 30);
        Assert.Equal(defined, r.Thunks.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.All(r.Thunks, t => Assert.True(t.DirectReferences > 0, $"{t.Name} survived --gc-sections but nothing references it"));
    }

    [Fact]
    public void WrongRegister_IsRpl0012ForEachThunk()
    {
        string path = fx.Get(FixtureSet.WrongRegister);
        var nm = FixtureSet.Nm(path);
        var r = Verify(path);
        var wrong = r.FileDiagnostics.Where(d => d.Code == Codes.ThunkWrongRegister).ToList();
        Assert.Equal(
            [("__x86_indirect_thunk_rax", nm["__x86_indirect_thunk_rax"]), ("__x86_indirect_thunk_rcx", nm["__x86_indirect_thunk_rcx"])],
            wrong.Select(d => (d.Function!, d.Address ?? 0)).OrderBy(x => x.Item2));
        Assert.All(wrong, d => Assert.Equal(Severity.Error, d.Severity));
        Assert.All(wrong, d => Assert.Contains("%rbx", d.Message));
        Assert.Equal(2, r.FileDiagnostics.Count);
        Assert.True(r.HasErrors);
        // The bodies are still recognised (Generic and Amd), for their actual register.
        Assert.Equal([("__x86_indirect_thunk_rax", ThunkForm.Generic), ("__x86_indirect_thunk_rcx", ThunkForm.Amd)],
            r.Thunks.Select(t => (t.Name, t.Form)).OrderBy(t => t.Name, StringComparer.Ordinal));
    }

    [Fact]
    public void UnknownBody_IsRpl0011WithItsBytes()
    {
        string path = fx.Get(FixtureSet.MalformedThunk);
        var nm = FixtureSet.Nm(path);
        var r = Verify(path);
        var d = Assert.Single(r.FileDiagnostics);
        Assert.Equal((Codes.ThunkMalformed, Severity.Error, "__x86_indirect_thunk_rdx", nm["__x86_indirect_thunk_rdx"]), (d.Code, d.Severity, d.Function!, d.Address ?? 0));
        Assert.Contains("52 c3 cc", d.Message); // push %rdx; ret; int3 …
        Assert.DoesNotContain(r.Thunks, t => t.Name == "__x86_indirect_thunk_rdx");
        Assert.True(r.HasErrors);
    }

    [Fact]
    public void MissingThunk_IsRpl0010ForEachUndefinedThunk()
    {
        string path = fx.Get(FixtureSet.MissingThunkLib);
        var undefined = FixtureSet.UndefinedSymbols(path).Where(s => s.StartsWith("__x86_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(undefined);
        var r = Verify(path);
        var missing = r.FileDiagnostics.Where(d => d.Code == Codes.ThunkMissing).ToList();
        Assert.Equal(undefined, missing.Select(d => d.Function!).Order(StringComparer.Ordinal));
        Assert.All(missing, d => Assert.Equal(Severity.Error, d.Severity));
        Assert.Empty(r.Thunks);
        Assert.True(r.HasErrors);
    }

    [Fact]
    public void ExportedThunk_IsRpl0013Warning()
    {
        string path = fx.Get(FixtureSet.ExportedThunkLib);
        var nm = FixtureSet.Nm(path);
        var r = Verify(path);
        var d = Assert.Single(r.FileDiagnostics);
        Assert.Equal((Codes.ThunkExported, Severity.Warning, "__x86_indirect_thunk_rax"), (d.Code, d.Severity, d.Function!));
        var t = Assert.Single(r.Thunks);
        Assert.Equal(("__x86_indirect_thunk_rax", ThunkForm.Generic, "rax", nm["__x86_indirect_thunk_rax"], true), (t.Name, t.Form, t.Register, t.Address, t.Exported));
        Assert.False(r.HasErrors); // a warning, not an error
        // The shipped thunks are hidden: never a warning for them.
        Assert.DoesNotContain(Verify(fx.Get(FixtureSet.GccLibNoPlt)).FileDiagnostics, x => x.Code == Codes.ThunkExported);
    }

    /// <summary>GCC -mindirect-branch=thunk: COMDAT thunks whose st_size is 0, recognised by their bytes.</summary>
    [Fact]
    public void ComdatThunksWithSizeZero_AreRecognisedAsGeneric()
    {
        string path = fx.Get(FixtureSet.GccComdat);
        var sizes = FixtureSet.NmSizes(path);
        var nm = FixtureSet.Nm(path);
        var thunkNames = sizes.Keys.Where(k => k.StartsWith("__x86_", StringComparison.Ordinal)).ToList();
        Assert.Contains("__x86_indirect_thunk_rax", thunkNames);
        Assert.All(thunkNames, n => Assert.Equal(0ul, sizes[n])); // the premise: st_size says nothing

        var r = Verify(path);
        Assert.Equal(thunkNames.Order(StringComparer.Ordinal), r.Thunks.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var t in r.Thunks)
        {
            Assert.Equal(nm[t.Name], t.Address);
            if (t.Name == "__x86_return_thunk") Assert.Equal(ThunkForm.GenericReturn, t.Form); // thunk mode: lea 8(%rsp),%rsp; ret
            else Assert.Equal((ThunkForm.Generic, t.Name["__x86_indirect_thunk_".Length..], 17), (t.Form, t.Register, t.BodyLength));
        }
        Assert.Empty(r.FileDiagnostics);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);
    }

    /// <summary>clang -mretpoline: the internal __llvm_retpoline_r11 in Clang's 21-byte layout.</summary>
    [Fact]
    public void LlvmRetpoline_IsRecognisedInClangLayout()
    {
        string path = fx.Get(FixtureSet.ClangRetpoline);
        var nm = FixtureSet.Nm(path);
        var bytes = ElfBits.Read(path).BytesAt("__llvm_retpoline_r11", 21);
        Assert.Equal(Convert.FromHexString("e80b000000f3900faee8ebf90f1f40004c891c24c3"), bytes); // the premise
        var r = Verify(path);
        var t = Assert.Single(r.Thunks);
        Assert.Equal(("__llvm_retpoline_r11", ThunkForm.Generic, "r11", nm["__llvm_retpoline_r11"], 21), (t.Name, t.Form, t.Register, t.Address, t.BodyLength));
        Assert.True(t.DirectReferences > 0);
        Assert.Empty(r.FileDiagnostics);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);
    }

    /// <summary>A stripped binary: no crash; everything without a symbol is named `section+0xoff`.</summary>
    [Fact]
    public void StrippedBinary_NamesSectionOffsets()
    {
        string unstripped = fx.Get(FixtureSet.Handwritten);
        string path = fx.Get(FixtureSet.HandwrittenStripped);
        var nm = FixtureSet.Nm(unstripped);
        var text = ElfBits.Read(path)[".text"]!;
        var r = Verify(path);
        Assert.Equal(Verify(unstripped).IndirectBranches, r.IndirectBranches);
        Assert.All(r.Findings, f => Assert.Matches(@"^(\.[a-z_.]+\+0x[0-9a-f]+|[A-Za-z_][\w.]*@plt)$", f.Function));
        foreach (var fn in new[] { "asm_call_rax", "asm_jmp_mem", "asm_notrack_jmp" })
        {
            var f = Assert.Single(r.Findings, f => f.Address == nm[fn]);
            Assert.Equal((FindingClass.UserCode, $".text+0x{nm[fn] - text.Address:x}"), (f.Class, f.Function));
            Assert.Null(f.Line); // strip removed .debug_line too
        }
    }

    /// <summary>The total the engine counts equals objdump's count on every fixture (thunk bodies included).</summary>
    [Theory]
    [InlineData(FixtureSet.GccExe)]
    [InlineData(FixtureSet.GccLib)]
    [InlineData(FixtureSet.GxxVirtual)]
    [InlineData(FixtureSet.GxxVirtualNoPlt)]
    [InlineData(FixtureSet.ClangExe)]
    [InlineData(FixtureSet.Handwritten)]
    [InlineData(FixtureSet.HandwrittenStripped)]
    [InlineData(FixtureSet.HandwrittenObject)]
    [InlineData(FixtureSet.GccComdat)]
    [InlineData(FixtureSet.ClangRetpoline)]
    [InlineData(FixtureSet.WrongRegister)]
    [InlineData(FixtureSet.GccCfProtection)]
    public void IndirectBranchCount_EqualsObjdump(string fixture)
    {
        string path = fx.Get(fixture);
        Assert.Equal(FixtureSet.ObjdumpIndirect(path).Count, Verify(path).IndirectBranches);
    }

    /// <summary>
    /// The shipped thunk file, assembled: every thunk global, hidden, a function of 17 bytes (return thunk: 2) in its own
    /// section, GCC's exact bytes, .note.GNU-stack present, and no SHSTK property (the generic body faults under CET
    /// shadow stacks, so nothing linked with it may be marked shadow-stack compatible).
    /// </summary>
    [Fact]
    public void ShippedThunkFile_HasGccLayoutHiddenSymbolsOwnSectionsAndNoShstk()
    {
        string path = fx.Get(FixtureSet.ThunksObject);
        var elf = ElfBits.Read(path);
        var thunks = elf.Symbols.Where(s => s.Name.StartsWith("__x86_", StringComparison.Ordinal)).ToList();
        Assert.Equal(31, thunks.Count);
        foreach (var s in thunks)
        {
            var section = elf.Sections[s.SectionIndex];
            Assert.Equal(".text." + s.Name, section.Name);
            Assert.Equal(0ul, s.Value);
            Assert.Equal((byte)((1 << 4) | 2), s.Info); // STB_GLOBAL, STT_FUNC
            Assert.Equal(2, elf.Data[s.EntryOffset + 5] & 3); // st_other: STV_HIDDEN
            Assert.Equal(6ul, section.Flags & 6); // SHF_ALLOC | SHF_EXECINSTR
            if (s.Name == "__x86_return_thunk")
            {
                Assert.Equal(2ul, s.Size);
                Assert.Equal(new byte[] { 0xc3, 0xcc }, elf.BytesAt(s.Name, 2));
                continue;
            }
            string reg = s.Name[(s.Name.LastIndexOf('_') + 1)..];
            Assert.Equal(17ul, s.Size);
            Assert.Equal(Convert.ToHexString(PatchTests.Expected(Vendor.Generic, reg, notrack: false)), Convert.ToHexString(elf.BytesAt(s.Name, 17)));
        }
        Assert.DoesNotContain(thunks, s => s.Name.EndsWith("_rsp", StringComparison.Ordinal));
        Assert.NotNull(elf[".note.GNU-stack"]);
        Assert.False(GnuPropertyShstk(elf), "native/retpoline_thunks.S must never claim SHSTK");

        // And a link whose user code asks for full CET is not marked shadow-stack compatible.
        var cet = Verify(fx.Get(FixtureSet.GccCfProtection));
        Assert.False(cet.Shstk);
        Assert.DoesNotContain(cet.FileDiagnostics, d => d.Code == Codes.ShstkWithGeneric);
    }

    /// <summary>GNU_PROPERTY_X86_FEATURE_1_AND bit 1 (SHSTK) in any .note.gnu.property of the file.</summary>
    static bool GnuPropertyShstk(ElfBits elf)
    {
        foreach (var s in elf.Sections.Where(s => s.Name == ".note.gnu.property"))
        {
            var d = elf.Data.AsSpan((int)s.Offset, (int)s.Size);
            // One note: namesz, descsz, type, "GNU\0", then properties (type, datasz, data, padded to 8).
            int descsz = BitConverter.ToInt32(d[4..]);
            var desc = d.Slice(16, descsz);
            for (int o = 0; o + 8 <= desc.Length;)
            {
                uint type = BitConverter.ToUInt32(desc[o..]);
                int size = BitConverter.ToInt32(desc[(o + 4)..]);
                if (type == 0xc0000002 && size >= 4 && (BitConverter.ToUInt32(desc[(o + 8)..]) & 2) != 0) return true;
                o += 8 + ((size + 7) & ~7);
            }
        }
        return false;
    }

    /// <summary>
    /// A link forced shadow-stack compatible (-z shstk) over the Generic thunks: one RPL0015 for the file, counting the
    /// 30 Generic register thunks and naming the first; patched to None (no mov/ret trick left) the marking is harmless.
    /// </summary>
    [Fact]
    public void ForcedShstkWithGenericThunks_IsOneRpl0015()
    {
        string path = fx.Get(FixtureSet.GccForcedShstk);
        var r = Verify(path);
        Assert.True(r.Shstk);
        Assert.True(r.Ibt);
        var generic = r.Thunks.Where(t => t.Form == ThunkForm.Generic).OrderBy(t => t.Address).ToList();
        Assert.Equal(30, generic.Count);
        var d = Assert.Single(r.FileDiagnostics);
        Assert.Equal((Codes.ShstkWithGeneric, Severity.Error, generic[0].Name, (ulong?)generic[0].Address), (d.Code, d.Severity, d.Function!, d.Address));
        Assert.Contains("30 thunk(s)", d.Message);
        Assert.True(r.HasErrors);

        string copy = fx.CopyOf(FixtureSet.GccForcedShstk, "shstk-none");
        Patching.Patcher.Patch(copy, Vendor.None);
        var patched = Verify(copy);
        Assert.True(patched.Shstk);
        Assert.Empty(patched.FileDiagnostics);
        Assert.Equal(FixtureSet.ExpectedOutput[FixtureSet.GccForcedShstk], FixtureSet.RunProgram(copy));
    }

    [Fact]
    public void ParallelAndSequentialVerify_Agree()
    {
        string path = fx.Get(FixtureSet.GxxVirtual);
        var a = Verifier.Verify(path, new VerifyOptions { Parallel = true });
        var b = Verifier.Verify(path, new VerifyOptions { Parallel = false });
        Assert.Equal(a.Findings, b.Findings);
        Assert.Equal(a.Thunks, b.Thunks);
        Assert.Equal(a.IndirectBranches, b.IndirectBranches);
    }

    [Fact]
    public void AllowRule_KeepsTheFindingListedButNotAnError()
    {
        string path = fx.Get(FixtureSet.Handwritten);
        var r = Verifier.Verify(path, new VerifyOptions { Allow = [new AllowRule("asm_*", "reviewed trampolines")] });
        var user = r.Findings.Where(f => f.Class == FindingClass.UserCode).ToList();
        Assert.Equal(4, user.Count);
        Assert.All(user, f => Assert.Equal("reviewed trampolines", f.AllowedBy));
        Assert.False(r.HasErrors);
    }
}
