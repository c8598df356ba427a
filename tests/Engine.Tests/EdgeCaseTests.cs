using System.Text.Json;
using System.Text.RegularExpressions;
using Retpoline.Patching;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Issue 6, the edges real code bases hit, at engine level: RETPOLINE_SAFE annotations (native/retpoline.h),
/// -fcf-protection with retpolines (the `_nt_` thunks), SHSTK-marked binaries with Generic thunks, and straight-line
/// speculation (-mharden-sls / HardenSls). Every binary is compiled here by the real gcc 12 / clang-14 and linked
/// with the shipped native/retpoline_thunks.S; nothing is checked in.
/// </summary>
public sealed class EdgeCaseTests : IDisposable
{
    readonly TempDirectory dir = new("rpl-edge-");

    public void Dispose() => dir.Dispose();

    static string NativeDir => Path.Combine(NativeToolchain.RepoRoot, "native");
    static string Thunks => NativeToolchain.ThunksSource;

    /// <summary>The SDK's GCC flags (FlagSet) plus a link that leaves no PLT entry user code calls.</summary>
    static readonly string[] GccRetpoline = ["-O2", "-fno-plt", "-Wl,-z,now", "-mindirect-branch=thunk-extern", "-mindirect-branch-register"];
    static readonly string[] ClangRetpoline = ["-O2", "-fno-plt", "-Wl,-z,now", "-mretpoline-external-thunk", "-fuse-ld=lld"];

    string Build(string driver, string name, IEnumerable<string> flags, params string[] sources)
        => NativeToolchain.Link(driver, [.. sources, Thunks], dir[name], ["-I", NativeDir, .. flags]);

    static string RunOk(string exe)
    {
        var r = NativeToolchain.Run(exe).EnsureSuccess();
        return r.StdOut.Trim();
    }

    static string Objdump(string file) => NativeToolchain.Run(NativeToolchain.Objdump, "-d", "--no-show-raw-insn", file).EnsureSuccess().StdOut;

    /// <summary>How many direct `call`/`jmp` objdump shows to exactly <paramref name="symbol"/>.</summary>
    static int DirectBranchesTo(string disassembly, string symbol)
        => Regex.Matches(disassembly, @"^\s*[0-9a-f]+:\s+(call|jmp)\s+[0-9a-f]+ <" + Regex.Escape(symbol) + ">$", RegexOptions.Multiline).Count;

    static string Describe(VerifyReport r)
        => string.Join("\n", r.Diagnostics.Select(d => $"{d.Code} {d.Severity}: {d.Message}")
            .Concat(r.Findings.Select(f => $"finding {f.Class} {f.Function} {f.Instruction} allowed={f.AllowedBy}")));

    static void AssertClean(VerifyReport r) => Assert.False(r.HasErrors, "expected a clean verify:\n" + Describe(r));

    // ---- PLT entries with many callers ----------------------------------------------------------------------------

