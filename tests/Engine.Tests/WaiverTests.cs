using System.Text.Json;
using Retpoline.Policy;
using Retpoline.Tool;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// The one waiver model (Policy/Waivers): each kind — function, origin (archive, object, source) and file — on
/// binaries compiled here, the Reason every kind requires, RPL0005 (SLS gaps) waived like any finding, the policy
/// mode, and the tool's `--allow` forms. The archive fixture is an unmitigated static library linked into a
/// mitigated program, as a prebuilt third-party `.a` arrives; which functions came from which member is read from the
/// archive itself with nm, the oracle the origin of each finding is set from.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
public sealed class WaiverTests(FixtureSet fx, WaiverTests.Programs programs) : IClassFixture<WaiverTests.Programs>
{
    static WaiverSet Parse(params WaiverItem[] items) => Waivers.Parse(items);

    static WaiverItem Allow(string include, string reason = "reviewed") => new(WaiverItem.Allow, include) { Reason = reason };

    static List<Finding> UserCode(VerifyReport r) => r.Findings.Where(f => f.Class == FindingClass.UserCode).ToList();

    // ---- function ------------------------------------------------------------------------------------------------

    [Fact]
    public void A_function_waiver_by_name_or_Pattern_waives_every_finding_in_matching_functions_and_nothing_else()
    {
        var plain = Verifier.Verify(programs.WithArchive);
        var third = Assert.Single(UserCode(plain).Select(f => Messages.BaseName(f.Function)).Distinct());
        Assert.Equal("third_apply", third);
        Assert.True(plain.HasErrors);

        foreach (var item in new[] { Allow("third_apply"), Allow("third") with { Pattern = "third_*" } })
        {
            var r = Verifier.Verify(programs.WithArchive, new VerifyOptions { Allow = Parse(item).Findings });
            Assert.All(UserCode(r), f => Assert.Equal("reviewed", f.AllowedBy));
            Assert.False(r.HasErrors);
        }
        var other = Verifier.Verify(programs.WithArchive, new VerifyOptions { Allow = Parse(Allow("other_*")).Findings });
        Assert.All(UserCode(other), f => Assert.Null(f.AllowedBy));
        Assert.True(other.HasErrors);
    }

    // ---- origin: archive and object --------------------------------------------------------------------------------

    [Fact]
    public void Archive_and_Object_waivers_match_by_origin_alone_or_with_a_function_and_never_an_unknown_origin()
    {
        // Until a linker map or DWARF names it, a finding's origin is unknown: an origin waiver must not match it.
        var asVerified = Verifier.Verify(programs.WithArchive, new VerifyOptions { Allow = Parse(Allow("liblzma-like") with { Archive = "libthird.a" }).Findings });
        Assert.True(asVerified.HasErrors);
        Assert.All(asVerified.Findings, f => Assert.Null(f.AllowedBy));

        // With the origin the archive itself gives (nm: which member defines the function).
        var members = programs.ArchiveMembers;
        Assert.Equal("third.o", members["third_apply"]);
        var withOrigin = Verifier.Verify(programs.WithArchive).Findings
            .Select(f => members.TryGetValue(Messages.BaseName(f.Function), out var m) ? f with { Origin = new FindingOrigin(programs.Archive, m, null) } : f).ToList();
        Assert.Contains(withOrigin, f => f.Origin is not null && f.Class == FindingClass.UserCode);

        void Expect(bool waived, WaiverItem item)
        {
            var result = Waivers.Apply(withOrigin.ToList(), Parse(item).Findings);
            foreach (var f in result.Where(f => f.Origin is not null))
                Assert.True(waived == (f.AllowedBy == "vendored"), $"{item}: {f.Function} allowed={f.AllowedBy}");
            Assert.All(result.Where(f => f.Origin is null), f => Assert.Null(f.AllowedBy));
        }
        Expect(true, Allow("third", "vendored") with { Archive = "libthird.a" });
        Expect(true, Allow("third", "vendored") with { Archive = programs.Archive });       // the full path
        Expect(true, Allow("third", "vendored") with { Archive = "lib*.a" });
        Expect(true, Allow("third", "vendored") with { Object = "third.o" });
        Expect(true, Allow("third", "vendored") with { Archive = "libthird.a", Object = "third.o", Pattern = "third_*" });
        Expect(false, Allow("third", "vendored") with { Archive = "libother.a" });
        Expect(false, Allow("third", "vendored") with { Archive = "libthird.a", Pattern = "other_*" });
        Expect(false, Allow("third", "vendored") with { Object = "other.o" });
        // With origin metadata, Include only names the waiver: it is not a function pattern.
        Expect(true, Allow("no_such_function", "vendored") with { Archive = "libthird.a" });
    }

