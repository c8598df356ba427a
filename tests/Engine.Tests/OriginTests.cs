using System.Text.Json;
using Retpoline.Elf;
using Retpoline.Policy;
using Retpoline.Tool;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Where each finding came from: a prebuilt, unmitigated static archive (two members, built here with plain gcc or
/// clang and ar) linked into a mitigated program, read back through GNU ld's and lld's `-Map` output and through the
/// program's own DWARF compilation units; waivers by archive, object and source on those origins; the text, JSON
/// and SARIF reports; RPL0005 waived by origin.
/// </summary>
public sealed class OriginTests(OriginTests.Programs p) : IClassFixture<OriginTests.Programs>
{
    static List<Finding> UserCode(VerifyReport r) => r.Findings.Where(f => f.Class == FindingClass.UserCode).ToList();

    static WaiverItem Allow(string include, string reason = "vendored") => new(WaiverItem.Allow, include) { Reason = reason };

    static VerifyOptions WithMap(string map, params WaiverItem[] allow) => new() { Map = LinkerMap.Read(map), Allow = Waivers.Parse(allow).Findings };

    [Theory]
    [InlineData("gnu")]
    [InlineData("lld")]
    public void A_linker_map_names_the_archive_member_of_every_finding_and_DWARF_its_compilation_unit(string linker)
    {
        var (program, map, archive) = linker == "gnu" ? (p.Gnu, p.GnuMap, p.Archive) : (p.Lld, p.LldMap, p.ClangArchive);
        var r = Verifier.Verify(program, WithMap(map));
        Assert.Equal(
            [("third_apply", "libthird.a(third.o)", archive, "third.o", p.Dir["third.c"]), ("fourth_apply", "libthird.a(fourth.o)", archive, "fourth.o", p.Dir["fourth.c"])],
            UserCode(r).Select(f => (Messages.BaseName(f.Function), f.Origin!.ToString(), f.Origin.Archive, f.Origin.Object, f.Origin.Source)));
        // crt code names its crt object, without GNU ld's `..`; the PLT is the linker's own and names none.
        var init = Assert.Single(r.Findings, f => f.Function.StartsWith("_init", StringComparison.Ordinal));
        Assert.Matches(@"^/(usr/)?lib/x86_64-linux-gnu/crti\.o$", init.Origin!.Object);
        Assert.All(r.Findings.Where(f => f.Function.EndsWith("@plt", StringComparison.Ordinal) || f.Function.StartsWith(".plt", StringComparison.Ordinal)), f => Assert.Null(f.Origin));

        var error = Assert.Single(r.Diagnostics, d => d.Function!.StartsWith("third_apply", StringComparison.Ordinal));
        Assert.Matches(@"^indirect call 'call qword ptr \[[^\]]+\]' at 0x[0-9a-f]+ in function 'third_apply\+0x[0-9a-f]+' \(from libthird\.a\(third\.o\)\) is not routed through a retpoline thunk " +
            @"\(rebuild libthird\.a with the retpoline flags, it is not compiled by this build; or waive the archive: RetpolineAllow Include=""libthird"" Archive=""libthird\.a""\)$", error.Message);
    }

    [Theory]
    [InlineData("gnu")]
    [InlineData("lld")]
    public void One_Archive_waiver_waives_every_finding_from_the_archive_and_Object_waivers_one_member(string linker)
    {
        var (program, map) = linker == "gnu" ? (p.Gnu, p.GnuMap) : (p.Lld, p.LldMap);
        Assert.True(Verifier.Verify(program, WithMap(map)).HasErrors);

        var archive = Verifier.Verify(program, WithMap(map, Allow("libthird") with { Archive = "libthird.a" }));
        Assert.Equal(["vendored", "vendored"], UserCode(archive).Select(f => f.AllowedBy));
        Assert.False(archive.HasErrors);

        var member = Verifier.Verify(program, WithMap(map, Allow("third member") with { Object = "third.o" }));
        Assert.Equal([("third_apply", "vendored"), ("fourth_apply", null)], UserCode(member).Select(f => (Messages.BaseName(f.Function), f.AllowedBy)));
        Assert.True(member.HasErrors);
    }

    [Theory]
    [InlineData("gnu")]
    [InlineData("lld")]
    public void Without_a_map_the_origin_is_the_DWARF_compilation_unit_and_a_Source_waiver_matches_it(string linker)
    {
        // gcc 12 writes DWARF 5 with strp/line_strp and addresses; clang 14 with strx and addrx through
        // .debug_str_offsets and .debug_addr: both read.
        string program = linker == "gnu" ? p.Gnu : p.Lld;
        var r = Verifier.Verify(program);
        Assert.Equal([("third_apply", p.Dir["third.c"]), ("fourth_apply", p.Dir["fourth.c"])],
            UserCode(r).Select(f => (Messages.BaseName(f.Function), f.Origin!.ToString())));
        Assert.All(UserCode(r), f => Assert.False(f.Origin!.NamesInput));
        // No archive is known, so an Archive waiver matches nothing; a Source one does.
        Assert.True(Verifier.Verify(program, new VerifyOptions { Allow = Waivers.Parse([Allow("third") with { Archive = "libthird.a" }]).Findings }).HasErrors);
        var bySource = Verifier.Verify(program, new VerifyOptions { Allow = Waivers.Parse([Allow("third") with { Source = "third.c" }]).Findings });
        Assert.Equal([("third_apply", "vendored"), ("fourth_apply", null)], UserCode(bySource).Select(f => (Messages.BaseName(f.Function), f.AllowedBy)));
    }

    [Fact]
    public void A_PLT_entry_is_waived_by_an_origin_waiver_that_matches_every_caller_of_it()
    {
        // puts@plt is called from liba.a and libb.a, putc@plt (gcc makes putchar putc) from libb.a only (both built without -fno-plt).
        static Finding Entry(VerifyReport r, string name) => Assert.Single(r.Findings, f => f.Function == name);
        var plain = Verifier.Verify(p.Plt, WithMap(p.PltMap));
        Assert.Null(Entry(plain, "puts@plt").CallerOrigins); // worked out only when a waiver names an origin

        var onlyB = Verifier.Verify(p.Plt, WithMap(p.PltMap, Allow("b") with { Archive = "libb.a" }));
        Assert.Equal(["liba.a(plt_a.o)", "libb.a(plt_b.o)"], Entry(onlyB, "puts@plt").CallerOrigins!.Select(o => o.ToString()));
        Assert.Equal((FindingClass.Plt, null), (Entry(onlyB, "puts@plt").Class, Entry(onlyB, "puts@plt").AllowedBy));
        Assert.Equal("vendored", Entry(onlyB, "putc@plt").AllowedBy);
        var header = Assert.Single(onlyB.Findings, f => f.Function == ".plt+0x6");
        Assert.Equal((FindingClass.Plt, null), (header.Class, header.AllowedBy)); // reached through puts@plt too
        Assert.True(onlyB.HasErrors);

        var both = Verifier.Verify(p.Plt, WithMap(p.PltMap, Allow("both") with { Archive = "lib?.a" }));
        Assert.All(both.Findings.Where(f => f.Class == FindingClass.Plt), f => Assert.Equal("vendored", f.AllowedBy));
        Assert.Equal(3, both.Findings.Count(f => f.Class == FindingClass.Plt));
        Assert.False(both.HasErrors);
    }

    [Fact]
    public void An_SLS_gap_from_an_archive_is_waived_by_the_archive()
    {
        var sls = new VerifyOptions { HardenSls = true, Map = LinkerMap.Read(p.SlsMap) };
        var gap = Assert.Single(Verifier.Verify(p.Sls, sls).Findings, f => f.Class == FindingClass.SlsGap);
        Assert.Equal(("bare_ret+0x4", "librets.a(rets.o)"), (gap.Function, gap.Origin!.ToString()));
        var waived = Verifier.Verify(p.Sls, new VerifyOptions { HardenSls = true, Map = sls.Map,
            Allow = Waivers.Parse([Allow("rets", "leaf returns a constant") with { Archive = "librets.a" }]).Findings });
        Assert.Equal("leaf returns a constant", Assert.Single(waived.Findings, f => f.Class == FindingClass.SlsGap).AllowedBy);
        Assert.False(waived.HasErrors);
        Assert.Equal(0, Run("verify", "--harden-sls", "--map", p.SlsMap, "--allow", "archive:librets.a=leaf", p.Sls).Code);
        Assert.Equal(1, Run("verify", "--harden-sls", "--map", p.SlsMap, "--allow", "archive:libother.a=leaf", p.Sls).Code);
    }

    [Fact]
    public void Verify_map_puts_the_origin_in_the_text_JSON_and_SARIF_reports()
    {
        var text = Run("verify", "--map", p.GnuMap, "--allow", "object:fourth.o=reviewed", p.Gnu);
        Assert.Equal(1, text.Code);
        var lines = text.Out.Split('\n');
        Assert.Single(lines, l => l.StartsWith(p.Dir["third.c"] + ":") && l.Contains(" error RPL0001: ") && l.Contains("(from libthird.a(third.o))"));
        Assert.Single(lines, l => l.StartsWith(p.Gnu + ": info: UserCode indirect call ") && l.EndsWith("' from 'libthird.a(fourth.o)' allowed (reviewed)"));

        var json = Run("verify", "--json", "--map", p.GnuMap, p.Gnu);
        using (var doc = JsonDocument.Parse(json.Out))
        {
            var origins = doc.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray()
                .Where(f => f.GetProperty("class").GetString() == "UserCode").Select(f => f.GetProperty("origin")).ToList();
            Assert.Equal(["libthird.a(third.o)", "libthird.a(fourth.o)"], origins.Select(o => o.GetProperty("name").GetString()));
            Assert.Equal([p.Archive, p.Archive], origins.Select(o => o.GetProperty("archive").GetString()));
            Assert.Equal(["third.o", "fourth.o"], origins.Select(o => o.GetProperty("object").GetString()));
            Assert.Equal([p.Dir["third.c"], p.Dir["fourth.c"]], origins.Select(o => o.GetProperty("source").GetString()));
        }

        string sarif = p.Dir["origin.sarif"];
        Assert.Equal(1, Run("verify", "--map", p.GnuMap, "--sarif", sarif, p.Gnu).Code);
        using (var doc = JsonDocument.Parse(File.ReadAllText(sarif)))
        {
            var result = doc.RootElement.GetProperty("runs")[0].GetProperty("results").EnumerateArray()
                .Single(x => x.GetProperty("message").GetProperty("text").GetString()!.Contains("'third_apply+"));
            var related = result.GetProperty("relatedLocations").EnumerateArray().ToList();
            Assert.Equal(["file://" + p.Archive, "file://" + p.Dir["third.c"]], related.Select(x => x.GetProperty("physicalLocation").GetProperty("artifactLocation").GetProperty("uri").GetString()));
            Assert.Equal(["code from libthird.a(third.o)", "compilation unit"], related.Select(x => x.GetProperty("message").GetProperty("text").GetString()));
        }
    }

    [Fact]
    public void A_map_that_is_not_one_is_RPL0119_and_a_map_needs_exactly_one_file()
    {
        var bad = Run("verify", "--map", p.Dir["third.c"], p.Gnu);
        Assert.Equal(2, bad.Code);
        Assert.Equal($"retpoline: error RPL0119: {p.Dir["third.c"]}: not a GNU ld or lld linker map (expected the output of -Wl,-Map,FILE: " +
            "'Linker script and memory map', or lld's 'VMA LMA Size Align Out In Symbol' header)", bad.Err.Trim());
        var missing = Run("verify", "--map", p.Dir["none.map"], p.Gnu);
        Assert.Equal(2, missing.Code);
        Assert.StartsWith($"retpoline: error RPL0119: {p.Dir["none.map"]}: linker map cannot be read: ", missing.Err.Trim());
        var two = Run("verify", "--map", p.GnuMap, p.Gnu, p.Lld);
        Assert.Equal(2, two.Code);
        Assert.Contains("--map FILE describes one link: give exactly one FILE with it", two.Err);
    }

    // ---- archives ------------------------------------------------------------------------------------------------

    [Fact]
    public void Verify_of_an_archive_verifies_each_member_as_an_object_named_archive_of_member()
    {
        var r = Run("verify", "--json", p.Archive);
        Assert.Equal(1, r.Code);
        using (var doc = JsonDocument.Parse(r.Out))
        {
            var files = doc.RootElement.GetProperty("files").EnumerateArray().ToList();
            Assert.Equal([$"{p.Archive}(third.o)", $"{p.Archive}(fourth.o)"], files.Select(f => f.GetProperty("path").GetString()));
            Assert.All(files, f => Assert.Equal("Relocatable", f.GetProperty("kind").GetString()));
            var findings = files.Select(f => Assert.Single(f.GetProperty("findings").EnumerateArray())).ToList();
            Assert.Equal(["libthird.a(third.o)", "libthird.a(fourth.o)"], findings.Select(f => f.GetProperty("origin").GetProperty("name").GetString()));
            Assert.Equal(["third_apply+0x13", "fourth_apply+0x13"], findings.Select(f => f.GetProperty("function").GetString()));
        }
        var text = Run("verify", p.Archive);
        Assert.Contains($"{p.Archive}(third.o): FAIL: 1 indirect branches (1 UserCode); 0 thunks (none); 1 error(s), 0 warning(s)", text.Out.Split('\n'));
        Assert.Equal(0, Run("verify", "--allow", "archive:libthird.a=vendored", p.Archive).Code);
        Assert.Equal(1, Run("verify", "--allow", "object:third.o=one member", p.Archive).Code);
    }

    [Fact]
    public void Long_member_names_are_read_and_a_member_that_is_not_ELF_is_RPL0116_while_the_others_are_verified()
    {
        string dir = Path.Combine(p.Dir.Path, "mixed");
        Directory.CreateDirectory(dir);
        string longName = Path.Combine(dir, "a_member_name_longer_than_sixteen_bytes.o");
        File.Copy(Path.Combine(Path.GetDirectoryName(p.Archive)!, "fourth.o"), longName, overwrite: true);
        string notes = Path.Combine(dir, "notes.txt");
        File.WriteAllText(notes, "not code\n");
        string archive = Path.Combine(dir, "libmixed.a");
        File.Delete(archive);
        NativeToolchain.Run("ar", ["rcsD", archive, longName, notes], dir).EnsureSuccess();

        var r = Run("verify", "--allow", "archive:libmixed.a=vendored", archive);
        Assert.Equal(2, r.Code);
        Assert.Equal($"retpoline: error RPL0116: {archive}(notes.txt): archive member is not an x86-64 ELF object: not an ELF file (bad magic)", r.Err.Trim());
        Assert.Contains($"{archive}(a_member_name_longer_than_sixteen_bytes.o): PASS: 1 indirect branches (1 UserCode); 0 thunks (none); 0 error(s), 0 warning(s)", r.Out.Split('\n'));
    }

    [Fact]
    public void A_thin_archive_is_RPL0117_and_a_damaged_one_RPL0118()
    {
        string dir = Path.Combine(p.Dir.Path, "thin");
        Directory.CreateDirectory(dir);
        string thin = Path.Combine(dir, "libthin.a");
        File.Delete(thin);
        NativeToolchain.Run("ar", ["rcsDT", thin, Path.Combine(Path.GetDirectoryName(p.Archive)!, "third.o")], dir).EnsureSuccess();
        var r = Run("verify", thin);
        Assert.Equal(2, r.Code);
        Assert.Equal($"retpoline: error RPL0117: {thin}: thin archive: its members are files stored elsewhere (ar T); verify those object files, or make a regular archive with ar rcs", r.Err.Trim());

        string cut = Path.Combine(dir, "libcut.a");
        File.WriteAllBytes(cut, File.ReadAllBytes(p.Archive)[..200]);
        var bad = Run("verify", cut);
        Assert.Equal(2, bad.Code);
        Assert.Matches(@"^retpoline: error RPL0118: \S+/libcut\.a: bad ar archive: member at offset \d+ claims \d+ bytes, past the end of the file$", bad.Err.Trim());
    }

    static (int Code, string Out, string Err) Run(params string[] args) => ToolInProcess.Run(args);

    /// <summary>The programs, archives and maps, built once for the class with the machine's gcc 12 and clang 14.</summary>
    public sealed class Programs : IDisposable
    {
        public TempDirectory Dir { get; } = new("rpl-origins-");
        static readonly string[] GccRetpoline = ["-O2", "-g", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fno-plt", "-Wl,-z,now"];
        static readonly string[] ClangRetpoline = ["-O2", "-g", "-mretpoline-external-thunk", "-fno-plt", "-Wl,-z,now", "-fuse-ld=lld"];

        /// <summary>Unmitigated libthird.a (third.o, fourth.o: a call through a function-pointer table each), by gcc.</summary>
        public string Archive { get; }
        /// <summary>The same archive compiled by clang-14.</summary>
        public string ClangArchive { get; }
        public string Gnu { get; }
        public string GnuMap { get; }
        public string Lld { get; }
        public string LldMap { get; }
        /// <summary>-mharden-sls=all C linked with librets.a, whose bare_ret has a `ret` with no int3 after it.</summary>
        public string Sls { get; }
        public string SlsMap { get; }
        /// <summary>A mitigated main calling into liba.a and libb.a, built without -fno-plt: their calls of puts and putc go through the PLT.</summary>
        public string Plt { get; }
        public string PltMap { get; }

        public Programs()
        {
            Preconditions.Require("gcc", "clang-14", "ld.lld-14", "ar");
            string third = Dir.Write("third.c", """
                typedef long (*op)(long);
                static long inc(long x) { return x + 1; }
                static long dbl(long x) { return x * 2; }
                op third_ops[] = { inc, dbl };
                __attribute__((noinline)) long third_apply(int i, long x) { return 3 + third_ops[i & 1](x); }
                """);
            string fourth = Dir.Write("fourth.c", """
                typedef long (*op)(long);
                static long neg(long x) { return -x; }
                static long sq(long x) { return x * x; }
                op fourth_ops[] = { neg, sq };
                __attribute__((noinline)) long fourth_apply(int i, long x) { return 5 * fourth_ops[i & 1](x); }
                """);
            string main = Dir.Write("main.c", "#include <stdio.h>\nlong third_apply(int, long);\nlong fourth_apply(int, long);\n" +
                "int main(int argc, char **argv) { (void)argv; printf(\"%ld %ld\\n\", third_apply(argc, 20), fourth_apply(argc, 3)); return 0; }\n");

            Archive = MakeArchive("gcc", NativeToolchain.Gcc, [third, fourth]);
            ClangArchive = MakeArchive("clang", NativeToolchain.Clang, [third, fourth]);
            GnuMap = Dir["gnu.map"];
            Gnu = NativeToolchain.Link(NativeToolchain.Gcc, [main, Archive, NativeToolchain.ThunksSource], Dir["gnu"], [.. GccRetpoline, "-Wl,-Map," + GnuMap]);
            LldMap = Dir["lld.map"];
            Lld = NativeToolchain.Link(NativeToolchain.Clang, [main, ClangArchive, NativeToolchain.ThunksSource], Dir["lld"], [.. ClangRetpoline, "-Wl,-Map," + LldMap]);
            Assert.Equal("43 45\n", FixtureSet.RunProgram(Gnu)); // argc 1: dbl(20) + 3, 5 * sq(3)
            Assert.Equal("43 45\n", FixtureSet.RunProgram(Lld));

            string rets = Dir.Write("rets.S", """
                	.text
                	.globl bare_ret
                	.type bare_ret,@function
                bare_ret:
                	lea 1(%rdi), %rax
                	ret
                	.size bare_ret,.-bare_ret
                	.section .note.GNU-stack,"",@progbits
                """);
            string retsObject = NativeToolchain.Compile(NativeToolchain.Gcc, rets, Dir["rets.o"]);
            string retsArchive = Dir["librets.a"];
            NativeToolchain.Run("ar", ["rcsD", retsArchive, retsObject], Dir.Path).EnsureSuccess();
            string slsMain = Dir.Write("sls.c", "#include <stdio.h>\nlong bare_ret(long);\nint main(void) { printf(\"%ld\\n\", bare_ret(1)); return 0; }\n");
            SlsMap = Dir["sls.map"];
            Sls = NativeToolchain.Link(NativeToolchain.Gcc, [slsMain, retsArchive, NativeToolchain.ThunksSource], Dir["sls"], [.. GccRetpoline, "-mharden-sls=all", "-Wl,-Map," + SlsMap]);
            Assert.Equal("2\n", FixtureSet.RunProgram(Sls));

            string libA = PlainArchive("liba.a", Dir.Write("plt_a.c", "#include <stdio.h>\nvoid plt_a(void) { puts(\"a\"); }\n"));
            string libB = PlainArchive("libb.a", Dir.Write("plt_b.c", "#include <stdio.h>\nvoid plt_b(void) { puts(\"b\"); putchar('c'); putchar('\\n'); }\n"));
            string pltMain = Dir.Write("plt.c", "void plt_a(void);\nvoid plt_b(void);\nint main(void) { plt_a(); plt_b(); return 0; }\n");
            PltMap = Dir["plt.map"];
            Plt = NativeToolchain.Link(NativeToolchain.Gcc, [pltMain, libA, libB, NativeToolchain.ThunksSource], Dir["plt"], [.. GccRetpoline, "-Wl,-Map," + PltMap]);
            Assert.Equal("a\nb\nc\n", FixtureSet.RunProgram(Plt));
        }

        /// <summary>One plain `-O2` object (PLT calls, no thunks) in a deterministic archive of that name.</summary>
        string PlainArchive(string name, string source)
        {
            string obj = NativeToolchain.Compile(NativeToolchain.Gcc, source, Path.ChangeExtension(source, ".o"), ["-O2"]);
            string archive = Dir[name];
            NativeToolchain.Run("ar", ["rcsD", archive, obj], Dir.Path).EnsureSuccess();
            return archive;
        }

        /// <summary>Plain `-O2 -g` objects, as a third party ships them, in a deterministic archive.</summary>
        string MakeArchive(string name, string compiler, string[] sources)
        {
            string folder = Path.Combine(Dir.Path, name);
            Directory.CreateDirectory(folder);
            var objects = sources.Select(s => NativeToolchain.Compile(compiler, s, Path.Combine(folder, Path.GetFileNameWithoutExtension(s) + ".o"), ["-O2", "-g"])).ToList();
            string archive = Path.Combine(folder, "libthird.a");
            NativeToolchain.Run("ar", ["rcsD", archive, .. objects], folder).EnsureSuccess();
            return archive;
        }

        public void Dispose() => Dir.Dispose();
    }
}
