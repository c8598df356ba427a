using System.Text.Json;
using System.Text.RegularExpressions;
using Retpoline.Elf;
using Retpoline.Tool;
using Xunit;

namespace Retpoline.Tests;

/// <summary>Console redirection is process-wide: the in-process tool tests never run beside another class.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ToolConsoleCollection
{
    public const string Name = "retpoline tool (console)";
}

/// <summary>
/// The `retpoline` command as a user meets it: exit codes 0/1/2, the text, JSON (DESIGN.md §4) and SARIF 2.1.0 it
/// prints, the one-line coded error for unusable input and usage, and patch's output. Driven in process through
/// <see cref="Program"/> and once more as a real `dotnet retpoline.dll` process. Fixtures are compiled here with the
/// machine's gcc and linked with the shipped native/retpoline_thunks.S.
/// </summary>
[Collection(ToolConsoleCollection.Name)]
public sealed class ToolTests(ToolTests.Fixtures fx) : IClassFixture<ToolTests.Fixtures>
{
    static readonly Regex OneLineError = new(@"^retpoline: error (RPL01\d\d): (.+)$", RegexOptions.CultureInvariant);

    // ---- help, version, usage -------------------------------------------------------------------------------------

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void Help_prints_usage_and_exits_0(string flag)
    {
        var r = InProcess(flag);
        Assert.Equal(0, r.Code);
        Assert.Contains("retpoline verify [--json] [--sarif FILE] [--strict]", r.Out);
        Assert.Contains("retpoline patch --vendor Generic|Amd|None", r.Out);
        Assert.Contains("Exit codes: 0 clean, 1 findings", r.Out);
        Assert.Equal("", r.Err);
    }

    [Fact]
    public void No_arguments_print_usage_and_exit_2()
    {
        var r = InProcess();
        Assert.Equal(2, r.Code);
        Assert.Contains("Usage:", r.Out);
    }

    [Fact]
    public void Version_prints_the_tool_version()
    {
        var r = InProcess("--version");
        Assert.Equal(0, r.Code);
        Assert.Matches(@"^retpoline \d+\.\d+\.\d+\S*\r?\n$", r.Out);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("verify")]
    [InlineData("verify", "--bogus", "x")]
    [InlineData("verify", "--sarif")]
    [InlineData("verify", "--json=yes", "x")]
    [InlineData("patch", "x")]
    [InlineData("patch", "--vendor", "Intel", "x")]
    [InlineData("patch", "--vendor", "None")]
    [InlineData("patch", "--vendor", "None", "--call-sites", "sometimes", "x")]
    public void Usage_errors_are_one_RPL0108_line_and_exit_2(params string[] args)
    {
        var r = InProcess(args);
        Assert.Equal(2, r.Code);
        var line = Assert.Single(Lines(r.Err));
        Assert.StartsWith($"retpoline: error {Codes.Usage}: ", line);
        Assert.Equal("", r.Out);
    }

    // ---- exit codes and the text report ----------------------------------------------------------------------------

    [Fact]
    public void A_clean_binary_exits_0_with_allowed_startup_branches_as_info()
    {
        var r = InProcess("verify", fx.Clean);
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        var lines = Lines(r.Out);
        Assert.DoesNotContain(lines, l => l.Contains(" error "));
        Assert.Contains(lines, l => l.StartsWith($"{fx.Clean}: info: ToolchainStartup ") && l.Contains("'_init+0x"));
        Assert.Matches($@"^{Regex.Escape(fx.Clean)}: PASS: \d+ indirect branches .*0 error\(s\)", lines[^1]);
    }

    [Fact]
    public void A_hand_written_indirect_call_is_one_RPL0001_line_with_function_address_and_source()
    {
        var r = InProcess("verify", fx.Dirty);
        Assert.Equal(1, r.Code);
        Assert.Equal("", r.Err);
        var errors = Lines(r.Out).Where(l => l.Contains(" error ")).ToList();
        var line = Assert.Single(errors);
        // Source first, in the compiler's shape, the binary in brackets: `raw.S:6: error RPL0001: … [file]`.
        Assert.Matches(
            $@"raw\.S:{fx.RawCallLine}: error RPL0001: indirect call 'call rax' at 0x{fx.RawCallAddress:x} in function 'raw_call' " +
            $@"is not routed through a retpoline thunk.*\[{Regex.Escape(fx.Dirty)}\]$", line);
        Assert.Contains("RetpolineAllow", line); // names the opt-out
        Assert.Matches($@"^{Regex.Escape(fx.Dirty)}: FAIL: .*1 UserCode.* 1 error\(s\)", Lines(r.Out)[^1]);
    }