    // ---- origin: source ----------------------------------------------------------------------------------------------

    [Fact]
    public void A_Source_waiver_matches_the_source_path_by_any_tail_alone_or_with_a_function()
    {
        string path = fx.Get(FixtureSet.Handwritten);
        Assert.All(UserCode(Verifier.Verify(path)), f => Assert.EndsWith("handwritten.S", f.SourceFile));

        int Waived(WaiverItem item) => UserCode(Verifier.Verify(path, new VerifyOptions { Allow = Parse(item).Findings })).Count(f => f.AllowedBy is not null);
        Assert.Equal(4, Waived(Allow("asm") with { Source = "handwritten.S" }));
        Assert.Equal(4, Waived(Allow("asm") with { Source = "native/handwritten.S" }));
        Assert.Equal(4, Waived(Allow("asm") with { Source = "*/Fixtures/*.S" }));
        Assert.Equal(1, Waived(Allow("asm") with { Source = "handwritten.S", Pattern = "asm_call_*" }));
        Assert.Equal(0, Waived(Allow("asm") with { Source = "/handwritten.S" }));  // rooted: the whole path only
        Assert.Equal(0, Waived(Allow("asm") with { Source = "*.c" }));
    }

    // ---- file ----------------------------------------------------------------------------------------------------

    [Fact]
    public void File_waivers_exempt_a_shipped_x86_64_ELF_by_file_name_or_output_relative_path_after_the_ELF_check()
    {
        string output = fx.NewDirectory("shipped");
        Directory.CreateDirectory(Path.Combine(output, "plugins"));
        string plugin = Path.Combine(output, "plugins", "libvendor.so");
        File.Copy(fx.Get(FixtureSet.GccLib), plugin);
        string readme = Path.Combine(output, "readme.txt");
        File.WriteAllText(readme, "not ELF\n");
        string app = Path.Combine(output, "app");
        File.Copy(fx.Get(FixtureSet.GccExe), app);
        File.WriteAllText(app + ".dll", "");
        File.WriteAllText(app + ".runtimeconfig.json", "{}");

        ShippedDecision Decide(string file, bool named, params WaiverItem[] excludes)
            => ShippedBinaries.Decide(new ShippedFile(file, ShippedBinaries.RelativeTo(output, file), "None", named), Parse(excludes));
        WaiverItem Exclude(string include, string pattern = "") => new(WaiverItem.Exclude, include) { Pattern = pattern, Reason = "vendor binary" };

        Assert.Equal(ShippedVerdict.Verify, Decide(plugin, false).Verdict);
        Assert.Equal("plugins/libvendor.so", ShippedBinaries.RelativeTo(output, plugin));
        var byName = Decide(plugin, false, Exclude("libvendor.so"));
        Assert.Equal(ShippedVerdict.Exempt, byName.Verdict);
        Assert.Equal(("libvendor.so", "vendor binary"), (byName.Exemption!.Name, byName.Exemption.Reason));
        Assert.Equal(ShippedVerdict.Exempt, Decide(plugin, false, Exclude("plugins/libvendor.so")).Verdict);
        Assert.Equal(ShippedVerdict.Exempt, Decide(plugin, false, Exclude("vendor", "plugins/lib*.so")).Verdict);
        Assert.Equal(ShippedVerdict.Verify, Decide(plugin, false, Exclude("other/libvendor.so")).Verdict);

        // Not ELF comes first: an excluded text file is skipped, not exempt; a named one that nothing excludes is
        // worth a warning, so is a named file that does not exist.
        Assert.Equal(ShippedVerdict.NotX86_64Elf, Decide(readme, false, Exclude("readme.txt")).Verdict);
        Assert.False(Decide(readme, true, Exclude("readme.txt")).NamedButNotVerifiable);
        Assert.True(Decide(readme, true).NamedButNotVerifiable);
        Assert.False(Decide(readme, false).NamedButNotVerifiable);
        var missing = Decide(Path.Combine(output, "libgone.so"), true);
        Assert.Equal(ShippedVerdict.Missing, missing.Verdict);
        Assert.True(missing.NamedButNotVerifiable);
        // The .NET apphost (an ELF executable beside name.dll and name.runtimeconfig.json) is Microsoft's.
        Assert.Equal(ShippedVerdict.DotNetAppHost, Decide(app, false).Verdict);
    }

