using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Iced.Intel;
using Retpoline.Elf;
using Retpoline.Patching;
using Retpoline.X86;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Issue 5: call-site inlining. Every program here is compiled by the real compilers and linked with the shipped
/// native/retpoline_thunks.S; every expectation is exact bytes (the branch encodings assembled by gas), a program that
/// still runs and prints the right answer, or a verify verdict.
/// </summary>
public sealed class CallSiteTests(CallSiteTests.Programs programs) : IClassFixture<CallSiteTests.Programs>
{
    static readonly string[] Regs = [.. Registers.ThunkRegisters];

    // ---- encodings: literal bytes (independent of the assembler) --------------------------------------------------

    [Theory]
    [InlineData(Vendor.None, CallSiteKind.Call, "rax", false, 5, "0f 1f 00 ff d0")]
    [InlineData(Vendor.None, CallSiteKind.Call, "rdi", false, 5, "0f 1f 00 ff d7")]
    [InlineData(Vendor.None, CallSiteKind.Call, "r8", false, 6, "0f 1f 00 41 ff d0")]
    [InlineData(Vendor.None, CallSiteKind.Call, "r15", false, 5, "66 90 41 ff d7")]
    [InlineData(Vendor.None, CallSiteKind.Call, "rax", true, 5, "66 90 3e ff d0")]
    [InlineData(Vendor.None, CallSiteKind.Call, "r11", true, 6, "66 90 3e 41 ff d3")]
    [InlineData(Vendor.None, CallSiteKind.Call, "rbx", false, 6, "0f 1f 40 00 ff d3")]
    [InlineData(Vendor.None, CallSiteKind.Jump, "rax", false, 5, "ff e0 cc cc cc")]
    [InlineData(Vendor.None, CallSiteKind.Jump, "r12", false, 6, "41 ff e4 cc cc cc")]
    [InlineData(Vendor.None, CallSiteKind.Jump, "rdx", true, 5, "3e ff e2 cc cc")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "rax", false, 5, "0f ae e8 ff d0")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "rbp", false, 5, "0f ae e8 ff d5")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "r8", false, 6, "0f ae e8 41 ff d0")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "rsi", false, 6, "90 0f ae e8 ff d6")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "rcx", true, 6, "0f ae e8 3e ff d1")]
    [InlineData(Vendor.Amd, CallSiteKind.Jump, "r15", false, 6, "0f ae e8 41 ff e7")]
    [InlineData(Vendor.Amd, CallSiteKind.Jump, "rax", false, 6, "0f ae e8 ff e0 cc")]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "r8", false, 5, null)]
    [InlineData(Vendor.Amd, CallSiteKind.Call, "rax", true, 5, null)]
    [InlineData(Vendor.Amd, CallSiteKind.Jump, "r9", true, 6, null)]
    [InlineData(Vendor.Generic, CallSiteKind.Call, "rax", false, 5, null)]
    public void Encoding_is_exact(Vendor vendor, CallSiteKind kind, string reg, bool notrack, int length, string? expected)
    {
        var bytes = CallSiteEncoding.Encode(vendor, kind, Registers.Number(reg), notrack, length);
        Assert.Equal(expected, bytes is null ? null : CallSiteEncoding.Hex(bytes));
        if (bytes is null) return;
        // One instruction of padding at most, and the branch where BranchOffset says.
        var decoded = Decode(bytes);
        int at = CallSiteEncoding.BranchOffset(vendor, kind, Registers.Number(reg), notrack, length);
        var branch = decoded.Single(i => i.FlowControl is FlowControl.IndirectCall or FlowControl.IndirectBranch);
        Assert.Equal((ulong)at, branch.IP);
        if (kind == CallSiteKind.Call)
        {
            Assert.Equal((ulong)length, branch.IP + (ulong)branch.Length); // the call is last: same return address as the thunk call
            Assert.True(decoded.Count(i => i.Mnemonic == Mnemonic.Nop) <= 1);
        }
        else Assert.All(bytes.AsSpan(at + branch.Length).ToArray(), b => Assert.Equal(0xcc, b));
    }

    // ---- every register × {call, jmp, cs call, cs jmp} × {plain, notrack thunk} × {None, Amd}, from a real link -----

    [Theory]
    [InlineData(Vendor.None)]
    [InlineData(Vendor.Amd)]
    public void Every_register_and_form_gets_the_exact_bytes_and_still_runs(Vendor vendor)
    {
        string file = programs.Copy("sites", $"sites-{vendor}");
        var before = File.ReadAllBytes(file);
        var result = Patcher.Patch(file, vendor, callSites: CallSiteMode.Inline);
        Assert.True(result.Written);

        var elf = ElfFile.Load(file, wholeFile: true);
        var original = ElfFile.Parse("original", before);
        var expected = programs.ExpectedSites(vendor);
        int inlined = 0;
        foreach (var site in programs.AsmSites)
        {
            ulong address = Symbol(elf, site.Label);
            var actual = SiteBytes(elf, address, site.Length);
            var want = expected[site.Label] ?? SiteBytes(original, address, site.Length); // null: keeps calling the thunk
            Assert.True(want.AsSpan().SequenceEqual(actual), $"{site.Label} ({site}): expected {CallSiteEncoding.Hex(want)}, got {CallSiteEncoding.Hex(actual)}");
            if (expected[site.Label] is not null) inlined++;
        }
        // main's own call to printf (through the rax thunk under -fno-plt) is a site too; count run_all's separately.
        var asmAddresses = programs.AsmSites.Select(s => Symbol(elf, s.Label)).ToHashSet();
        Assert.Equal(inlined, result.Sites.Count(s => asmAddresses.Contains(s.Address)));
        Assert.Equal(result.SitesInlined, result.Sites.Count);
        // None inlines all 120; Amd only the forms that fit (5-byte rax–rdi plain; 6-byte everything but r8–r15 notrack).
        Assert.Equal(vendor == Vendor.None ? 120 : 7 * 2 + 7 * 2 * 2 + 8 * 2, inlined);
        // The conditional jump to the thunk is untouched, and goes through the patched thunk.
        ulong cond = Symbol(elf, "cond_site");
        Assert.Equal(SiteBytes(original, cond, 6), SiteBytes(elf, cond, 6));
        Assert.True(result.SitesThroughThunk >= 1);

        Assert.Equal(programs.AsmExpectedOutput, programs.RunProgram(file));
        var report = Verifier.Verify(file);
        Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.Equal(result.SitesInlined, report.Findings.Count(f => f.Class == FindingClass.PatchedSite));
        Assert.DoesNotContain(report.Findings, f => f.Class == FindingClass.UserCode);
    }

    [Fact]
    public void Record_lists_every_site_with_its_original_bytes()
    {
        string file = programs.Copy("sites", "sites-record");
        var before = ElfFile.Parse("original", File.ReadAllBytes(file));
        Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        var elf = ElfFile.Load(file, wholeFile: true);
        var record = SiteRecord.Read(elf, out var error);
        Assert.Null(error);
        Assert.NotNull(record!.Section);
        Assert.Equal(0UL, record.Section!.Flags & ElfSection.SHF_ALLOC);
        Assert.Equal(120, record.Entries.Count(e => programs.AsmSites.Any(s => Symbol(elf, s.Label) == e.Address)));
        foreach (var site in programs.AsmSites)
        {
            ulong address = Symbol(elf, site.Label);
            var e = Assert.Single(record.Entries, x => x.Address == address);
            Assert.Equal(site.Length, e.Length);
            Assert.Equal(site.Jump ? CallSiteKind.Jump : CallSiteKind.Call, e.Kind);
            Assert.Equal(site.Register, Registers.Name(e.Register));
            Assert.Equal(site.NoTrack, e.NoTrack);
            Assert.Equal(Vendor.None, e.Vendor);
            Assert.Equal(SiteBytes(before, address, site.Length), e.Original);
            Assert.Equal(Symbol(elf, (site.NoTrack ? "__x86_indirect_thunk_nt_" : "__x86_indirect_thunk_") + site.Register), e.Thunk);
        }
    }

    // ---- real C and C++ programs, gcc and clang-14 ------------------------------------------------------------------

    public static TheoryData<string, Vendor> CompiledPrograms()
    {
        var data = new TheoryData<string, Vendor>();
        foreach (var p in new[] { "c-gcc", "c-clang", "cpp-gcc", "cpp-clang" })
            foreach (var v in new[] { Vendor.None, Vendor.Amd })
                data.Add(p, v);
        return data;
    }

    [Theory]
    [MemberData(nameof(CompiledPrograms))]
    public void Compiled_programs_run_verify_and_restore_exactly(string program, Vendor vendor)
    {
        string file = programs.Copy(program, $"{program}-{vendor}");
        var original = File.ReadAllBytes(file);
        string expected = programs.ReferenceOutput(program);
        Assert.Equal(expected, programs.RunProgram(file));
        var sls = new VerifyOptions { HardenSls = true };
        int slsBefore = Verifier.Verify(file, sls).Diagnostics.Count(d => d.Code == Codes.SlsUnprotected);

        var result = Patcher.Patch(file, vendor, callSites: CallSiteMode.Inline);
        if (vendor == Vendor.Amd && program.EndsWith("clang"))
        {
            // Clang 14 calls only the r11 thunk, in 5 bytes (it has no -mindirect-branch-cs-prefix): 'lfence; call *%r11'
            // needs 6, so every site keeps calling the thunk, which is now 'lfence; jmp *%r11'.
            Assert.Equal(0, result.SitesInlined);
            Assert.True(result.SitesThroughThunk > 0);
        }
        else Assert.True(result.SitesInlined > 0, $"{program}: no call site was inlined");
        Assert.Equal(expected, programs.RunProgram(file));
        var report = Verifier.Verify(file);
        Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        var patched = report.Findings.Where(f => f.Class == FindingClass.PatchedSite).ToList();
        Assert.Equal(result.SitesInlined, patched.Count);
        Assert.All(patched, f => Assert.Contains($"vendor {vendor}", f.Detail));
        // GCC's -mharden-sls=all put int3 after each jump to a thunk; the inlined jumps keep that protection.
        Assert.Equal(slsBefore, Verifier.Verify(file, sls).Diagnostics.Count(d => d.Code == Codes.SlsUnprotected));

        // Generic restores every site and every thunk: the loaded bytes, and in fact the whole file, are the original's.
        var restore = Patcher.Patch(file, Vendor.Generic);
        Assert.True(restore.Written || result.SitesInlined == 0 && result.Changes.Count == 0);
        Assert.Equal(result.SitesInlined, restore.Sites.Count);
        var now = File.ReadAllBytes(file);
        Assert.Equal(LoadedBytes(original), LoadedBytes(now));
        Assert.True(original.AsSpan().SequenceEqual(now), "the file differs from the original after Generic");
        Assert.Equal(expected, programs.RunProgram(file));
    }

    [Theory]
    [InlineData("c-gcc")]
    [InlineData("cpp-clang")]
    [InlineData("sites")]
    public void Repatching_for_another_vendor_equals_patching_the_original(string program)
    {
        string direct = programs.Copy(program, $"{program}-direct");
        Patcher.Patch(direct, Vendor.None, callSites: CallSiteMode.Inline);

        string hop = programs.Copy(program, $"{program}-hop");
        Patcher.Patch(hop, Vendor.Amd, callSites: CallSiteMode.Inline);
        var amd = File.ReadAllBytes(hop);
        var second = Patcher.Patch(hop, Vendor.None, callSites: CallSiteMode.Inline);
        Assert.True(second.Written);
        Assert.True(File.ReadAllBytes(direct).AsSpan().SequenceEqual(File.ReadAllBytes(hop)), "Amd → None differs from None");
        Assert.Equal(programs.RunProgram(direct), programs.RunProgram(hop));

        // And back: None → Amd equals Amd from the original.
        Patcher.Patch(hop, Vendor.Amd, callSites: CallSiteMode.Inline);
        Assert.True(amd.AsSpan().SequenceEqual(File.ReadAllBytes(hop)), "None → Amd differs from Amd");
    }

    [Fact]
    public void Patching_twice_is_a_no_op_and_thunk_mode_restores_the_sites()
    {
        string file = programs.Copy("c-gcc", "c-gcc-twice");
        var original = File.ReadAllBytes(file);
        Assert.True(Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline).Written);
        var once = File.ReadAllBytes(file);
        var again = Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        Assert.False(again.Written);
        Assert.Empty(again.Sites);
        Assert.True(once.AsSpan().SequenceEqual(File.ReadAllBytes(file)));

        // --call-sites thunk with the same vendor: sites back to thunk calls, thunks stay None, record removed.
        var thunk = Patcher.Patch(file, Vendor.None);
        Assert.True(thunk.Written);
        Assert.All(thunk.Sites, s => Assert.Equal(Vendor.Generic, s.To));
        var elf = ElfFile.Load(file, wholeFile: true);
        Assert.Null(elf.FindSection(SiteRecord.SectionName));
        Assert.Equal(original.Length, elf.Data.Length);
        Assert.All(Verifier.Verify(file).Thunks.Where(t => t.Register != ""), t => Assert.Equal(ThunkForm.None, t.Form));
    }

    [Fact]
    public void Verify_reads_the_record_of_a_file_it_loads_sparsely()
    {
        // Files over 1 MiB are read section by section (ElfFile.ReadNeeded); the record must still be found.
        string file = programs.Copy("c-gcc-large", "c-gcc-large-inline");
        Assert.True(new FileInfo(file).Length > 2 << 20);
        var result = Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        Assert.True(result.SitesInlined > 0);
        var report = Verifier.Verify(file);
        Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.Equal(result.SitesInlined, report.Findings.Count(f => f.Class == FindingClass.PatchedSite));
        Assert.Equal(programs.ReferenceOutput("c-gcc"), programs.RunProgram(file));
    }

    [Fact]
    public void Dry_run_lists_the_sites_and_writes_nothing()
    {
        string file = programs.Copy("sites", "sites-dry");
        var before = File.ReadAllBytes(file);
        var result = Patcher.Patch(file, Vendor.None, dryRun: true, callSites: CallSiteMode.Inline);
        Assert.False(result.Written);
        var elf = ElfFile.Load(file, wholeFile: true);
        Assert.Equal(120, result.Sites.Count(x => programs.AsmSites.Any(s => Symbol(elf, s.Label) == x.Address))); // plus main's own
        Assert.All(result.Sites, s => Assert.NotEqual(s.OldBytes, s.NewBytes));
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(file)));
    }

    // ---- tampering ---------------------------------------------------------------------------------------------------

    [Fact]
    public void Verify_fails_and_patch_refuses_when_one_recorded_site_is_tampered_with()
    {
        string file = programs.Copy("c-gcc", "c-gcc-tampered");
        Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        var elf = ElfFile.Load(file, wholeFile: true);
        var e = SiteRecord.Read(elf, out _)!.Entries.First(x => x.Kind == CallSiteKind.Call && (x.Register & 7) != 1);
        // Same length, still an indirect call, but through another register: exactly what a record must not vouch for.
        var bytes = File.ReadAllBytes(file);
        long offset = elf.SectionAt(e.Address)!.OffsetOf(e.Address);
        bytes[offset + e.Length - 1] = (byte)((bytes[offset + e.Length - 1] & 0xf8) | 1); // ... ff d1: call *%rcx (or *%r9)
        File.WriteAllBytes(file, bytes);

        var report = Verifier.Verify(file);
        Assert.True(report.HasErrors);
        var d = Assert.Single(report.FileDiagnostics, x => x.Code == Codes.SiteTampered);
        Assert.Equal(e.Address, d.Address);
        Assert.False(string.IsNullOrEmpty(d.Function));
        Assert.Contains($"in function '{d.Function}'", d.Message);
        // The tampered branch is no longer allowed: it is an unprotected indirect call again.
        Assert.Contains(report.Findings, f => f.Class == FindingClass.UserCode && f.Address >= e.Address && f.Address < e.Address + (ulong)e.Length);

        var ex = Assert.Throws<RetpolineException>(() => Patcher.Patch(file, Vendor.Generic));
        Assert.Equal(Codes.SiteTampered, ex.Code);
        Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(file)), "the file changed although patch refused");
    }

    [Fact]
    public void A_corrupt_record_is_an_error_and_patch_refuses()
    {
        string file = programs.Copy("c-gcc", "c-gcc-corrupt");
        Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        var elf = ElfFile.Load(file, wholeFile: true);
        var section = elf.FindSection(SiteRecord.SectionName)!;
        var bytes = File.ReadAllBytes(file);
        // Point the first entry's original bytes at a different target: no longer a call to its thunk.
        bytes[section.FileOffset + SiteRecord.HeaderSize + 16 + 1] ^= 0x40;
        File.WriteAllBytes(file, bytes);

        var report = Verifier.Verify(file);
        Assert.Contains(report.FileDiagnostics, x => x.Code == Codes.SiteRecordMalformed);
        Assert.True(report.HasErrors);
        var ex = Assert.Throws<RetpolineException>(() => Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline));
        Assert.Equal(Codes.SiteRecordMalformed, ex.Code);
        Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(file)));

        bytes[section.FileOffset] = (byte)'X'; // bad magic
        File.WriteAllBytes(file, bytes);
        Assert.Contains(Verifier.Verify(file).FileDiagnostics, x => x.Code == Codes.SiteRecordMalformed && x.Message.Contains("magic"));
    }

    [Fact]
    public void Object_files_cannot_be_inlined()
    {
        string obj = programs.Object;
        var before = File.ReadAllBytes(obj);
        var ex = Assert.Throws<RetpolineException>(() => Patcher.Patch(obj, Vendor.None, callSites: CallSiteMode.Inline));
        Assert.Equal(Codes.PatchRefused, ex.Code);
        Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(obj)));
    }

    [Fact]
    public void The_record_is_appended_without_moving_a_loaded_byte_and_binutils_read_it()
    {
        string file = programs.Copy("cpp-gcc", "cpp-gcc-layout");
        var original = File.ReadAllBytes(file);
        var result = Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline);
        var patched = File.ReadAllBytes(file);
        var a = LoadSegments(original);
        var b = LoadSegments(patched);
        Assert.Equal(a.Select(s => (s.offset, s.vaddr, s.filesz)), b.Select(s => (s.offset, s.vaddr, s.filesz)));
        static bool Kept(int i) => i is (< 40 or >= 48) and (< 60 or >= 62); // all but e_shoff and e_shnum
        Assert.Equal(original.Take(64).Where((_, i) => Kept(i)), patched.Take(64).Where((_, i) => Kept(i)));
        // Every loaded byte is the original's but for the sites and thunks the result lists (and, in the first PT_LOAD,
        // which maps the ELF header itself, e_shoff and e_shnum).
        var simulated = original.ToArray();
        foreach (var site in result.Sites) site.NewBytes.CopyTo(simulated, site.FileOffset);
        foreach (var thunk in result.Changes) thunk.NewBytes.CopyTo(simulated, thunk.FileOffset);
        patched.AsSpan(40, 8).CopyTo(simulated.AsSpan(40));
        patched.AsSpan(60, 2).CopyTo(simulated.AsSpan(60));
        Assert.True(result.Sites.Count > 0 && result.Changes.Count > 0);
        Assert.Equal(LoadedBytes(simulated), LoadedBytes(patched));

        var (code, stdout, stderr) = Native.Run("readelf", ["-W", "-S", file]);
        Assert.True(code == 0 && stderr.Length == 0, stderr);
        Assert.Contains(SiteRecord.SectionName, stdout);
        (code, _, stderr) = Native.Run("objdump", ["-d", file]);
        Assert.True(code == 0 && !stderr.Contains("warning", StringComparison.OrdinalIgnoreCase), stderr);
        // strip still produces a runnable file (it rewrites the layout; the record must survive or vanish cleanly).
        string stripped = programs.Copy("cpp-gcc", "cpp-gcc-stripped");
        File.Copy(file, stripped, overwrite: true);
        (code, _, stderr) = Native.Run("strip", [stripped]);
        Assert.True(code == 0, stderr);
        Assert.NotNull(ElfFile.Load(stripped).FindSection(SiteRecord.SectionName)); // strip keeps it (and moves it)
        Assert.Equal(programs.ReferenceOutput("cpp-gcc"), programs.RunProgram(stripped));
        // Without symbols the record still names each site's thunk: verify allows the sites, Generic restores them.
        var report = Verifier.Verify(stripped);
        Assert.DoesNotContain(report.FileDiagnostics, d => d.Code is Codes.SiteTampered or Codes.SiteRecordMalformed);
        Assert.Equal(SiteRecord.Read(ElfFile.Load(file), out _)!.Entries.Count, report.Findings.Count(f => f.Class == FindingClass.PatchedSite));
        var restored = Patcher.Patch(stripped, Vendor.Generic);
        Assert.True(restored.Written);
        Assert.Equal(programs.ReferenceOutput("cpp-gcc"), programs.RunProgram(stripped));
        Assert.DoesNotContain(Verifier.Verify(stripped).Findings, f => f.Class == FindingClass.PatchedSite);
        Assert.False(Patcher.Patch(stripped, Vendor.Generic).Written); // the emptied record stays where strip put it
        // A stripped file has no thunk symbols and its emptied record names no thunk: nothing to inline, still runs.
        var again = Patcher.Patch(stripped, Vendor.None, callSites: CallSiteMode.Inline);
        Assert.Equal(0, again.SitesInlined); // no thunk symbols left, and the empty record names no thunk
        Assert.Equal(programs.ReferenceOutput("cpp-gcc"), programs.RunProgram(stripped));
    }

    [Fact]
    public void A_record_another_tool_moved_is_updated_where_it_is_or_moved_to_the_end()
    {
        string file = programs.Copy("sites", "sites-objcopy");
        var original = File.ReadAllBytes(file);
        int inlinedNone = Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline).SitesInlined;
        var (code, _, stderr) = Native.Run("objcopy", [file]); // rewrites the layout: the record is no longer where we put it
        Assert.True(code == 0, stderr);
        var moved = ElfFile.Load(file).FindSection(SiteRecord.SectionName);
        Assert.NotNull(moved);

        var amd = Patcher.Patch(file, Vendor.Amd, callSites: CallSiteMode.Inline); // fewer sites: written in place
        Assert.True(amd.SitesInlined < inlinedNone);
        Assert.Equal(moved!.FileOffset, ElfFile.Load(file).FindSection(SiteRecord.SectionName)!.FileOffset);
        Assert.Equal(programs.AsmExpectedOutput, programs.RunProgram(file));
        Assert.False(Verifier.Verify(file).HasErrors);

        var none = Patcher.Patch(file, Vendor.None, callSites: CallSiteMode.Inline); // more: the record moves to the end
        Assert.Equal(inlinedNone, none.SitesInlined);
        var grown = ElfFile.Load(file, wholeFile: true).FindSection(SiteRecord.SectionName)!;
        Assert.NotEqual(moved.FileOffset, grown.FileOffset);
        Assert.Equal(programs.AsmExpectedOutput, programs.RunProgram(file));
        var report = Verifier.Verify(file);
        Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.Equal(inlinedNone, report.Findings.Count(f => f.Class == FindingClass.PatchedSite));

        Patcher.Patch(file, Vendor.Generic);
        static byte[] Masked(byte[] d) { var c = d.ToArray(); c.AsSpan(40, 8).Clear(); c.AsSpan(60, 4).Clear(); return c; }
        Assert.Equal(LoadedBytes(Masked(original)), LoadedBytes(Masked(File.ReadAllBytes(file))));
        Assert.Equal(programs.AsmExpectedOutput, programs.RunProgram(file));
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    static List<Instruction> Decode(byte[] bytes)
    {
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(bytes), 0);
        var list = new List<Instruction>();
        while (decoder.IP < (ulong)bytes.Length) { decoder.Decode(out var i); list.Add(i); }
        return list;
    }

    static ulong Symbol(ElfFile elf, string name) => elf.Symbols.First(s => s.Name == name && s.IsDefined).Value;

    static byte[] SiteBytes(ElfFile elf, ulong address, int length)
    {
        var s = elf.SectionAt(address)!;
        return elf.Data.AsSpan((int)s.OffsetOf(address), length).ToArray();
    }

    static List<(long offset, ulong vaddr, long filesz)> LoadSegments(byte[] d)
    {
        var list = new List<(long, ulong, long)>();
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(d.AsSpan(32));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(d.AsSpan(56));
        for (int i = 0; i < phnum; i++)
        {
            var p = d.AsSpan((int)phoff + i * 56, 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(p) != 1) continue; // PT_LOAD
            list.Add(((long)BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), BinaryPrimitives.ReadUInt64LittleEndian(p[16..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(p[32..])));
        }
        return list;
    }

    /// <summary>Every PT_LOAD segment's file bytes, concatenated with its address.</summary>
    static string LoadedBytes(byte[] d)
        => string.Join("|", LoadSegments(d).Select(s => $"{s.vaddr:x}:{Convert.ToHexString(d, (int)s.offset, (int)s.filesz)}"));

    /// <summary>One direct branch to a thunk in the generated assembly program.</summary>
    public sealed record AsmSite(string Label, string Register, bool Jump, bool Cs, bool NoTrack)
    {
        public int Length => Cs ? 6 : 5;
        public string Thunk => (NoTrack ? "__x86_indirect_thunk_nt_" : "__x86_indirect_thunk_") + Register;
        public override string ToString() => $"{(Cs ? "cs " : "")}{(Jump ? "jmp" : "call")} {Thunk}";
    }

    /// <summary>Builds every test program once: the assembly program covering every site form, C and C++ with gcc and clang-14.</summary>
    public sealed class Programs : IDisposable
    {
        public string Dir { get; } = Directory.CreateTempSubdirectory("rpl-sites-").FullName;
        public List<AsmSite> AsmSites { get; } = [];
        public string AsmExpectedOutput => $"{AsmSites.Count + 1}\n";
        public string Object { get; }
        readonly Dictionary<string, string> built = [];
        readonly Dictionary<string, string> references = [];
        readonly Dictionary<Vendor, Dictionary<string, byte[]?>> expected = [];
        readonly Lock gate = new();

        public Programs()
        {
            string thunks = Path.Combine(Native.RepoRoot, "native", "retpoline_thunks.S");
            Assert.True(File.Exists(thunks), $"missing {thunks}");

            // The assembly program: each site is reached with its register holding a real target, so running it
            // proves every inlined form branches where the thunk would have.
            string asm = Path.Combine(Dir, "sites_asm.S");
            File.WriteAllText(asm, AsmProgram());
            string main = Path.Combine(Dir, "sites_main.c");
            File.WriteAllText(main, "#include <stdio.h>\nint run_all(void);\nint main(void) { printf(\"%d\\n\", run_all()); return 0; }\n");
            built["sites"] = Native.Build("gcc", ["-O2", "-fno-plt", "-Wl,-z,now", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", main, asm, thunks],
                Path.Combine(Dir, "sites"));

            string c = Path.Combine(Dir, "prog.c"), cpp = Path.Combine(Dir, "prog.cpp");
            File.WriteAllText(c, CProgram);
            File.WriteAllText(cpp, CppProgram);
            string[] gcc = ["-O2", "-fno-plt", "-Wl,-z,now", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-mindirect-branch-cs-prefix",
                "-mfunction-return=keep", "-fcf-protection=branch", "-mharden-sls=all"];
            // lld's retpoline PLT: clang emits C++ runtime calls (_Unwind_Resume, …) through the PLT even with -fno-plt.
            string[] clang = ["-O2", "-fno-plt", "-Wl,-z,now", "-mretpoline-external-thunk", "-fuse-ld=lld", "-Wl,-z,retpolineplt"];
            built["c-gcc"] = Native.Build("gcc", [.. gcc, c, thunks], Path.Combine(Dir, "c-gcc"));
            string big = Path.Combine(Dir, "big.c");
            File.WriteAllText(big, "const char big_table[3 << 20] = { 1 };\n");
            built["c-gcc-large"] = Native.Build("gcc", [.. gcc, c, big, thunks], Path.Combine(Dir, "c-gcc-large"));
            built["c-clang"] = Native.Build("clang-14", [.. clang, c, thunks], Path.Combine(Dir, "c-clang"));
            built["cpp-gcc"] = Native.Build("g++", [.. gcc, cpp, thunks], Path.Combine(Dir, "cpp-gcc"));
            built["cpp-clang"] = Native.Build("clang++-14", [.. clang, cpp, thunks], Path.Combine(Dir, "cpp-clang"));
            // References: the same sources without any mitigation.
            references["c"] = RunProgram(Native.Build("gcc", ["-O2", c], Path.Combine(Dir, "c-plain")));
            references["cpp"] = RunProgram(Native.Build("g++", ["-O2", cpp], Path.Combine(Dir, "cpp-plain")));
            Object = Path.Combine(Dir, "prog.o");
            Native.Build("gcc", ["-c", "-O2", .. gcc[3..], c], Object);

            foreach (var v in new[] { Vendor.None, Vendor.Amd }) expected[v] = AssembleExpected(v);
        }

        public string ReferenceOutput(string program) => program == "sites" ? AsmExpectedOutput : references[program.StartsWith("cpp") ? "cpp" : "c"];

        public Dictionary<string, byte[]?> ExpectedSites(Vendor v) => expected[v];

        public string Copy(string program, string name)
        {
            string to = Path.Combine(Dir, name);
            lock (gate) File.Copy(built[program], to, overwrite: true);
            return to;
        }

        public string RunProgram(string file)
        {
            var (code, stdout, stderr) = Native.Run(file, []);
            Assert.True(code == 0, $"{file} exited {code}: {stderr}");
            return stdout;
        }

        string AsmProgram()
        {
            var s = new StringBuilder();
            s.AppendLine("\t.text\n\t.globl run_all\n\t.type run_all,@function\nrun_all:");
            s.AppendLine("\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n\tsub $8,%rsp");
            s.AppendLine("\tmovl $0,counter(%rip)");
            int n = 0;
            foreach (var reg in Regs)
                foreach (bool notrack in new[] { false, true })
                    foreach (bool jump in new[] { false, true })
                        foreach (bool cs in new[] { false, true })
                        {
                            var site = new AsmSite($"site_{n++}", reg, jump, cs, notrack);
                            AsmSites.Add(site);
                            if (jump) s.AppendLine($"\tlea 1f(%rip),%{reg}");
                            else s.AppendLine($"\tlea target(%rip),%{reg}");
                            s.AppendLine($"{site.Label}:");
                            if (cs) s.AppendLine("\t.byte 0x2e");
                            s.AppendLine($"\t{(jump ? "jmp" : "call")} {site.Thunk}");
                            if (jump) s.AppendLine("\tud2\n1:\tincl counter(%rip)");
                        }
            // A conditional jump to a thunk: never a site, it keeps going through the (patched) thunk.
            s.AppendLine("\tlea 2f(%rip),%rax\n\txor %ecx,%ecx\ncond_site:\n\tjz __x86_indirect_thunk_rax\n\tud2\n2:\tincl counter(%rip)");
            s.AppendLine("\tmov counter(%rip),%eax\n\tadd $8,%rsp\n\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n\tret");
            s.AppendLine("\t.size run_all,.-run_all");
            s.AppendLine("\t.type target,@function\ntarget:\n\tincl counter(%rip)\n\tret\n\t.size target,.-target");
            s.AppendLine("\t.data\n\t.p2align 2\ncounter:\t.long 0\n\t.section .note.GNU-stack,\"\",@progbits");
            return s.ToString();
        }

        static readonly string[] NopBytes = ["", "0x90", "0x66,0x90", "0x0f,0x1f,0x00", "0x0f,0x1f,0x40,0x00"];

        /// <summary>
        /// The expected replacement of every site, assembled by gas from instruction text (`notrack call *%r8`,
        /// `lfence`, …) so the encodings are checked against the assembler, not against our own tables. The padding is
        /// the one multi-byte NOP of the remaining length (calls) or int3 (jumps). Null: the form does not fit.
        /// </summary>
        Dictionary<string, byte[]?> AssembleExpected(Vendor vendor)
        {
            var s = new StringBuilder("\t.text\n");
            var fits = new Dictionary<string, bool>();
            foreach (var site in AsmSites)
            {
                int branch = 2 + (Registers.Number(site.Register) >= 8 ? 1 : 0) + (site.NoTrack ? 1 : 0);
                int form = branch + (vendor == Vendor.Amd ? 3 : 0);
                fits[site.Label] = form <= site.Length;
                if (!fits[site.Label]) continue;
                s.AppendLine($"exp_{site.Label}:");
                string insn = $"{(site.NoTrack ? "notrack " : "")}{(site.Jump ? "jmp" : "call")} *%{site.Register}";
                if (!site.Jump && site.Length > form) s.AppendLine($"\t.byte {NopBytes[site.Length - form]}");
                if (vendor == Vendor.Amd) s.AppendLine("\tlfence");
                s.AppendLine($"\t{insn}");
                if (site.Jump && site.Length > form) s.AppendLine($"\t.fill {site.Length - form},1,0xcc");
            }
            s.AppendLine("exp_end:");
            string src = Path.Combine(Dir, $"expected-{vendor}.s"), obj = Path.ChangeExtension(src, ".o");
            File.WriteAllText(src, s.ToString());
            var (code, _, stderr) = Native.Run("as", ["--64", "-o", obj, src]);
            Assert.True(code == 0, stderr);
            var elf = ElfFile.Load(obj, wholeFile: true);
            var text = elf.Bytes(elf.FindSection(".text")!);
            var result = new Dictionary<string, byte[]?>();
            foreach (var site in AsmSites)
            {
                if (!fits[site.Label]) { result[site.Label] = null; continue; }
                int at = (int)Symbol(elf, $"exp_{site.Label}");
                result[site.Label] = text.Slice(at, site.Length).ToArray();
            }
            Assert.Equal((ulong)AsmSites.Where(x => fits[x.Label]).Sum(x => x.Length), Symbol(elf, "exp_end"));
            return result;
        }

        public void Dispose()
        {
            try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Calls through function pointers (call sites), tail calls (jmp sites), a dense switch (a jump table: with
    /// -fcf-protection GCC jumps through the notrack thunk), and with GCC one call pinned to each of the 15 registers
    /// (r8–r15 get the cs-prefixed 6-byte sites from -mindirect-branch-cs-prefix).
    /// </summary>
    const string CProgram = """
        #include <stdio.h>
        typedef long (*op_t)(long, long);
        static long add(long a, long b) { return a + b; }
        static long sub(long a, long b) { return a - b; }
        static long mul(long a, long b) { return a * b; }
        static long xr(long a, long b) { return a ^ b; }
        static long shl(long a, long b) { return a << (b & 7); }
        op_t volatile ops[] = { add, sub, mul, xr, shl };

        __attribute__((noinline)) long apply(op_t f, long a, long b) { return f(a, b) + 1; }
        __attribute__((noinline)) long tail(op_t f, long a, long b) { return f(a, b); }

        __attribute__((noinline)) long interp(const unsigned char *code, int n, long acc)
        {
            for (int i = 0; i < n; i++)
                switch (code[i]) {
                case 0: acc += 3; break;
                case 1: acc *= 5; break;
                case 2: acc -= 7; break;
                case 3: acc ^= 0x55; break;
                case 4: acc = apply(ops[acc & 3], acc, 9); break;
                case 5: acc = tail(ops[(acc >> 1) & 3], acc, 4); break;
                case 6: acc += i; break;
                case 7: acc = acc * 3 + 1; break;
                case 8: acc >>= 1; break;
                case 9: acc |= 0x100; break;
                default: acc--; break;
                }
            return acc;
        }

        #ifndef __clang__
        #define PIN(r) __attribute__((noinline)) long pin_##r(op_t f, long a) { register op_t p asm(#r) = f; asm volatile("" : "+r"(p)); return p(a, 3) + 1; }
        PIN(rax) PIN(rbx) PIN(rcx) PIN(rdx) PIN(rsi) PIN(rdi) PIN(rbp) PIN(r8) PIN(r9) PIN(r10) PIN(r11) PIN(r12) PIN(r13) PIN(r14) PIN(r15)
        static long (*const pins[])(op_t, long) = { pin_rax, pin_rbx, pin_rcx, pin_rdx, pin_rsi, pin_rdi, pin_rbp, pin_r8, pin_r9, pin_r10, pin_r11, pin_r12, pin_r13, pin_r14, pin_r15 };
        #endif

        int main(void)
        {
            unsigned char code[64];
            for (int i = 0; i < 64; i++) code[i] = (unsigned char)((i * 7 + 3) % 12);
            long acc = 1;
            for (int round = 0; round < 200; round++) acc = interp(code, 64, acc) & 0xffffffff;
            long pinned = 0;
        #ifndef __clang__
            for (int i = 0; i < 15; i++) pinned += pins[i](ops[i % 5], i + 2);
        #else
            for (int i = 0; i < 15; i++) pinned += apply(ops[i % 5], i + 2, 3);
        #endif
            printf("%ld %ld\n", acc, pinned);
            return 0;
        }
        """;

    /// <summary>Virtual calls, std::function, a comparator through a pointer, a switch.</summary>
    const string CppProgram = """
        #include <algorithm>
        #include <cstdio>
        #include <functional>
        #include <memory>
        #include <vector>
        struct Shape { virtual ~Shape() = default; virtual long area() const = 0; virtual long sides() const { return 0; } };
        struct Sq : Shape { long s; explicit Sq(long s) : s(s) {} long area() const override { return s * s; } long sides() const override { return 4; } };
        struct Tri : Shape { long b, h; Tri(long b, long h) : b(b), h(h) {} long area() const override { return b * h / 2; } long sides() const override { return 3; } };
        struct Circ : Shape { long r; explicit Circ(long r) : r(r) {} long area() const override { return 3 * r * r; } };
        static bool desc(long a, long b) { return a > b; }
        __attribute__((noinline)) long step(int k, long v) {
            switch (k) { case 0: return v + 1; case 1: return v * 2; case 2: return v - 3; case 3: return v ^ 7;
                         case 4: return v + 11; case 5: return v * 3; case 6: return v - 1; case 7: return v | 1; default: return v; }
        }
        int main() {
            std::vector<std::unique_ptr<Shape>> shapes;
            for (long i = 1; i <= 30; i++) {
                if (i % 3 == 0) shapes.push_back(std::make_unique<Sq>(i));
                else if (i % 3 == 1) shapes.push_back(std::make_unique<Tri>(i, i + 1));
                else shapes.push_back(std::make_unique<Circ>(i));
            }
            long total = 0, sides = 0;
            for (auto& s : shapes) { total += s->area(); sides += s->sides(); }
            std::vector<std::function<long(long)>> fs = { [](long x) { return x + 1; }, [](long x) { return x * 2; }, [&](long x) { return x + total % 13; } };
            long acc = 1;
            for (int i = 0; i < 300; i++) acc = step(i % 9, fs[i % 3](acc)) % 1000003;
            std::vector<long> v;
            for (long i = 0; i < 50; i++) v.push_back((i * 37) % 101);
            bool (*cmp)(long, long) = desc;
            std::sort(v.begin(), v.end(), cmp);
            std::printf("%ld %ld %ld %ld\n", total, sides, acc, v[0] * 1000 + v[49]);
            return 0;
        }
        """;

    /// <summary>Compilers, processes and the repository (ProcessStartInfo.ArgumentList only: no shell quoting).</summary>
    internal static class Native
    {
        static string? root;

        /// <summary>
        /// The repository: $RETPOLINE_REPO_ROOT, else the test assembly's RepoRoot metadata, else the first directory
        /// above the test assembly or the working directory that holds Retpoline.slnx (a build with --artifacts-path
        /// outside the repository needs one of the first two).
        /// </summary>
        public static string RepoRoot => root ??= FindRoot();

        static string FindRoot()
        {
            if (Environment.GetEnvironmentVariable("RETPOLINE_REPO_ROOT") is { Length: > 0 } env) return env;
            // <AssemblyMetadata Include="RepoRoot" Value="..." /> in the test project, when it has one.
            foreach (var m in typeof(CallSiteTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false).Cast<System.Reflection.AssemblyMetadataAttribute>())
                if (m.Key == "RepoRoot" && m.Value is { Length: > 0 } v && File.Exists(Path.Combine(v, "Retpoline.slnx"))) return v;
            foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
                for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                    if (File.Exists(Path.Combine(d.FullName, "Retpoline.slnx"))) return d.FullName;
            throw new InvalidOperationException("cannot find the repository (Retpoline.slnx) above the test assembly; set RETPOLINE_REPO_ROOT");
        }

        public static string Build(string compiler, IEnumerable<string> args, string output)
        {
            var (code, _, stderr) = Run(compiler, [.. args, "-o", output]);
            Assert.True(code == 0, $"{compiler} failed ({code}): {stderr}");
            return output;
        }

        public static (int code, string stdout, string stderr) Run(string file, IEnumerable<string> args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(120_000)) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{file} did not finish in 120 s"); }
            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