    /// <summary>
    /// A PLT entry a large library calls from thousands of functions (memcpy@plt) must still give a line a person can
    /// read: the first five callers in name order, then how many more. The full set was a 1.2 MB message on libLLVM.
    /// </summary>
    [Fact]
    public void A_PLT_entry_called_from_many_functions_names_five_callers_and_counts_the_rest()
    {
        var source = new System.Text.StringBuilder("#include <stdio.h>\n");
        for (int i = 0; i < 8; i++) source.Append($"__attribute__((noinline)) void caller_{i}(void) {{ puts(\"{i}\"); }}\n");
        source.Append("int main(void) {");
        for (int i = 0; i < 8; i++) source.Append($" caller_{i}();");
        source.Append(" return 0; }\n");
        string c = dir["many.c"];
        File.WriteAllText(c, source.ToString());
        // No -fno-plt: puts goes through its PLT entry, called from eight functions.
        string exe = Build(NativeToolchain.Gcc, "many", ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register"], c);

        var r = Verifier.Verify(exe);
        var puts = Assert.Single(r.Findings, f => f.Function == "puts@plt");
        Assert.Equal(FindingClass.Plt, puts.Class);
        Assert.Equal("called from caller_0, caller_1, caller_2, caller_3, caller_4 and 3 more", puts.Detail);
    }

    // ---- RETPOLINE_SAFE -------------------------------------------------------------------------------------------

    const string AnnotatedS = """
        #include <retpoline.h>
        	.text
        	.globl call_it
        	.type call_it,@function
        call_it:
        	sub $8, %rsp
        	mov %rdi, %rax
        	RETPOLINE_SAFE
        	call *%rax
        	add $8, %rsp
        	ret
        	.size call_it,.-call_it

        	.globl jump_it
        	.type jump_it,@function
        jump_it:
        	mov %rdi, %rdx
        	RETPOLINE_SAFE
        	jmp *%rdx
        	.size jump_it,.-jump_it
        	.section .note.GNU-stack,"",@progbits
        """;

    const string AnnotatedMainC = """
        #include <stdio.h>
        long call_it(long (*f)(void));
        long jump_it(long (*f)(void));
        static long seven(void) { return 7; }
        static long five(void) { return 5; }
        int main(void) { printf("%ld %ld\n", call_it(seven), jump_it(five)); return 0; }
        """;

    /// <summary>The same two branches from C: inline asm (a string) and a top-level asm function.</summary>
    const string AnnotatedC = """
        #include <stdio.h>
        #include <retpoline.h>
        __attribute__((noinline)) long c_call(long (*f)(void))
        {
            long r = (long)f;
            __asm__ volatile(RETPOLINE_SAFE "call *%%rax"
                             : "+a"(r) : : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
            return r;
        }
        __asm__(".text\n\t.globl c_jump\n\t.type c_jump,@function\nc_jump:\n\tmov %rdi, %rdx\n\t"
                RETPOLINE_SAFE "jmp *%rdx\n\t.size c_jump,.-c_jump\n");
        long c_jump(long (*f)(void));
        static long seven(void) { return 7; }
        static long five(void) { return 5; }
        int main(void) { printf("%ld %ld\n", c_call(seven), c_jump(five)); return 0; }
        """;

    /// <summary>The driver and the SDK's retpoline flags for it: gcc 12 with GNU ld, clang-14 with lld-14.</summary>
    static (string driver, string[] flags) Toolchain(string compiler)
        => compiler == "gcc" ? (NativeToolchain.Gcc, GccRetpoline) : (NativeToolchain.Clang, ClangRetpoline);

    [Theory]
    [InlineData("gcc")]
    [InlineData("clang-14")]
    public void Annotated_branches_in_a_S_file_verify_clean_and_are_listed_as_Annotated(string compiler)
    {
        var (driver, flags) = Toolchain(compiler);
        string exe = Build(driver, "annotated-s", flags, dir.Write("tramp.S", AnnotatedS), dir.Write("main.c", AnnotatedMainC));
        Assert.Equal("7 5", RunOk(exe));

        var r = Verifier.Verify(exe, new VerifyOptions());
        AssertClean(r);
        var annotated = r.Findings.Where(f => f.Class == FindingClass.Annotated).Select(f => (f.Function, f.Instruction)).ToList();
        // call_it: sub $8,%rsp (4 bytes), mov %rdi,%rax (3): the call is at +0x7; jump_it: mov (3), jmp at +0x3.
        Assert.Equal([("call_it+0x7", "call rax"), ("jump_it+0x3", "jmp rdx")], annotated);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);
        Assert.DoesNotContain(r.Diagnostics, d => d.Code == Codes.AnnotationMisplaced);

        // Without the marks the same two branches are RPL0001: the annotation, not the file, is what exempts them.
        string bare = Build(driver, "bare-s", flags, dir.Write("bare.S", AnnotatedS.Replace("\tRETPOLINE_SAFE\n", "")), dir["main.c"]);
        var b = Verifier.Verify(bare, new VerifyOptions());
        Assert.Equal(["call_it+0x7", "jump_it+0x3"], b.Diagnostics.Where(d => d.Code == Codes.UserCode).Select(d => d.Function).ToList());

        // The tool's JSON lists them with class Annotated.
        var json = ToolJson(exe);
        var classes = json.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray()
            .Where(f => f.GetProperty("class").GetString() == "Annotated").Select(f => f.GetProperty("function").GetString()).ToList();
        Assert.Equal(["call_it+0x7", "jump_it+0x3"], classes);
    }