    // ---- Reason --------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(WaiverItem.Allow, "trampoline", "", "", "")]
    [InlineData(WaiverItem.Allow, "lzma", "liblzma.a", "", "")]
    [InlineData(WaiverItem.Allow, "member", "", "lzma_encoder.o", "")]
    [InlineData(WaiverItem.Allow, "vendored", "", "", "third_party/*")]
    [InlineData(WaiverItem.Exclude, "libvendor.so", "", "", "")]
    [InlineData("--allow", "archive:liblzma.a", "liblzma.a", "", "")]
    public void Every_waiver_kind_without_a_Reason_is_RPL0208_with_one_message(string itemType, string include, string archive, string obj, string source)
    {
        foreach (string reason in new[] { "", "   " })
        {
            var item = new WaiverItem(itemType, include) { Archive = archive, Object = obj, Source = source, Reason = reason };
            var e = Assert.Throws<InvalidSettingException>(() => Waivers.Parse([Allow("fine"), item]));
            Assert.Equal("RPL0208", e.Code);
            Assert.Equal($"{itemType} '{include}' needs a Reason (every waiver says why what it waives is acceptable; it is shown beside each finding or file it waives)", e.Message);
        }
    }

    // ---- SLS gaps ------------------------------------------------------------------------------------------------

    [Fact]
    public void An_SLS_gap_is_an_RPL0005_finding_that_a_function_waiver_waives_and_every_report_lists_with_its_reason()
    {
        var sls = new VerifyOptions { HardenSls = true };
        var gap = Assert.Single(Verifier.Verify(programs.Sls, sls).Findings, f => f.Class == FindingClass.SlsGap);
        Assert.Equal("bare_ret+0x4", gap.Function);
        var error = Assert.Single(Verifier.Verify(programs.Sls, sls).Diagnostics, d => d.Code == Codes.SlsUnprotected);
        Assert.Equal($"'ret' at 0x{gap.Address:x} in function 'bare_ret+0x4' is not followed by int3, so the CPU may speculate straight past it " +
            "(build with -mharden-sls=all, or add int3 after it in hand-written assembly; waive: RetpolineHardenSls=false)", error.Message);
        Assert.DoesNotContain(Verifier.Verify(programs.Sls, sls).FileDiagnostics, d => d.Code == Codes.SlsUnprotected);

        var waived = Verifier.Verify(programs.Sls, new VerifyOptions { HardenSls = true, Allow = Parse(Allow("bare_ret", "leaf returns a constant; SLS past it reads nothing secret")).Findings });
        Assert.False(waived.HasErrors);
        Assert.Equal("leaf returns a constant; SLS past it reads nothing secret", Assert.Single(waived.Findings, f => f.Class == FindingClass.SlsGap).AllowedBy);

        // The tool's three reports list it: an info line, JSON allowedBy, a suppressed SARIF result.
        string sarif = Path.Combine(fx.NewDirectory("sls-sarif"), "sls.sarif");
        var text = Run("verify", "--harden-sls", "--allow", "bare_ret=leaf", "--sarif", sarif, programs.Sls);
        Assert.Equal(0, text.Code);
        Assert.Contains(text.Out.Split('\n'), l => l.Contains(": info: SlsGap unhardened return 'ret' at 0x") && l.EndsWith("in 'bare_ret+0x4' allowed (leaf)"));
        Assert.Contains("1 SLS gap(s)", text.Out);
        using (var doc = JsonDocument.Parse(File.ReadAllText(sarif)))
        {
            var result = Assert.Single(doc.RootElement.GetProperty("runs")[0].GetProperty("results").EnumerateArray());
            Assert.Equal("RPL0005", result.GetProperty("ruleId").GetString());
            var suppression = Assert.Single(result.GetProperty("suppressions").EnumerateArray());
            Assert.Equal("external", suppression.GetProperty("kind").GetString());
            Assert.Equal("leaf", suppression.GetProperty("justification").GetString());
        }
        var json = Run("verify", "--json", "--harden-sls", "--allow", "bare_ret=leaf", programs.Sls);
        using (var doc = JsonDocument.Parse(json.Out))
        {
            var finding = Assert.Single(doc.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray(), f => f.GetProperty("class").GetString() == "SlsGap");
            Assert.Equal("leaf", finding.GetProperty("allowedBy").GetString());
        }
    }