    [Fact]
    public void Strict_turns_toolchain_startup_into_RPL0003_errors()
    {
        var r = InProcess("verify", "--strict", fx.Clean);
        Assert.Equal(1, r.Code);
        var errors = Lines(r.Out).Where(l => l.Contains(" error ")).ToList();
        Assert.NotEmpty(errors);
        Assert.All(errors, l => Assert.StartsWith($"{fx.Clean}: error RPL0003: ", l));
        Assert.Contains(errors, l => l.Contains("_start"));
    }

    [Fact]
    public void A_PLT_entry_called_from_user_code_is_RPL0002_and_allow_waives_it()
    {
        var r = InProcess("verify", fx.Plt);
        Assert.Equal(1, r.Code);
        var printf = Assert.Single(Lines(r.Out), l => l.Contains("error RPL0002") && l.Contains("'printf@plt'"));
        Assert.Contains("called from main", printf);
        Assert.Contains("-fno-plt", printf);

        var allowed = InProcess("verify", "--allow", "printf@plt=reviewed: legacy import", fx.Plt);
        Assert.DoesNotContain(Lines(allowed.Out), l => l.Contains("error RPL0002") && l.Contains("'printf@plt'"));
        Assert.Contains(Lines(allowed.Out), l => l.Contains("info: Plt") && l.Contains("printf@plt") && l.Contains("reviewed: legacy import"));
    }

    [Fact]
    public void A_thunk_called_but_not_defined_is_RPL0010()
    {
        var r = InProcess("verify", fx.NoThunk);
        Assert.Equal(1, r.Code);
        Assert.Contains(Lines(r.Out), l => l.StartsWith($"{fx.NoThunk}: error RPL0010: ") && l.Contains("__x86_indirect_thunk_rax"));
    }

    // ---- unusable input: exactly one line, exit 2 ------------------------------------------------------------------