    [Theory]
    [InlineData("gcc")]
    [InlineData("clang-14")]
    public void Annotated_branches_in_C_inline_asm_verify_clean_and_are_listed_as_Annotated(string compiler)
    {
        var (driver, flags) = Toolchain(compiler);
        // -mno-red-zone: the inline-asm call pushes a return address below %rsp.
        string exe = Build(driver, "annotated-c", [.. flags, "-mno-red-zone"], dir.Write("annotated.c", AnnotatedC));
        Assert.Equal("7 5", RunOk(exe));

        var r = Verifier.Verify(exe, new VerifyOptions());
        AssertClean(r);
        var annotated = r.Findings.Where(f => f.Class == FindingClass.Annotated).ToList();
        Assert.Equal(2, annotated.Count);
        Assert.Equal("call rax", annotated.Single(f => f.Function.StartsWith("c_call+", StringComparison.Ordinal)).Instruction);
        Assert.Equal(("c_jump+0x3", "jmp rdx"), annotated.Where(f => f.Function.StartsWith("c_jump", StringComparison.Ordinal)).Select(f => (f.Function, f.Instruction)).Single());
        Assert.All(annotated, f => Assert.Equal("marked RETPOLINE_SAFE in source", f.Detail));
        // Exactly the instructions objdump shows there, not merely something in the same function.
        string dis = Objdump(exe);
        Assert.Equal(BranchIn(dis, "c_call", @"call\s+\*%rax"), annotated.Single(f => f.Instruction == "call rax").Address);
        Assert.Equal(BranchIn(dis, "c_jump", @"jmp\s+\*%rdx"), annotated.Single(f => f.Instruction == "jmp rdx").Address);

        // The recorded addresses are exactly the two branches: .retpoline_safe holds two 8-byte addresses.
        var sections = NativeToolchain.Run(NativeToolchain.Readelf, "-SW", exe).EnsureSuccess().StdOut;
        var m = Regex.Match(sections, @"\.retpoline_safe\s+PROGBITS\s+0+\s+[0-9a-f]+\s+([0-9a-f]+)\s+00\s+(\d+)");
        Assert.True(m.Success, sections);
        Assert.Equal(16, Convert.ToInt32(m.Groups[1].Value, 16));

        var json = ToolJson(exe);
        var listed = json.RootElement.GetProperty("files")[0].GetProperty("findings").EnumerateArray()
            .Where(f => f.GetProperty("class").GetString() == "Annotated").Select(f => f.GetProperty("instruction").GetString()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["call rax", "jmp rdx"], listed); // in address order the top-level asm (c_jump) may come first
    }