    // ---- policy mode ---------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("Error", PolicyMode.Error)]
    [InlineData("error", PolicyMode.Error)]
    [InlineData("Warning", PolicyMode.Warning)]
    [InlineData("WARNING", PolicyMode.Warning)]
    [InlineData(" None ", PolicyMode.None)]
    public void RetpolinePolicy_is_parsed_case_insensitively(string text, PolicyMode expected) => Assert.Equal(expected, PolicyModes.Parse(text));

    [Theory]
    [InlineData("Fatal")]
    [InlineData("")]
    [InlineData("Errors")]
    public void Any_other_RetpolinePolicy_is_RPL0208_naming_the_values(string text)
    {
        var e = Assert.Throws<InvalidSettingException>(() => PolicyModes.Parse(text));
        Assert.Equal("RPL0208", e.Code);
        Assert.Equal($"RetpolinePolicy must be Error, Warning or None, not '{text}'", e.Message);
    }

    [Fact]
    public void The_policy_mode_decides_what_each_diagnostic_is_and_never_hides_a_warning()
    {
        var error = new Diagnostic(Codes.UserCode, Severity.Error, "e");
        var warning = new Diagnostic(Codes.ThunkExported, Severity.Warning, "w");
        var info = new Diagnostic("RPL9999", Severity.Info, "i");
        Assert.Equal(new[] { ReportLevel.Error, ReportLevel.Warning, ReportLevel.Message }, new[] { PolicyMode.Error, PolicyMode.Warning, PolicyMode.None }.Select(m => m.LevelOf(error)));
        Assert.Equal(new[] { ReportLevel.Warning, ReportLevel.Warning, ReportLevel.Warning }, new[] { PolicyMode.Error, PolicyMode.Warning, PolicyMode.None }.Select(m => m.LevelOf(warning)));
        Assert.Equal(new[] { ReportLevel.Message, ReportLevel.Message, ReportLevel.Message }, new[] { PolicyMode.Error, PolicyMode.Warning, PolicyMode.None }.Select(m => m.LevelOf(info)));

        var failing = Verifier.Verify(programs.WithArchive);
        Assert.True(PolicyMode.Error.Fails(failing));
        Assert.False(PolicyMode.Warning.Fails(failing));
        Assert.False(PolicyMode.None.Fails(failing));
    }

    // ---- the tool's --allow --------------------------------------------------------------------------------------

    [Fact]
    public void Verify_allow_takes_a_function_or_keyed_archive_object_source_and_function_parts()
    {
        string handwritten = fx.Get(FixtureSet.Handwritten);
        Assert.Equal(1, Run("verify", handwritten).Code);
        Assert.Equal(0, Run("verify", "--allow", "asm_*=reviewed", handwritten).Code);             // PATTERN=REASON as always
        Assert.Equal(0, Run("verify", "--allow", "function:asm_*=reviewed", handwritten).Code);
        Assert.Equal(0, Run("verify", "--allow", "source:handwritten.S=vendored asm", handwritten).Code);
        Assert.Equal(1, Run("verify", "--allow", "source:handwritten.S,function:asm_call_*=one", handwritten).Code);
        Assert.Equal(1, Run("verify", "--allow", "source:other.S=not this one", handwritten).Code);
        // A Reason may contain '=' and ':'; only the first '=' ends the spec.
        var json = Run("verify", "--json", "--allow", "source:*/handwritten.S,function:asm_*=SEC-12: a=b", handwritten);
        using var doc = JsonDocument.Parse(json.Out);
        Assert.All(doc.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray().Where(f => f.GetProperty("class").GetString() == "UserCode"),
            f => Assert.Equal("SEC-12: a=b", f.GetProperty("allowedBy").GetString()));
    }

