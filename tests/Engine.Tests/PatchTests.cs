using Retpoline.Patching;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Patch on copies of the compiled fixtures: exact bytes for every register and vendor (built here from DESIGN.md §3,
/// not with the engine's encoder), programs that still run, byte-exact round trips, refusals that leave the file alone.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes, symlinks, root: the product is Linux-only
public sealed class PatchTests(FixtureSet fx)
{
    public static TheoryData<Vendor> Vendors => new() { Vendor.Generic, Vendor.Amd, Vendor.None };

    /// <summary>
    /// The body patch must leave in a 17-byte thunk (or <paramref name="length"/>), from DESIGN.md §3:
    /// Generic = GCC's layout; Amd = lfence; jmp *%reg; None = jmp *%reg; the rest int3. The _nt_ thunks serve
    /// `notrack` branches, so their Amd/None jump keeps the notrack prefix (3e): under IBT a jump-table target has no
    /// endbr64.
    /// </summary>
    public static byte[] Expected(Vendor vendor, string reg, bool notrack, int length = 17)
    {
        int n = FixtureSet.RegisterNumber(reg);
        var body = Enumerable.Repeat((byte)0xcc, length).ToArray();
        byte[] jmp = n >= 8 ? [0x41, 0xff, (byte)(0xe0 + (n & 7))] : [0xff, (byte)(0xe0 + n)];
        if (notrack) jmp = [0x3e, .. jmp];
        byte[] form = vendor switch
        {
            Vendor.Generic => [0xe8, 0x07, 0, 0, 0, 0xf3, 0x90, 0x0f, 0xae, 0xe8, 0xeb, 0xf9, (byte)(n >= 8 ? 0x4c : 0x48), 0x89, (byte)(0x04 | (n & 7) << 3), 0x24, 0xc3],
            Vendor.Amd => [0x0f, 0xae, 0xe8, .. jmp],
            _ => jmp,
        };
        form.CopyTo(body, 0);
        return body;
    }

    static IEnumerable<(string name, string reg, bool notrack)> RegisterThunks()
        => FixtureSet.Registers.SelectMany(r => new[] { ("__x86_indirect_thunk_" + r, r, false), ("__x86_indirect_thunk_nt_" + r, r, true) });

    static ThunkForm FormOf(Vendor v) => v switch { Vendor.Amd => ThunkForm.Amd, Vendor.None => ThunkForm.None, _ => ThunkForm.Generic };

    /// <summary>
    /// The build's post-link step: PatchThenVerify reports and writes what a separate patch and verify do. Without a
    /// write it verifies the file it parsed; after a write (Amd) it reads the file back, so the report shows the new
    /// forms, and the bytes written are the bytes a plain patch writes.
    /// </summary>
    [Theory]
    [InlineData(FixtureSet.GccExeNoPlt)]
    [InlineData(FixtureSet.GccLib)]
    [InlineData(FixtureSet.GccLarge)] // > 1 MiB: planned on verify's partial read, the whole file read only to write
    public void PatchThenVerify_reports_exactly_what_patch_and_verify_report(string fixture)
    {
        string combined = fx.CopyOf(fixture, "ptv-combined"), separate = fx.CopyOf(fixture, "ptv-separate");
        foreach (var vendor in new[] { Vendor.Generic, Vendor.Amd, Vendor.Amd, Vendor.Generic })
        {
            var (patch, report, _, _) = Patcher.PatchThenVerify(combined, vendor, CallSiteMode.Thunk, new VerifyOptions());
            var expectedPatch = Patcher.Patch(separate, vendor);
            var expectedReport = Verifier.Verify(separate);
            Assert.Equal(File.ReadAllBytes(separate), File.ReadAllBytes(combined));
            Assert.Equal((expectedPatch.Changes.Count, expectedPatch.Unchanged, expectedPatch.Written), (patch.Changes.Count, patch.Unchanged, patch.Written));
            Assert.Equal(expectedReport.Thunks.Select(t => (t.Name, t.Form, t.DirectReferences)), report.Thunks.Select(t => (t.Name, t.Form, t.DirectReferences)));
            Assert.Equal(expectedReport.Findings.Select(f => (f.Class, f.Function, f.Address, f.Instruction)), report.Findings.Select(f => (f.Class, f.Function, f.Address, f.Instruction)));
            Assert.Equal(expectedReport.Diagnostics.Select(d => d.Message), report.Diagnostics.Select(d => d.Message));
            Assert.All(report.Thunks.Where(t => t.Register.Length > 0), t => Assert.Equal(FormOf(vendor), t.Form));
        }
    }

    /// <summary>All 15 registers (and their _nt_ twins) × every vendor: exact bytes, exact offsets, nothing else touched.</summary>
    [Theory]
    [MemberData(nameof(Vendors))]
    public void EveryRegister_EveryVendor_ExactBytes(Vendor vendor)
    {
        foreach (var fixture in new[] { FixtureSet.GccExeNoPlt, FixtureSet.ThunksObject })
        {
            string path = fx.CopyOf(fixture, $"bytes-{vendor}");
            byte[] before = File.ReadAllBytes(path);
            var original = new ElfBits(before);
            var result = Patcher.Patch(path, vendor);
            byte[] after = File.ReadAllBytes(path);
            var patched = new ElfBits(after);

            var changed = new bool[after.Length];
            foreach (var (name, reg, notrack) in RegisterThunks())
            {
                var sym = original.SymbolNamed(name);
                long offset = original.FileOffset(sym.SectionIndex, sym.Value);
                Assert.True(Expected(vendor, reg, notrack).AsSpan().SequenceEqual(after.AsSpan((int)offset, 17)),
                    $"{fixture} {name} under {vendor}: {Convert.ToHexString(after, (int)offset, 17)}, expected {Convert.ToHexString(Expected(vendor, reg, notrack))}");
                Array.Fill(changed, true, (int)offset, 17);
                if (vendor != Vendor.Generic)
                {
                    var change = Assert.Single(result.Changes, c => c.Name == name);
                    Assert.Equal((sym.Value, offset, ThunkForm.Generic, FormOf(vendor)), (change.Address, change.FileOffset, change.From, change.To));
                    Assert.Equal(before.AsSpan((int)offset, 17).ToArray(), change.OldBytes);
                    Assert.Equal(Expected(vendor, reg, notrack), change.NewBytes);
                }
            }
            Assert.Equal(new byte[] { 0xc3, 0xcc }, patched.BytesAt("__x86_return_thunk", 2));
            for (int i = 0; i < after.Length; i++)
                if (!changed[i] && before[i] != after[i]) Assert.Fail($"{fixture} under {vendor}: byte 0x{i:x} outside every thunk body changed");

            Assert.Equal(vendor == Vendor.Generic ? 0 : 30, result.Changes.Count);
            Assert.Equal(vendor == Vendor.Generic ? 30 : 0, result.Unchanged);
            Assert.Equal(vendor != Vendor.Generic, result.Written);
            Assert.Equal(vendor == Vendor.Amd ? [Codes.AmdVendor] : Array.Empty<string>(), result.Diagnostics.Select(d => d.Code));

            // Verify reads the patched file back in the vendor's form, for the right register.
            var report = Verifier.Verify(path);
            Assert.Empty(report.FileDiagnostics);
            foreach (var t in report.Thunks.Where(t => t.Name != "__x86_return_thunk"))
                Assert.Equal((FormOf(vendor), t.Name[(t.Name.LastIndexOf('_') + 1)..], 17), (t.Form, t.Register, t.BodyLength));
        }
    }

    public static TheoryData<string, Vendor> RunnablePrograms()
    {
        var data = new TheoryData<string, Vendor>();
        foreach (var f in new[] { FixtureSet.GccExe, FixtureSet.GccExeNoPlt, FixtureSet.GxxVirtual, FixtureSet.ClangExe, FixtureSet.Handwritten,
                     FixtureSet.GccComdat, FixtureSet.ClangRetpoline, FixtureSet.GccCfProtection, FixtureSet.GccGcSections, FixtureSet.GccLarge })
            foreach (var v in new[] { Vendor.Generic, Vendor.Amd, Vendor.None })
                data.Add(f, v);
        return data;
    }

    /// <summary>The patched program still runs and prints what the unpatched one prints.</summary>
    [Theory]
    [MemberData(nameof(RunnablePrograms))]
    public void PatchedProgram_StillRunsAndPrintsTheRightAnswer(string fixture, Vendor vendor)
    {
        Assert.Equal(FixtureSet.ExpectedOutput[fixture], FixtureSet.RunProgram(fx.Get(fixture)));
        string path = fx.CopyOf(fixture, $"run-{vendor}");
        var result = Patcher.Patch(path, vendor);
        Assert.Equal(vendor != Vendor.Generic, result.Changes.Count > 0);
        Assert.Equal(FixtureSet.ExpectedOutput[fixture], FixtureSet.RunProgram(path));
        var report = Verifier.Verify(path);
        Assert.All(report.Thunks.Where(t => t.Register.Length > 0), t => Assert.Equal(FormOf(vendor), t.Form));
    }

    /// <summary>Generic → Amd → None → Generic (and other orders) give back the original file byte for byte.</summary>
    [Theory]
    [InlineData(FixtureSet.GccExeNoPlt)]
    [InlineData(FixtureSet.GccLib)]
    [InlineData(FixtureSet.ClangExe)]
    [InlineData(FixtureSet.GccComdat)]
    [InlineData(FixtureSet.ClangRetpoline)]
    [InlineData(FixtureSet.ThunksObject)]
    [InlineData(FixtureSet.GccLarge)]
    public void RoundTrip_GivesBackTheOriginalBytes(string fixture)
    {
        string path = fx.CopyOf(fixture, "roundtrip");
        byte[] original = File.ReadAllBytes(path);
        var seen = new List<byte[]>();
        foreach (var v in new[] { Vendor.Generic, Vendor.Amd, Vendor.None, Vendor.Generic, Vendor.None, Vendor.Amd, Vendor.Generic })
        {
            Patcher.Patch(path, v);
            byte[] now = File.ReadAllBytes(path);
            if (v == Vendor.Generic) Assert.True(original.AsSpan().SequenceEqual(now), $"{fixture}: Generic after {string.Join("→", seen.Count)} patches differs from the original");
            else Assert.False(original.AsSpan().SequenceEqual(now), $"{fixture}: {v} changed nothing");
            seen.Add(now);
        }
        // The same vendor twice is the same file, and the second patch writes nothing.
        Patcher.Patch(path, Vendor.None);
        byte[] once = File.ReadAllBytes(path);
        var again = Patcher.Patch(path, Vendor.None);
        Assert.Empty(again.Changes);
        Assert.False(again.Written);
        Assert.Equal(once, File.ReadAllBytes(path));
    }

    /// <summary>The Clang 21-byte thunk: Amd/None fill 21 bytes, Generic restores Clang's own layout.</summary>
    [Fact]
    public void LlvmRetpoline_PatchesInItsOwn21Bytes()
    {
        string path = fx.CopyOf(FixtureSet.ClangRetpoline, "llvm");
        byte[] original = ElfBits.Read(path).BytesAt("__llvm_retpoline_r11", 21);
        Patcher.Patch(path, Vendor.Amd);
        Assert.Equal(Expected(Vendor.Amd, "r11", false, 21), ElfBits.Read(path).BytesAt("__llvm_retpoline_r11", 21));
        Patcher.Patch(path, Vendor.None);
        Assert.Equal(Expected(Vendor.None, "r11", false, 21), ElfBits.Read(path).BytesAt("__llvm_retpoline_r11", 21));
        Patcher.Patch(path, Vendor.Generic);
        Assert.Equal(original, ElfBits.Read(path).BytesAt("__llvm_retpoline_r11", 21));
    }

    public static TheoryData<string, Vendor> RefusedFixtures()
    {
        var data = new TheoryData<string, Vendor>();
        foreach (var f in new[] { FixtureSet.WrongRegister, FixtureSet.MalformedThunk })
            foreach (var v in new[] { Vendor.Generic, Vendor.Amd, Vendor.None })
                data.Add(f, v);
        return data;
    }

    /// <summary>A malformed or mis-registered thunk refuses the whole file: RPL0016, byte-identical, mode kept, no temp file.</summary>
    [Theory]
    [MemberData(nameof(RefusedFixtures))]
    public void RefusedPatch_LeavesTheFileByteIdentical(string fixture, Vendor vendor)
    {
        string path = fx.CopyOf(fixture, $"refused-{vendor}");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead);
        byte[] before = File.ReadAllBytes(path);
        var mtime = File.GetLastWriteTimeUtc(path);
        var e = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, vendor));
        Assert.Equal(Codes.PatchRefused, e.Code);
        Assert.Equal(path, e.FilePath);
        Assert.Contains(fixture == FixtureSet.WrongRegister ? "__x86_indirect_thunk_r" : "__x86_indirect_thunk_rdx", e.Message);
        Assert.Contains("nothing was written", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead, File.GetUnixFileMode(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
        // The dry run refuses the same way.
        Assert.Equal(Codes.PatchRefused, Assert.Throws<RetpolineException>(() => Patcher.Patch(path, vendor, dryRun: true)).Code);
    }

    /// <summary>A 2-byte None thunk: verify accepts it; Generic and Amd do not fit, so patch refuses and writes nothing.</summary>
    [Theory]
    [InlineData(Vendor.Generic)]
    [InlineData(Vendor.Amd)]
    public void TooSmallThunk_RefusesTheFile(Vendor vendor)
    {
        string path = fx.CopyOf(FixtureSet.TooSmallThunk, $"small-{vendor}");
        var t = Assert.Single(Verifier.Verify(path).Thunks);
        Assert.Equal(("__x86_indirect_thunk_rax", ThunkForm.None, 2), (t.Name, t.Form, t.BodyLength));
        byte[] before = File.ReadAllBytes(path);
        var e = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, vendor));
        Assert.Equal(Codes.PatchRefused, e.Code);
        Assert.Contains("is 2 bytes", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        // None is what it already is: nothing to do, nothing written.
        var none = Patcher.Patch(path, Vendor.None);
        Assert.False(none.Written);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData(0b111_101_000)] // 0750
    [InlineData(0b101_101_101)] // 0555: read-only, so only when asked (RobustnessTests holds the refusal)
    [InlineData(0b110_000_000)] // 0600
    public void Patch_KeepsTheFileMode(int mode)
    {
        string path = fx.CopyOf(FixtureSet.GccExeNoPlt, $"mode-{mode:x}");
        File.SetUnixFileMode(path, (UnixFileMode)mode);
        var result = Patcher.Patch(path, Vendor.None, replace: new ReplaceOptions { AllowReadOnly = (mode & 0b010_010_010) == 0 });
        Assert.True(result.Written);
        Assert.Equal((UnixFileMode)mode, File.GetUnixFileMode(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    /// <summary>Running as root, patch keeps another user's ownership (it renames a new file over the old one).</summary>
    [Fact]
    public void Patch_KeepsTheOwnerWhenRunAsRoot()
    {
        string path = fx.CopyOf(FixtureSet.GccExeNoPlt, "owner");
        if (Environment.UserName != "root")
        {
            // Not root: chown to someone else is impossible, and the new file is ours, as with cp. Nothing to check.
            return;
        }
        NativeToolchain.Run("chown", ["65534:65534", path]).EnsureSuccess();
        Patcher.Patch(path, Vendor.Amd);
        Assert.Equal("65534:65534", NativeToolchain.Run("stat", ["-c", "%u:%g", path]).EnsureSuccess().StdOut.Trim());
    }

    [Theory]
    [InlineData(Vendor.Amd)]
    [InlineData(Vendor.None)]
    public void DryRun_ReportsTheChangesAndWritesNothing(Vendor vendor)
    {
        string path = fx.CopyOf(FixtureSet.GccExeNoPlt, $"dry-{vendor}");
        byte[] before = File.ReadAllBytes(path);
        var mtime = File.GetLastWriteTimeUtc(path);
        var result = Patcher.Patch(path, vendor, dryRun: true);
        Assert.False(result.Written);
        Assert.Equal(30, result.Changes.Count);
        foreach (var c in result.Changes)
        {
            Assert.Equal(before.AsSpan((int)c.FileOffset, c.OldBytes.Length).ToArray(), c.OldBytes);
            string reg = c.Name[(c.Name.LastIndexOf('_') + 1)..];
            Assert.Equal(Expected(vendor, reg, c.Name.Contains("_nt_")), c.NewBytes);
        }
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));

        // What the dry run promised is exactly what the real run writes.
        var real = Patcher.Patch(path, vendor);
        Assert.Equal(result.Changes.Select(c => (c.Name, c.FileOffset, Convert.ToHexString(c.NewBytes))),
            real.Changes.Select(c => (c.Name, c.FileOffset, Convert.ToHexString(c.NewBytes))));
    }

    [Fact]
    public void Patch_ThroughASymlink_PatchesTheTargetAndKeepsTheLink()
    {
        string path = fx.CopyOf(FixtureSet.GccExeNoPlt, "symlink");
        string link = Path.Combine(Path.GetDirectoryName(path)!, "link-to-it");
        File.CreateSymbolicLink(link, path);
        Patcher.Patch(link, Vendor.None);
        Assert.NotNull(new FileInfo(link).LinkTarget);
        Assert.Equal(Expected(Vendor.None, "rax", false), ElfBits.Read(path).BytesAt("__x86_indirect_thunk_rax", 17));
    }

    /// <summary>
    /// A stripped binary has no thunk symbols left (they were hidden, so only .symtab named them): patch finds nothing
    /// to rewrite, does not crash, and writes nothing.
    /// </summary>
    [Fact]
    public void StrippedBinary_PatchWritesNothing()
    {
        string path = fx.CopyOf(FixtureSet.HandwrittenStripped, "stripped");
        byte[] before = File.ReadAllBytes(path);
        var result = Patcher.Patch(path, Vendor.None);
        Assert.Empty(result.Changes);
        Assert.False(result.Written);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    /// <summary>A shared library patched on its own: every thunk rewritten, verify reads each back in the new form.</summary>
    [Theory]
    [InlineData(Vendor.Amd)]
    [InlineData(Vendor.None)]
    public void PatchedSharedLibrary_IsStillRecognisedAndComplete(Vendor vendor)
    {
        string path = fx.CopyOf(FixtureSet.GccLib, $"lib-{vendor}");
        var result = Patcher.Patch(path, vendor);
        Assert.Equal(30, result.Changes.Count);
        var r = Verifier.Verify(path);
        Assert.Empty(r.FileDiagnostics);
        Assert.Equal(30, r.Thunks.Count(t => t.Form == FormOf(vendor)));
    }
}