    public static TheoryData<string, string> BadInputs() => new()
    {
        { "missing", Codes.FileNotFound },
        { "directory", Codes.FileNotFound },
        { "empty", Codes.NotElf },
        { "text", Codes.NotElf },
        { "truncated", Codes.Truncated },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Unusable_input_is_exactly_one_coded_line_and_exit_2(string kind, string code)
    {
        string path = fx.Bad(kind);
        foreach (var args in new[] { new[] { "verify", path }, ["verify", "--json", path], ["patch", "--vendor", "None", path] })
        {
            var r = InProcess(args);
            Assert.Equal(2, r.Code);
            var line = Assert.Single(Lines(r.Err));
            var m = OneLineError.Match(line);
            Assert.True(m.Success, line);
            Assert.Equal(code, m.Groups[1].Value);
            Assert.StartsWith($"{path}: ", m.Groups[2].Value);
            Assert.DoesNotContain("Exception", line);
            if (args[1] != "--json") Assert.Equal("", r.Out);
        }
    }

    [Fact]
    public void Unusable_input_through_Main_writes_one_line_to_stderr()
    {
        // Main itself (not only Run): what the process entry point does with Console.Error.
        var r = ThroughMain("verify", fx.Bad("text"));
        Assert.Equal(2, r.Code);
        var line = Assert.Single(Lines(r.Err));
        Assert.Equal($"retpoline: error {Codes.NotElf}: {fx.Bad("text")}: not an ELF file (bad magic)", line);
    }

    [Fact]
    public void Patch_refuses_non_ELF_input_and_leaves_it_untouched()
    {
        string copy = fx.CopyOf(fx.Bad("text"), "notelf-patch.txt");
        var before = File.ReadAllBytes(copy);
        var r = InProcess("patch", "--vendor", "None", copy);
        Assert.Equal(2, r.Code);
        Assert.Matches(OneLineError, Assert.Single(Lines(r.Err)));
        Assert.Equal(before, File.ReadAllBytes(copy));
    }

    [Fact]
    public void An_unwritable_SARIF_path_is_one_RPL0107_line()
    {
        string missing = Path.Combine(fx.Directory, "no-such-dir", "report.sarif");
        var r = InProcess("verify", "--sarif", missing, fx.Clean);
        Assert.Equal(2, r.Code);
        var line = Assert.Single(Lines(r.Err));
        Assert.StartsWith($"retpoline: error {Codes.IoError}: {missing}: cannot write the report: ", line);
        Assert.Equal("", r.Out); // refused before anything was verified
    }

    [Fact]
    public void A_SARIF_path_that_is_a_directory_is_one_RPL0111_line()
    {
        var r = InProcess("verify", "--sarif", fx.Directory, fx.Clean);
        Assert.Equal(2, r.Code);
        Assert.Equal($"retpoline: error {Codes.ReportPathRefused}: {fx.Directory}: is a directory, not a regular file; a report is written as a new file renamed over the old one",
            Assert.Single(Lines(r.Err)));
    }

    // ---- several files: every file reported, worst exit code -------------------------------------------------------

    [Fact]
    public void Several_files_are_all_reported_and_the_worst_exit_code_wins()
    {
        var cleanDirty = InProcess("verify", fx.Clean, fx.Dirty);
        Assert.Equal(1, cleanDirty.Code);
        Assert.Contains(Lines(cleanDirty.Out), l => l.StartsWith($"{fx.Clean}: PASS: "));
        Assert.Contains(Lines(cleanDirty.Out), l => l.StartsWith($"{fx.Dirty}: FAIL: "));

        var withMissing = InProcess("verify", fx.Dirty, fx.Bad("missing"), fx.Clean);
        Assert.Equal(2, withMissing.Code);
        Assert.Contains(Lines(withMissing.Out), l => l.StartsWith($"{fx.Dirty}: FAIL: "));
        Assert.Contains(Lines(withMissing.Out), l => l.StartsWith($"{fx.Clean}: PASS: "));
        Assert.StartsWith($"retpoline: error {Codes.FileNotFound}: {fx.Bad("missing")}: ", Assert.Single(Lines(withMissing.Err)));

        Assert.Equal(0, InProcess("verify", fx.Clean, fx.Clean).Code);
    }

    // ---- JSON (DESIGN.md §4) ---------------------------------------------------------------------------------------

    static readonly string[] FileFields = ["path", "indirectBranches", "ibt", "shstk", "findings", "thunks"];
    static readonly string[] FindingFields = ["class", "function", "address", "instruction", "source"];
    static readonly string[] ThunkFields = ["name", "register", "form", "address"];
    static readonly string[] Classes = ["UserCode", "Plt", "ToolchainStartup", "Annotated", "PatchedSite"];

    [Fact]
    public void Json_has_exactly_the_documented_shape()
    {
        var r = InProcess("verify", "--json", fx.Clean, fx.Dirty);
        Assert.Equal(1, r.Code);
        Assert.Equal("", r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        var files = doc.RootElement.GetProperty("files");
        Assert.Equal([fx.Clean, fx.Dirty], files.EnumerateArray().Select(f => f.GetProperty("path").GetString()));

        foreach (var file in files.EnumerateArray())
        {
            // The required fields first, in the documented order (extra fields may follow).
            Assert.Equal(FileFields, file.EnumerateObject().Take(FileFields.Length).Select(p => p.Name));
            Assert.Equal(JsonValueKind.Number, file.GetProperty("indirectBranches").ValueKind);
            Assert.True(file.GetProperty("ibt").ValueKind is JsonValueKind.True or JsonValueKind.False);
            Assert.True(file.GetProperty("shstk").ValueKind is JsonValueKind.True or JsonValueKind.False);

            var findings = file.GetProperty("findings").EnumerateArray().ToList();
            Assert.True(file.GetProperty("indirectBranches").GetInt32() >= findings.Count);
            ulong previous = 0;
            foreach (var f in findings)
            {
                Assert.Equal(FindingFields, f.EnumerateObject().Take(FindingFields.Length).Select(p => p.Name));
                Assert.Contains(f.GetProperty("class").GetString(), Classes);
                Assert.False(string.IsNullOrEmpty(f.GetProperty("function").GetString()));
                Assert.False(string.IsNullOrEmpty(f.GetProperty("instruction").GetString()));
                Assert.True(f.GetProperty("source").ValueKind is JsonValueKind.String or JsonValueKind.Null);
                ulong a = Address(f.GetProperty("address"));
                Assert.True(a >= previous, "findings are in address order");
                previous = a;
            }

            var thunks = file.GetProperty("thunks").EnumerateArray().ToList();
            Assert.NotEmpty(thunks);
            foreach (var t in thunks)
            {
                Assert.Equal(ThunkFields, t.EnumerateObject().Take(ThunkFields.Length).Select(p => p.Name));
                string name = t.GetProperty("name").GetString()!, reg = t.GetProperty("register").GetString()!;
                Assert.Equal(name == "__x86_return_thunk" ? "Return" : "Generic", t.GetProperty("form").GetString());
                if (reg.Length > 0) Assert.EndsWith("_" + reg, name);
                Address(t.GetProperty("address"));
            }
            Assert.Contains(thunks, t => t.GetProperty("name").GetString() == "__x86_indirect_thunk_rax" && t.GetProperty("register").GetString() == "rax");
        }

        var clean = files[0];
        Assert.All(clean.GetProperty("findings").EnumerateArray(), f => Assert.Equal("ToolchainStartup", f.GetProperty("class").GetString()));

        var dirty = files[1];
        var user = Assert.Single(dirty.GetProperty("findings").EnumerateArray(), f => f.GetProperty("class").GetString() == "UserCode");
        Assert.Equal("raw_call", user.GetProperty("function").GetString());
        Assert.Equal($"0x{fx.RawCallAddress:x}", user.GetProperty("address").GetString());
        Assert.Equal("call rax", user.GetProperty("instruction").GetString());
        Assert.EndsWith($"raw.S:{fx.RawCallLine}", user.GetProperty("source").GetString());
        Assert.Equal(clean.GetProperty("indirectBranches").GetInt32() + 1, dirty.GetProperty("indirectBranches").GetInt32());
    }

    [Fact]
    public void Json_is_deterministic()
    {
        var a = InProcess("verify", "--json", fx.Dirty, fx.Plt);
        var b = InProcess("verify", "--json", fx.Dirty, fx.Plt);
        Assert.Equal(a.Out, b.Out);
    }

    [Fact]
    public void Json_indirect_branch_count_equals_objdump()
    {
        foreach (var file in new[] { fx.Clean, fx.Dirty, fx.Plt, fx.NoThunk })
        {
            var r = InProcess("verify", "--json", file);
            using var doc = JsonDocument.Parse(r.Out);
            int ours = doc.RootElement.GetProperty("files")[0].GetProperty("indirectBranches").GetInt32();
            string disassembly = NativeToolchain.Run(NativeToolchain.Objdump, ["-d", "--no-show-raw-insn", file]).EnsureSuccess().StdOut;
            int theirs = Regex.Matches(disassembly, @"(call|jmp)\s+\*").Count;
            Assert.Equal(theirs, ours);
        }
    }

    [Fact]
    public void Json_with_an_unusable_file_is_still_one_parseable_object_and_exit_2()
    {
        var r = InProcess("verify", "--json", fx.Clean, fx.Bad("empty"));
        Assert.Equal(2, r.Code);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.Equal(fx.Clean, Assert.Single(doc.RootElement.GetProperty("files").EnumerateArray()).GetProperty("path").GetString());
        Assert.Matches(OneLineError, Assert.Single(Lines(r.Err)));
    }

    [Fact]
    public void Json_lists_file_diagnostics_and_allowed_findings()
    {
        var r = InProcess("verify", "--json", "--allow", "printf@plt=legacy import", fx.Plt, fx.NoThunk);
        using var doc = JsonDocument.Parse(r.Out);
        var plt = doc.RootElement.GetProperty("files")[0];
        var printf = Assert.Single(plt.GetProperty("findings").EnumerateArray(), f => f.GetProperty("function").GetString() == "printf@plt");
        Assert.Equal("Plt", printf.GetProperty("class").GetString());
        Assert.Equal("legacy import", printf.GetProperty("allowedBy").GetString());

        var noThunk = doc.RootElement.GetProperty("files")[1];
        var d = Assert.Single(noThunk.GetProperty("diagnostics").EnumerateArray(), d => d.GetProperty("code").GetString() == Codes.ThunkMissing);
        Assert.Equal("error", d.GetProperty("severity").GetString());
        Assert.Contains("__x86_indirect_thunk_rax", d.GetProperty("message").GetString());
    }

    // ---- SARIF 2.1.0 -----------------------------------------------------------------------------------------------

    [Fact]
    public void Sarif_is_a_valid_2_1_0_log_whose_rules_cover_every_result()
    {
        string sarif = Path.Combine(fx.Directory, "all.sarif");
        var r = InProcess("verify", "--sarif", sarif, fx.Clean, fx.Dirty, fx.Plt, fx.NoThunk, fx.Exported);
        Assert.Equal(1, r.Code);
        using var doc = JsonDocument.Parse(File.ReadAllText(sarif));
        var root = doc.RootElement;
        Assert.Equal("2.1.0", root.GetProperty("version").GetString());
        Assert.Contains("sarif", root.GetProperty("$schema").GetString());
        var run = Assert.Single(root.GetProperty("runs").EnumerateArray());
        var driver = run.GetProperty("tool").GetProperty("driver");
        Assert.Equal("retpoline", driver.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(driver.GetProperty("version").GetString()));

        var rules = driver.GetProperty("rules").EnumerateArray().ToList();
        Assert.Equal(rules.Count, rules.Select(x => x.GetProperty("id").GetString()).Distinct().Count());
        foreach (var rule in rules)
        {
            Assert.Matches(@"^RPL\d{4}$", rule.GetProperty("id").GetString());
            Assert.False(string.IsNullOrEmpty(rule.GetProperty("name").GetString()));
            Assert.False(string.IsNullOrEmpty(rule.GetProperty("shortDescription").GetProperty("text").GetString()));
            Assert.False(string.IsNullOrEmpty(rule.GetProperty("fullDescription").GetProperty("text").GetString()));
            Assert.Contains("Fix", rule.GetProperty("help").GetProperty("text").GetString());
        }
        var ruleIds = rules.Select(x => x.GetProperty("id").GetString()).ToList();

        var results = run.GetProperty("results").EnumerateArray().ToList();
        Assert.NotEmpty(results);
        foreach (var res in results)
        {
            string id = res.GetProperty("ruleId").GetString()!;
            Assert.Contains(id, ruleIds);
            if (res.TryGetProperty("ruleIndex", out var index)) Assert.Equal(id, ruleIds[index.GetInt32()]);
            Assert.Contains(res.GetProperty("level").GetString(), new[] { "error", "warning", "note" });
            Assert.False(string.IsNullOrEmpty(res.GetProperty("message").GetProperty("text").GetString()));
            var first = res.GetProperty("locations")[0].GetProperty("physicalLocation");
            Assert.False(string.IsNullOrEmpty(first.GetProperty("artifactLocation").GetProperty("uri").GetString()));
        }
        var used = results.Select(x => x.GetProperty("ruleId").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { Codes.UserCode, Codes.Plt, Codes.ThunkMissing, Codes.ThunkExported }, used);
        Assert.Contains(results, x => x.GetProperty("ruleId").GetString() == Codes.ThunkExported && x.GetProperty("level").GetString() == "warning");
    }

    [Fact]
    public void Sarif_result_carries_binary_address_source_line_and_function()
    {
        string sarif = Path.Combine(fx.Directory, "dirty.sarif");
        Assert.Equal(1, InProcess("verify", "--sarif", sarif, fx.Dirty).Code);
        using var doc = JsonDocument.Parse(File.ReadAllText(sarif));
        var run = doc.RootElement.GetProperty("runs")[0];
        var res = Assert.Single(run.GetProperty("results").EnumerateArray());
        Assert.Equal(Codes.UserCode, res.GetProperty("ruleId").GetString());
        Assert.Equal("error", res.GetProperty("level").GetString());

        var locations = res.GetProperty("locations").EnumerateArray().ToList();
        var binary = locations[0];
        var physical = binary.GetProperty("physicalLocation");
        Assert.Equal(new Uri(fx.Dirty).AbsoluteUri, physical.GetProperty("artifactLocation").GetProperty("uri").GetString());
        ulong address = physical.TryGetProperty("address", out var addr)
            ? addr.GetProperty("absoluteAddress").GetUInt64()
            : (ulong)physical.GetProperty("region").GetProperty("byteOffset").GetInt64();
        Assert.Equal(fx.RawCallAddress, address);
        Assert.Equal("raw_call", binary.GetProperty("logicalLocations")[0].GetProperty("name").GetString());

        var source = Assert.Single(locations.Skip(1)).GetProperty("physicalLocation");
        Assert.EndsWith("raw.S", source.GetProperty("artifactLocation").GetProperty("uri").GetString());
        Assert.Equal(fx.RawCallLine, source.GetProperty("region").GetProperty("startLine").GetInt32());
    }

    [Fact]
    public void Sarif_for_a_clean_binary_has_no_results_and_still_validates()
    {
        string sarif = Path.Combine(fx.Directory, "clean.sarif");
        Assert.Equal(0, InProcess("verify", "--sarif", sarif, fx.Clean).Code);
        using var doc = JsonDocument.Parse(File.ReadAllText(sarif));
        var run = doc.RootElement.GetProperty("runs")[0];
        Assert.Equal(0, run.GetProperty("results").GetArrayLength());
        Assert.Equal("retpoline", run.GetProperty("tool").GetProperty("driver").GetProperty("name").GetString());
    }

    [Fact]
    public void Sarif_rules_come_from_the_catalog_with_problem_fix_and_waiver()
    {
        foreach (var code in typeof(Codes).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!))
        {
            var rule = Reporting.RuleCatalog.Get(code);
            Assert.False(string.IsNullOrWhiteSpace(rule.Title), code);
            Assert.False(string.IsNullOrWhiteSpace(rule.Problem), code);
            Assert.False(string.IsNullOrWhiteSpace(rule.Fix), code);
            Assert.False(string.IsNullOrWhiteSpace(rule.WaiveIf), code);
        }
    }

    [Fact]
    public void Docs_match_the_rule_catalog()
    {
        // docs/diagnostics.md is Problem / Fix / Waive if / Example per code, with the catalog's text verbatim.
        var codes = typeof(Codes).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToList();
        Assert.Equal(codes.Order(), Reporting.RuleCatalog.All.Select(r => r.Code).Order());
        string docs = File.ReadAllText(Path.Combine(NativeToolchain.RepoRoot, "docs", "diagnostics.md"));
        var sections = Regex.Split(docs, @"^### ", RegexOptions.Multiline).Skip(1).ToDictionary(s => s[..s.IndexOf('\n')].Trim());
        foreach (var rule in Reporting.RuleCatalog.All)
        {
            Assert.True(sections.TryGetValue(rule.Code, out var section), $"docs/diagnostics.md has no '### {rule.Code}' section");
            var lines = section.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            string severity = rule.Level.ToString().ToLowerInvariant();
            Assert.Contains($"**{rule.Title}** — {severity}, SARIF rule name `{rule.Name}`.", lines);
            Assert.Contains($"**Problem.** {rule.Problem}", lines);
            Assert.Contains($"**Fix.** {rule.Fix}", lines);
            Assert.Contains($"**Waive if.** {rule.WaiveIf}", lines);
            int example = lines.FindIndex(l => l.StartsWith("**Example**", StringComparison.Ordinal));
            Assert.True(example >= 0, $"{rule.Code}: no example");
            Assert.Contains(lines.Skip(example), l => l.StartsWith("$ retpoline ", StringComparison.Ordinal));
            Assert.Contains(lines.Skip(example), l => l.Contains($"{severity} {rule.Code}: "));
        }
    }

    // ---- patch -----------------------------------------------------------------------------------------------------

    [Fact]
    public void Patch_dry_run_shows_each_thunk_with_old_and_new_bytes_and_writes_nothing()
    {
        string copy = fx.CopyOf(fx.Clean, "dry-run");
        var before = File.ReadAllBytes(copy);
        var r = InProcess("patch", "--vendor", "None", "--dry-run", copy);
        Assert.Equal(0, r.Code);
        Assert.Equal(before, File.ReadAllBytes(copy));
        var lines = Lines(r.Out);
        int i = Array.FindIndex(lines, l => Regex.IsMatch(l, $@"^{Regex.Escape(copy)}: would patch __x86_indirect_thunk_rax at 0x[0-9a-f]+: Generic -> None$"));
        Assert.True(i >= 0, r.Out);
        Assert.Equal("e8 07 00 00 00 f3 90 0f ae e8 eb f9 48 89 04 24 c3", lines[i + 1].Trim());
        Assert.Equal("-> ff e0 cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc", lines[i + 2].Trim());
        Assert.Contains("nothing written", lines[^1]);
    }

    [Fact]
    public void Patch_rewrites_round_trips_and_warns_for_Amd()
    {
        string copy = fx.CopyOf(fx.Clean, "round-trip");
        var original = File.ReadAllBytes(copy);

        var none = InProcess("patch", "--vendor", "None", copy);
        Assert.Equal(0, none.Code);
        Assert.Equal("", none.Err);
        Assert.Matches($@"^{Regex.Escape(copy)}: patched __x86_indirect_thunk_rax at 0x[0-9a-f]+: Generic -> None", Lines(none.Out)[0]);
        Assert.NotEqual(original, File.ReadAllBytes(copy));
        var verified = InProcess("verify", "--json", copy);
        Assert.Equal(0, verified.Code);
        using (var doc = JsonDocument.Parse(verified.Out))
            Assert.All(doc.RootElement.GetProperty("files")[0].GetProperty("thunks").EnumerateArray()
                    .Where(t => t.GetProperty("register").GetString() != ""),
                t => Assert.Equal("None", t.GetProperty("form").GetString()));

        var amd = InProcess("patch", "--vendor", "Amd", copy);
        Assert.Equal(0, amd.Code);
        var warning = Assert.Single(Lines(amd.Err));
        Assert.StartsWith($"retpoline: warning {Codes.AmdVendor}: ", warning);
        Assert.Contains("March 2022", warning);
        Assert.Contains("Generic", warning);
        Assert.Contains(Lines(amd.Out), l => l.Contains("__x86_indirect_thunk_rax") && l.Contains("None -> Amd"));

        var again = InProcess("patch", "--vendor", "Amd", copy);
        Assert.Equal(0, again.Code);
        Assert.DoesNotContain(Lines(again.Out), l => l.Contains(" patched "));

        Assert.Equal(0, InProcess("patch", "--vendor", "generic", copy).Code); // vendor names are case-insensitive
        Assert.Equal(original, File.ReadAllBytes(copy));
    }

    [Fact]
    public void Patch_several_files_reports_each_and_exits_with_the_worst_code()
    {
        string a = fx.CopyOf(fx.Clean, "multi-a");
        var r = InProcess("patch", "--vendor", "None", a, fx.Bad("missing"));
        Assert.Equal(2, r.Code);
        Assert.Contains(Lines(r.Out), l => l.StartsWith($"{a}: patched "));
        Assert.StartsWith($"retpoline: error {Codes.FileNotFound}: ", Assert.Single(Lines(r.Err)));
    }

    // ---- the real process ------------------------------------------------------------------------------------------

    [Fact]
    public void As_a_process_exit_codes_output_and_errors_are_the_same()
    {
        var clean = Tool("verify", fx.Clean);
        Assert.Equal(0, clean.Code);
        Assert.Contains($"{fx.Clean}: PASS: ", clean.Out);

        var dirty = Tool("verify", "--json", fx.Dirty);
        Assert.Equal(1, dirty.Code);
        using (var doc = JsonDocument.Parse(dirty.Out))
            Assert.Contains(doc.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray(),
                f => f.GetProperty("class").GetString() == "UserCode" && f.GetProperty("function").GetString() == "raw_call");

        foreach (var kind in new[] { "missing", "directory", "empty", "text" })
        {
            var bad = Tool("verify", fx.Bad(kind));
            Assert.Equal(2, bad.Code);
            var line = Assert.Single(Lines(bad.Err));
            Assert.Matches(OneLineError, line);
            Assert.DoesNotContain("   at ", bad.Err); // never a stack trace
            Assert.Equal("", bad.Out);
        }

        var usage = Tool("verify", "--nope", fx.Clean);
        Assert.Equal(2, usage.Code);
        Assert.StartsWith($"retpoline: error {Codes.Usage}: ", Assert.Single(Lines(usage.Err)));

        Assert.Equal(0, Tool("--version").Code);
    }

    [Fact]
    public void As_a_process_relative_paths_stay_relative_in_SARIF()
    {
        var r = ToolIn(fx.Directory, "verify", "--sarif", "rel.sarif", Path.GetFileName(fx.Dirty));
        Assert.Equal(1, r.Code);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(fx.Directory, "rel.sarif")));
        var res = doc.RootElement.GetProperty("runs")[0].GetProperty("results")[0];
        Assert.Equal(Path.GetFileName(fx.Dirty),
            res.GetProperty("locations")[0].GetProperty("physicalLocation").GetProperty("artifactLocation").GetProperty("uri").GetString());
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    public readonly record struct Result(int Code, string Out, string Err);