    [Theory]
    [InlineData("asm_call_rax", "asm_call_rax")]
    [InlineData("asm_call_rax=", "asm_call_rax")]
    [InlineData("archive:liblzma.a=  ", "archive:liblzma.a")]
    public void Verify_allow_without_a_reason_is_the_build_s_RPL0208(string spec, string name)
    {
        var r = Run("verify", "--allow", spec, fx.Get(FixtureSet.Handwritten));
        Assert.Equal(2, r.Code);
        Assert.Equal($"retpoline: error RPL0208: --allow '{name}' needs a Reason (every waiver says why what it waives is acceptable; it is shown beside each finding or file it waives)", r.Err.Trim());
        Assert.Equal("", r.Out);
    }

    [Theory]
    [InlineData("=reason")]
    [InlineData("archive:=reason")]
    [InlineData("archive:a.a,archive:b.a=reason")]
    [InlineData("f,g=reason")]
    public void A_malformed_allow_spec_is_a_usage_error(string spec)
    {
        var r = Run("verify", "--allow", spec, fx.Get(FixtureSet.Handwritten));
        Assert.Equal(2, r.Code);
        Assert.StartsWith("retpoline: error RPL0108: --allow ", r.Err);
    }

    static (int Code, string Out, string Err) Run(params string[] args) => ToolInProcess.Run(args);

    /// <summary>The programs these tests verify, compiled once for the class with the machine's gcc 12.</summary>
    public sealed class Programs : IDisposable
    {
        readonly TempDirectory dir = new("rpl-waivers-");
        static readonly string[] Retpoline = ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fno-plt", "-Wl,-z,now"];

        /// <summary>An unmitigated static archive (third.o: a call through a function-pointer table).</summary>
        public string Archive { get; }
        /// <summary>A mitigated program linked with <see cref="Archive"/>: its only UserCode findings come from it.</summary>
        public string WithArchive { get; }
        /// <summary>-mharden-sls=all C plus a hand-written `ret` with no int3 after it in bare_ret.</summary>
        public string Sls { get; }
        /// <summary>Function → archive member that defines it, from `nm libthird.a`.</summary>
        public IReadOnlyDictionary<string, string> ArchiveMembers { get; }

        public Programs()
        {
            string third = dir.Write("third.c", """
                typedef long (*op)(long);
                static long inc(long x) { return x + 1; }
                static long dbl(long x) { return x * 2; }
                op third_ops[] = { inc, dbl };
                __attribute__((noinline)) long third_apply(int i, long x) { return 3 + third_ops[i & 1](x); }
                """);
            string obj = NativeToolchain.Compile(NativeToolchain.Gcc, third, dir["third.o"], ["-O2"]);
            Archive = dir["libthird.a"];
            NativeToolchain.Run("ar", ["rcsD", Archive, obj], dir.Path).EnsureSuccess();
            string main = dir.Write("main.c", "#include <stdio.h>\nlong third_apply(int, long);\nint main(int argc, char **argv) { (void)argv; printf(\"%ld\\n\", third_apply(argc, 20)); return 0; }\n");
            WithArchive = NativeToolchain.Link(NativeToolchain.Gcc, [main, Archive, NativeToolchain.ThunksSource], dir["with-archive"], Retpoline);
            Assert.Equal("43\n", FixtureSet.RunProgram(WithArchive)); // argc 1: dbl(20) + 3

            var members = new Dictionary<string, string>(StringComparer.Ordinal);
            string member = "";
            foreach (var line in NativeToolchain.Run(NativeToolchain.Nm, ["--defined-only", Archive]).EnsureSuccess().StdOut.Split('\n'))
            {
                if (line.EndsWith(':')) { member = line[..^1]; continue; }
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 3 && parts[1] is "T" or "t") members[parts[2]] = member;
            }
            ArchiveMembers = members;

            string rets = dir.Write("rets.S", """
                	.text
                	.globl bare_ret
                	.type bare_ret,@function
                bare_ret:
                	lea 1(%rdi), %rax
                	ret
                	.size bare_ret,.-bare_ret
                	.section .note.GNU-stack,"",@progbits
                """);
            string slsMain = dir.Write("sls.c", "#include <stdio.h>\nlong bare_ret(long);\nint main(void) { printf(\"%ld\\n\", bare_ret(1)); return 0; }\n");
            Sls = NativeToolchain.Link(NativeToolchain.Gcc, [slsMain, rets, NativeToolchain.ThunksSource], dir["sls"], [.. Retpoline, "-mharden-sls=all"]);
            Assert.Equal("2\n", FixtureSet.RunProgram(Sls));
        }

        public void Dispose() => dir.Dispose();
    }
}