    [Fact]
    public void An_annotation_that_does_not_mark_an_indirect_branch_is_RPL0004()
    {
        const string misplaced = """
            #include <retpoline.h>
            	.text
            	.globl misplaced
            	.type misplaced,@function
            misplaced:
            	RETPOLINE_SAFE
            	mov %rdi, %rax
            	ret
            	.size misplaced,.-misplaced
            	.section .note.GNU-stack,"",@progbits
            """;
        string exe = Build(NativeToolchain.Gcc, "misplaced", GccRetpoline, dir.Write("misplaced.S", misplaced),
            dir.Write("main.c", "long misplaced(long);\nint main(void) { return (int)misplaced(0); }\n"));
        Assert.Equal(0, NativeToolchain.Run(exe).ExitCode);

        var r = Verifier.Verify(exe, new VerifyOptions());
        Assert.True(r.HasErrors);
        var d = Assert.Single(r.Diagnostics, x => x.Code == Codes.AnnotationMisplaced);
        Assert.Equal(Severity.Error, d.Severity);
        Assert.Equal("misplaced", d.Function); // the mark is on the first instruction: no +0x0
        Assert.Equal(NativeToolchainSymbol(exe, "misplaced"), d.Address);
        Assert.Contains("does not mark an indirect call or jump", d.Message);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.Annotated);
    }

    // ---- -fcf-protection ------------------------------------------------------------------------------------------

    /// <summary>Plain indirect calls, plus calls through a `nocf_check` pointer: GCC emits `notrack` branches for those,
    /// which with retpolines become calls/jumps to `__x86_indirect_thunk_nt_<reg>`.</summary>
    const string CfProtectionC = """
        #include <stdio.h>
        typedef long (*op)(long, long);
        typedef long (*raw_op)(long) __attribute__((nocf_check));
        static long add(long a, long b) { return a + b; }
        static long sub(long a, long b) { return a - b; }
        static long mul(long a, long b) { return a * b; }
        op table[] = { add, sub, mul };
        __attribute__((noinline)) long run(int n) { long t = 0; for (int i = 0; i < n; i++) t += table[i % 3](10 + i, 3); return t; }
        __attribute__((noinline, nocf_check)) long twice(long x) { return 2 * x; }
        raw_op volatile raw = twice;
        __attribute__((noinline)) long call_raw(raw_op f, long x) { return f(x) + 1; }
        __attribute__((noinline)) long tail_raw(raw_op f, long x) { return f(x); }
        int main(void) { printf("total=%ld raw=%ld tail=%ld\n", run(6), call_raw(raw, 20), tail_raw(raw, 4)); return 0; }
        """;
    const string CfProtectionExpected = "total=129 raw=41 tail=8";

    [Fact]
    public void Gcc_cf_protection_full_links_runs_verifies_and_routes_notrack_branches_through_the_nt_thunk()
    {
        string exe = Build(NativeToolchain.Gcc, "cf-gcc", [.. GccRetpoline, "-fcf-protection=full"], dir.Write("cf.c", CfProtectionC));
        Assert.Equal(CfProtectionExpected, RunOk(exe));

        var r = Verifier.Verify(exe, new VerifyOptions());
        AssertClean(r);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);

        // What GCC 12 really emits (objdump): the nocf_check call and tail call go to the _nt_ thunk of %rax, the
        // table calls to the plain one. Verify counts exactly the same references.
        string dis = Objdump(exe);
        int nt = DirectBranchesTo(dis, "__x86_indirect_thunk_nt_rax"), plain = DirectBranchesTo(dis, "__x86_indirect_thunk_rax");
        Assert.Equal(2, nt); // call_raw: call; tail_raw: jmp
        Assert.True(plain >= 1, dis);
        var ntThunk = Assert.Single(r.Thunks, t => t.Name == "__x86_indirect_thunk_nt_rax");
        Assert.Equal(ThunkForm.Generic, ntThunk.Form);
        Assert.Equal("rax", ntThunk.Register);
        Assert.Equal(nt, ntThunk.DirectReferences);
        Assert.Equal(plain, r.Thunks.Single(t => t.Name == "__x86_indirect_thunk_rax").DirectReferences);
        // The thunk file defines both forms for all 15 registers.
        Assert.Equal(30, r.Thunks.Count(t => t.Name.StartsWith("__x86_indirect_thunk_", StringComparison.Ordinal)));

        // Debian 12's crt1.o/crti.o/crtbegin.o carry no GNU property, so the link is marked neither IBT nor SHSTK
        // even though every object we compiled is.
        Assert.False(r.Ibt);
        Assert.False(r.Shstk);
        string obj = NativeToolchain.Compile(NativeToolchain.Gcc, dir["cf.c"], dir["cf.o"], [.. GccRetpoline[..1], "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fcf-protection=full"]);
        var o = Verifier.Verify(obj, new VerifyOptions());
        Assert.True(o.Ibt);
        Assert.True(o.Shstk);
    }

    [Fact]
    public void Clang_cf_protection_full_links_with_lld_runs_and_verifies_clean()
    {
        string exe = Build(NativeToolchain.Clang, "cf-clang", [.. ClangRetpoline, "-fcf-protection=full"], dir.Write("cf.c", CfProtectionC));
        Assert.Equal(CfProtectionExpected, RunOk(exe));

        var r = Verifier.Verify(exe, new VerifyOptions());
        AssertClean(r);
        Assert.DoesNotContain(r.Findings, f => f.Class == FindingClass.UserCode);
        // clang-14 ignores nocf_check here: every indirect branch, notrack or not, goes to __x86_indirect_thunk_r11.
        string dis = Objdump(exe);
        int r11 = DirectBranchesTo(dis, "__x86_indirect_thunk_r11");
        Assert.True(r11 >= 3, dis);
        Assert.Equal(r11, r.Thunks.Single(t => t.Name == "__x86_indirect_thunk_r11").DirectReferences);
        Assert.All(r.Thunks.Where(t => t.Name.Contains("_nt_", StringComparison.Ordinal)), t => Assert.Equal(0, t.DirectReferences));
        Assert.Equal(0, DirectBranchesTo(dis, "__x86_indirect_thunk_nt_r11"));
        Assert.False(r.Shstk);
    }

    [Theory]
    [InlineData("-mindirect-branch=thunk", "indirect-branch")]
    [InlineData("-mindirect-branch=thunk-inline", "indirect-branch")]
    [InlineData("-mfunction-return=thunk", "function-return")]
    public void Gcc_rejecting_thunk_mode_with_cf_protection_becomes_one_RPL0210_naming_the_fix(string mode, string flag)
    {
        string gccText = $"'-m{flag}' and '-fcf-protection' are not compatible";
        // What gcc 12 really prints: the message once per function, system headers' inline functions included at -O2.
        string src = dir.Write("cf.c", CfProtectionC);
        var gcc = NativeToolchain.Run(NativeToolchain.Gcc, ["-O2", mode, "-fcf-protection=full", "-c", src, "-o", dir["cf.o"]]);
        Assert.NotEqual(0, gcc.ExitCode);
        int repeats = Regex.Matches(gcc.StdErr, "error: " + Regex.Escape(gccText)).Count;
        Assert.True(repeats > 5, gcc.StdErr);

        var parsed = Retpoline.Toolchain.CompilerDiagnostics.Parse(gcc.StdErr, Retpoline.Toolchain.CompilerFamily.Gcc);
        var d = Assert.Single(parsed);
        Assert.Equal(Retpoline.Toolchain.ToolchainCodes.CfProtectionConflict, d.Code);
        Assert.Equal("RPL0210", d.Code);
        Assert.Equal(Severity.Error, d.Severity);
        Assert.Equal(gccText + $" (the SDK's own -m{flag}=thunk-extern works with -fcf-protection: remove -m{flag}=thunk or thunk-inline from CFlags/CxxFlags; " +
            "GCC before 10 rejects thunk-extern too: use GCC >= 10 or clang)", d.Message);
        // At the first function GCC complained about (an inline function of <stdio.h> at -O2).
        var first = Regex.Match(gcc.StdErr, @"^(?<file>[^:\n]+):(?<line>\d+):(?<col>\d+): error: ", RegexOptions.Multiline);
        Assert.Equal((first.Groups["file"].Value, int.Parse(first.Groups["line"].Value)), (d.File, d.Line));
    }

    [Fact]
    public void Gcc_accepts_thunk_extern_with_cf_protection_for_calls_and_returns()
    {
        string src = dir.Write("cf.c", CfProtectionC);
        var gcc = NativeToolchain.Run(NativeToolchain.Gcc, ["-O2", "-mindirect-branch=thunk-extern", "-mfunction-return=thunk-extern", "-fcf-protection=full", "-c", src, "-o", dir["cf.o"]]);
        Assert.True(gcc.Succeeded, gcc.StdErr);
        Assert.Empty(Retpoline.Toolchain.CompilerDiagnostics.Parse(gcc.StdErr, Retpoline.Toolchain.CompilerFamily.Gcc));
    }

    // ---- shadow stacks --------------------------------------------------------------------------------------------

    [Fact]
    public void The_thunk_object_claims_IBT_but_never_SHSTK()
    {
        string obj = NativeToolchain.Compile(NativeToolchain.Gcc, Thunks, dir["thunks.o"]);
        var notes = NativeToolchain.Run(NativeToolchain.Readelf, "-n", obj).EnsureSuccess().StdOut;
        Assert.Contains("x86 feature: IBT", notes);
        Assert.DoesNotContain("SHSTK", notes);
        var r = Verifier.Verify(obj, new VerifyOptions());
        Assert.True(r.Ibt);
        Assert.False(r.Shstk);
    }

    [Theory]
    [InlineData(Vendor.None, ThunkForm.None)]
    [InlineData(Vendor.Amd, ThunkForm.Amd)]
    public void A_SHSTK_marked_binary_with_Generic_thunks_is_RPL0015_until_patched(Vendor vendor, ThunkForm form)
    {
        // GNU ld's -z shstk forces the marking whatever the inputs say (Debian's crt objects carry none).
        string exe = Build(NativeToolchain.Gcc, "shstk", [.. GccRetpoline, "-fcf-protection=full", "-Wl,-z,shstk"], dir.Write("cf.c", CfProtectionC));
        Assert.Contains("x86 feature: SHSTK", NativeToolchain.Run(NativeToolchain.Readelf, "-n", exe).EnsureSuccess().StdOut);
        Assert.Equal(CfProtectionExpected, RunOk(exe)); // no CET shadow stacks on this host: it still runs

        var r = Verifier.Verify(exe, new VerifyOptions());
        Assert.True(r.Shstk);
        Assert.False(r.Ibt);
        Assert.True(r.HasErrors);
        var generic = r.Thunks.Where(t => t.Form == ThunkForm.Generic).Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(30, generic.Count);
        // One error per file (the cause, the marking, is one), at the first Generic thunk, counting them all.
        var shstk = Assert.Single(r.Diagnostics, d => d.Code == Codes.ShstkWithGeneric);
        Assert.Equal(Severity.Error, shstk.Severity);
        var first = r.Thunks.Where(t => t.Form == ThunkForm.Generic).MinBy(t => t.Address)!;
        Assert.Equal((first.Name, first.Address), (shstk.Function, shstk.Address));
        Assert.Equal("__x86_indirect_thunk_rax", first.Name);
        Assert.StartsWith("the binary is marked shadow-stack compatible (SHSTK) but 30 thunk(s) have the Generic body (__x86_indirect_thunk_rax, ", shstk.Message);
        Assert.Contains("faults under CET shadow stacks", shstk.Message);

        // The same file patched to vendor None (jmp *%reg) or Amd (lfence; jmp *%reg) is fine under shadow stacks.
        var p = Patcher.Patch(exe, vendor);
        Assert.True(p.Written);
        var after = Verifier.Verify(exe, new VerifyOptions());
        Assert.True(after.Shstk);
        Assert.DoesNotContain(after.Diagnostics, d => d.Code == Codes.ShstkWithGeneric);
        AssertClean(after);
        Assert.Equal(30, after.Thunks.Count(t => t.Register.Length > 0));
        Assert.All(after.Thunks.Where(t => t.Register.Length > 0), t => Assert.Equal(form, t.Form));
        Assert.Equal(CfProtectionExpected, RunOk(exe));

        // The JSON carries the markings.
        var file = ToolJson(exe).RootElement.GetProperty("files")[0];
        Assert.True(file.GetProperty("shstk").GetBoolean());
        Assert.False(file.GetProperty("ibt").GetBoolean());
    }

    // ---- straight-line speculation --------------------------------------------------------------------------------

    [Fact]
    public void Harden_sls_build_verifies_clean_with_HardenSls()
    {
        string exe = Build(NativeToolchain.Gcc, "sls", [.. GccRetpoline, "-mharden-sls=all"], dir.Write("cf.c", CfProtectionC.Replace("__attribute__((nocf_check))", "").Replace(", nocf_check", "")));
        Assert.Equal(CfProtectionExpected, RunOk(exe));
        AssertClean(Verifier.Verify(exe, new VerifyOptions { HardenSls = true }));

        // The same source without -mharden-sls: every ret of user code is reported.
        string plain = Build(NativeToolchain.Gcc, "no-sls", GccRetpoline, dir["cf.c"]);
        var r = Verifier.Verify(plain, new VerifyOptions { HardenSls = true });
        var functions = r.Diagnostics.Where(d => d.Code == Codes.SlsUnprotected).Select(d => Regex.Replace(d.Function!, @"\+0x[0-9a-f]+$", "")).ToHashSet();
        Assert.Superset(new HashSet<string> { "run", "main", "twice", "call_raw" }, functions);
        Assert.False(Verifier.Verify(plain, new VerifyOptions()).HasErrors); // only under HardenSls
    }

    [Fact]
    public void A_hand_written_ret_without_int3_is_RPL0005_with_its_function()
    {
        const string asm = """
            	.text
            	.globl safe_ret
            	.type safe_ret,@function
            safe_ret:
            	mov %rdi, %rax
            	ret
            	int3
            	.size safe_ret,.-safe_ret
            	.globl bare_ret
            	.type bare_ret,@function
            bare_ret:
            	lea 1(%rdi), %rax
            	ret
            	.size bare_ret,.-bare_ret
            	.section .note.GNU-stack,"",@progbits
            """;
        string exe = Build(NativeToolchain.Gcc, "sls-asm", [.. GccRetpoline, "-mharden-sls=all"], dir.Write("rets.S", asm),
            dir.Write("main.c", "#include <stdio.h>\nlong safe_ret(long); long bare_ret(long);\nint main(void) { printf(\"%ld\\n\", safe_ret(1) + bare_ret(1)); return 0; }\n"));
        Assert.Equal("3", RunOk(exe));

        var r = Verifier.Verify(exe, new VerifyOptions { HardenSls = true });
        var d = Assert.Single(r.Diagnostics, x => x.Code == Codes.SlsUnprotected);
        Assert.Equal("bare_ret+0x4", d.Function); // lea 1(%rdi),%rax is 4 bytes
        Assert.Equal(Severity.Error, d.Severity);
        Assert.Equal(NativeToolchainSymbol(exe, "bare_ret") + 4, d.Address);
        Assert.StartsWith("'ret' at 0x", d.Message);
        Assert.DoesNotContain(r.Diagnostics, x => x.Code == Codes.SlsUnprotected && x.Function!.StartsWith("safe_ret", StringComparison.Ordinal));
        Assert.DoesNotContain(Verifier.Verify(exe, new VerifyOptions()).Diagnostics, x => x.Code == Codes.SlsUnprotected);
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    /// <summary>The address of the one instruction matching <paramref name="pattern"/> in <paramref name="function"/>'s
    /// block of `objdump -d --no-show-raw-insn` output.</summary>
    static ulong BranchIn(string disassembly, string function, string pattern)
    {
        var block = Regex.Match(disassembly, "^[0-9a-f]+ <" + Regex.Escape(function) + @">:\n(.*?)(?:\n\n|\z)", RegexOptions.Multiline | RegexOptions.Singleline);
        Assert.True(block.Success, $"<{function}> not in the disassembly");
        var hit = Assert.Single(Regex.Matches(block.Groups[1].Value, @"^\s*([0-9a-f]+):\s+" + pattern + "$", RegexOptions.Multiline));
        return Convert.ToUInt64(hit.Groups[1].Value, 16);
    }

    /// <summary>`retpoline verify --json FILE`, run in-process through the tool's entry point.</summary>
    static JsonDocument ToolJson(string file)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Retpoline.Tool.Program.Run(["verify", "--json", file], stdout, stderr);
        string text = stdout.ToString();
        try { return JsonDocument.Parse(text); }
        catch (JsonException e) { throw new Xunit.Sdk.XunitException($"not JSON ({e.Message}):\n{text}\n--- stderr ---\n{stderr}"); }
    }

    static ulong NativeToolchainSymbol(string file, string symbol)
    {
        var nm = NativeToolchain.Run(NativeToolchain.Nm, file).EnsureSuccess().StdOut;
        var m = Regex.Match(nm, @"^([0-9a-f]+) T " + Regex.Escape(symbol) + "$", RegexOptions.Multiline);
        Assert.True(m.Success, nm);
        return Convert.ToUInt64(m.Groups[1].Value, 16);
    }
}