    static string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    static ulong Address(JsonElement e)
    {
        string s = e.GetString()!;
        Assert.Matches("^0x[0-9a-f]+$", s);
        return Convert.ToUInt64(s[2..], 16);
    }

    /// <summary>The tool in this process with its own writers (Main writes stdout to the process's stdout stream).</summary>
    static Result InProcess(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    /// <summary>Program.Main with Console.Out and Console.Error redirected (stderr is what Main leaves on Console).</summary>
    static Result ThroughMain(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = Program.Main(args);
            return new Result(code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    /// <summary>
    /// A broken install (the tool without ELFSharp.dll beside it) is our failure, not the input's: one internal-error
    /// line naming the assembly, never RPL0102 "cannot read" about a perfectly good file.
    /// </summary>
    [Fact]
    public void A_missing_engine_assembly_is_an_internal_error_not_an_unreadable_input()
    {
        string copy = System.IO.Directory.CreateTempSubdirectory("retpoline-broken-install-").FullName;
        try
        {
            foreach (var f in System.IO.Directory.GetFiles(AppContext.BaseDirectory))
                if (Path.GetFileName(f) is var n && (n.StartsWith("retpoline.", StringComparison.Ordinal) || n is "Retpoline.Engine.dll" or "Iced.dll"))
                    File.Copy(f, Path.Combine(copy, n));
            var r = NativeToolchain.Run("dotnet", [Path.Combine(copy, "retpoline.dll"), "verify", fx.Clean]);
            Assert.Equal(2, r.ExitCode);
            var line = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith($"retpoline: error {Codes.IoError}: internal error: FileNotFoundException: Could not load file or assembly 'ELFSharp", line);
            Assert.DoesNotContain("cannot read", line);
        }
        finally { System.IO.Directory.Delete(copy, recursive: true); }
    }

    static Result Tool(params string[] args) => ToolIn(null, args);

    /// <summary>`dotnet retpoline.dll ARGS` as a separate process, in <paramref name="workingDirectory"/> when given.</summary>
    static Result ToolIn(string? workingDirectory, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "retpoline.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project references Tool/");
        var r = NativeToolchain.Run("dotnet", [dll, .. args], workingDirectory);
        return new Result(r.ExitCode, r.StdOut, r.StdErr);
    }

    /// <summary>Compiles the fixtures once for the class: gcc with the retpoline flags, linked with native/retpoline_thunks.S.</summary>
    public sealed class Fixtures : IDisposable
    {
        static readonly string[] RetpolineFlags = ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register"];

        public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("retpoline-tool-tests-").FullName;
        /// <summary>-fno-plt -Wl,-z,now: only toolchain startup branches remain.</summary>
        public string Clean { get; }
        /// <summary>Clean plus a hand-written `call *%rax` in raw.S (assembled with -g).</summary>
        public string Dirty { get; }
        /// <summary>Without -fno-plt: printf@plt is called from main.</summary>
        public string Plt { get; }
        /// <summary>A shared library that calls __x86_indirect_thunk_rax and defines none.</summary>
        public string NoThunk { get; }
        /// <summary>A shared library that defines __x86_indirect_thunk_rax with default visibility.</summary>
        public string Exported { get; }
        public ulong RawCallAddress { get; }
        public int RawCallLine { get; }

        const string ProgramSource = """
            #include <stdio.h>
            typedef long (*op_t)(long);
            static long twice(long x) { return 2 * x; }
            op_t volatile op = twice;
            __attribute__((noinline)) long dispatch(long v) { return op(v); }
            int main(int argc, char **argv) { (void)argv; printf("%ld\n", dispatch(argc)); return 0; }
            """;

        // raw_call's first instruction is the indirect call, on line 6.
        const string RawAsm = """
            	.text
            	.globl	raw_call
            	.type	raw_call, @function
            raw_call:
            	.cfi_startproc
            	call	*%rax
            	ret
            	.cfi_endproc
            	.size	raw_call, .-raw_call
            	.section	.note.GNU-stack,"",@progbits

            """;

        const string Library = """
            long (*volatile hook)(long);
            long call_hook(long v) { return hook(v); }
            """;

        const string ExportedThunk = """
            	.text
            	.globl	__x86_indirect_thunk_rax
            	.type	__x86_indirect_thunk_rax, @function
            __x86_indirect_thunk_rax:
            	call	1f
            2:	pause
            	lfence
            	jmp	2b
            1:	mov	%rax, (%rsp)
            	ret
            	.size	__x86_indirect_thunk_rax, .-__x86_indirect_thunk_rax
            	.section	.note.GNU-stack,"",@progbits

            """;

        public Fixtures()
        {
            string thunks = NativeToolchain.ThunksSource;
            string program = Write("program.c", ProgramSource);
            string raw = Write("raw.S", RawAsm);
            string library = Write("library.c", Library);
            string exportedThunk = Write("exported_thunk.S", ExportedThunk);

            Clean = Gcc(["-fno-plt", "-Wl,-z,now", program, thunks], Path.Combine(Directory, "clean"));
            Dirty = Gcc(["-g", "-fno-plt", "-Wl,-z,now", program, raw, thunks], Path.Combine(Directory, "dirty"));
            Plt = Gcc([program, thunks], Path.Combine(Directory, "plt"));
            NoThunk = Gcc(["-fPIC", "-shared", library], Path.Combine(Directory, "libnothunk.so"));
            Exported = Gcc(["-fPIC", "-shared", library, exportedThunk], Path.Combine(Directory, "libexported.so"));

            RawCallAddress = ElfFile.Load(Dirty).Symbols.First(s => s.Name == "raw_call" && s.IsDefined).Value;
            RawCallLine = Array.FindIndex(RawAsm.Split('\n'), l => l.Contains("call\t*%rax")) + 1;

            // Unusable inputs.
            File.WriteAllBytes(Path.Combine(Directory, "empty"), []);
            File.WriteAllText(Path.Combine(Directory, "notes.txt"), "not an ELF file\n");
            File.WriteAllBytes(Path.Combine(Directory, "truncated"), File.ReadAllBytes(Clean).AsSpan(0, 64).ToArray());
            System.IO.Directory.CreateDirectory(Path.Combine(Directory, "a-directory"));
        }

        /// <summary>gcc with the retpoline flags; $CC when set.</summary>
        static string Gcc(IEnumerable<string> inputsAndFlags, string output)
            => NativeToolchain.Link(Environment.GetEnvironmentVariable("CC") is { Length: > 0 } cc ? cc : NativeToolchain.Gcc, inputsAndFlags, output, RetpolineFlags);

        public string Bad(string kind) => kind switch
        {
            "missing" => Path.Combine(Directory, "does-not-exist"),
            "directory" => Path.Combine(Directory, "a-directory"),
            "empty" => Path.Combine(Directory, "empty"),
            "text" => Path.Combine(Directory, "notes.txt"),
            "truncated" => Path.Combine(Directory, "truncated"),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };

        public string CopyOf(string file, string name)
        {
            string copy = Path.Combine(Directory, name);
            File.Copy(file, copy, overwrite: true);
            return copy;
        }

        string Write(string name, string text)
        {
            string path = Path.Combine(Directory, name);
            File.WriteAllText(path, text);
            return path;
        }

        public void Dispose()
        {
            try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
