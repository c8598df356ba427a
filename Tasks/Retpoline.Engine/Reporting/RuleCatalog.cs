namespace Retpoline.Reporting;

/// <summary>One diagnostic code as documented: annocheck's Problem / Fix / Waive if, plus a short name and title.</summary>
public sealed record Rule(string Code, string Name, string Title, string Problem, string Fix, string WaiveIf, Severity Level);

/// <summary>
/// The single description of every code: SARIF rule help comes from here, and docs/diagnostics.md is checked against
/// it by a test, so the two cannot drift.
/// </summary>
public static class RuleCatalog
{
    public static readonly IReadOnlyList<Rule> All =
    [
        new(Codes.UserCode, "UnprotectedIndirectBranch", "Indirect branch in user code is not routed through a retpoline thunk",
            "An indirect call or jump in code you compiled or wrote can be steered by branch target injection (Spectre v2).",
            "Compile with -mindirect-branch=thunk-extern -mindirect-branch-register (GCC) or -mretpoline-external-thunk (Clang); in hand-written assembly call __x86_indirect_thunk_<reg> instead.",
            "The branch is reviewed and intentional: mark it RETPOLINE_SAFE in source, or (code you cannot edit) add RetpolineAllow Include=\"function\" Reason=\"...\".", Severity.Error),
        new(Codes.Plt, "UnprotectedPltEntry", "PLT entry called from user code is an unprotected indirect jump",
            "Each PLT entry ends in jmp *GOT(%rip), an indirect jump the compiler cannot route through a thunk.",
            "Link with -fno-plt -Wl,-z,now (the SDK's default), or with lld's -z retpolineplt.",
            "You accept lazy binding's indirect jumps for that import: RetpolineAllow Include=\"name@plt\" Reason=\"...\".", Severity.Error),
        new(Codes.ToolchainStartup, "UnprotectedStartupCode", "Toolchain startup code has an unprotected indirect branch (strict)",
            "crt1.o, crti.o and crtbegin*.o are not compiled with your flags; they keep a few indirect branches that run once at start-up or exit.",
            "Use a C library and crt objects built with retpolines, or link statically against ones that are.",
            "Almost always: these run before main and after exit; turn RetpolineStrict off (the default).", Severity.Error),
        new(Codes.AnnotationMisplaced, "MisplacedAnnotation", "RETPOLINE_SAFE annotation does not mark an indirect branch",
            "A RETPOLINE_SAFE mark must sit immediately before the indirect call or jump it vouches for; this one points at something else, so it protects nothing and may hide a later change.",
            "Move the mark directly in front of the branch instruction, or delete it.",
            "Never: a mark on the wrong instruction is a bug.", Severity.Error),
        new(Codes.SlsUnprotected, "StraightLineSpeculation", "ret or indirect jmp not followed by int3 (RetpolineHardenSls)",
            "The CPU may speculatively execute the bytes straight after a ret or indirect jmp.",
            "Compile with -mharden-sls=all (GCC >= 12, Clang >= 15); in assembly put int3 after each ret / jmp *.",
            "You do not need SLS hardening: RetpolineHardenSls=false (the default).", Severity.Error),
        new(Codes.ThunkMissing, "ThunkMissing", "A retpoline thunk is called but not defined",
            "Code compiled with thunk-extern calls __x86_indirect_thunk_<reg>, but this file defines no such symbol: the program would fail to load or call the wrong thing.",
            "Link native/retpoline_thunks.S (the SDK does this for every Exe and Library).",
            "Never.", Severity.Error),
        new(Codes.ThunkMalformed, "ThunkMalformed", "A thunk body is not a known retpoline form",
            "The bytes at a thunk symbol are neither the generic retpoline nor one of the forms patch writes, so nothing is known about what it does.",
            "Use the thunks from native/retpoline_thunks.S, or the compiler's own; rebuild.",
            "Never.", Severity.Error),
        new(Codes.ThunkWrongRegister, "ThunkWrongRegister", "A thunk branches through a different register than its name",
            "Every caller of __x86_indirect_thunk_rax puts the target in %rax; a body that jumps through another register sends them all elsewhere.",
            "Fix the thunk definition; use native/retpoline_thunks.S.",
            "Never.", Severity.Error),
        new(Codes.ThunkExported, "ThunkExported", "A shared library exports a thunk with default visibility",
            "An exported thunk can be interposed by another object loaded into the process, replacing the mitigation.",
            "Define thunks hidden (.hidden, as native/retpoline_thunks.S does) or use a version script.",
            "The library deliberately provides thunks to others (rare); the warning does not fail the build.", Severity.Warning),
        new(Codes.AmdVendor, "AmdVendorDeprecated", "Vendor Amd (lfence; jmp) is no longer AMD's guidance",
            "Since March 2022 AMD no longer considers lfence; jmp *%reg sufficient (a race window remains); Linux and Xen use the generic retpoline on AMD by default.",
            "Use RetpolineVendor=Generic (the default).",
            "You have a reason to match a kernel booted with spectre_v2=retpoline,lfence.", Severity.Warning),
        new(Codes.ShstkWithGeneric, "ShadowStackWithGenericThunk", "SHSTK-marked binary contains generic retpoline thunks",
            "The generic thunk returns to an address its call did not push; under CET user shadow stacks (glibc >= 2.39, kernel >= 6.6) that faults.",
            "Do not mark the binary SHSTK-compatible (native/retpoline_thunks.S never carries the SHSTK property), or patch for vendor None/Amd.",
            "Never: the program would crash where shadow stacks are enabled.", Severity.Error),
        new(Codes.PatchRefused, "PatchRefused", "Patch refused: a thunk body is unrecognised, mis-registered or too small",
            "patch rewrites only bodies it recognises; one unknown body refuses the whole file so nothing is half-patched.",
            "Rebuild with known thunks; run `retpoline verify` to see which body is wrong.",
            "Never.", Severity.Error),
        new(Codes.SiteTampered, "PatchedSiteTampered", "A recorded patched call site no longer holds the patched bytes",
            "patch --call-sites inline recorded this site; its bytes have changed since, so it is neither the thunk call nor the inline form.",
            "Re-run the build (or retpoline patch) from the original link output.",
            "Never.", Severity.Error),
        new(Codes.SiteRecordMalformed, "SiteRecordMalformed", "The .retpoline_sites record is unreadable",
            "The section that records inlined call sites is damaged or names a site that is not a thunk call.",
            "Re-link and re-patch.",
            "Never.", Severity.Error),
        new(Codes.FileNotFound, "FileNotFound", "Input file missing or a directory", "The path does not name a regular file.", "Pass an existing ELF file.", "Never.", Severity.Error),
        new(Codes.NotElf, "NotElf", "Not an ELF file", "Empty, bad magic, a core dump or an unsupported ELF type.", "Pass an executable, shared library or object file.", "Exclude non-ELF files (RetpolineExclude).", Severity.Error),
        new(Codes.NotElf64, "NotElf64", "Not a 64-bit ELF file", "ELF32 (i386 or x32) is not supported.", "Verify x86-64 builds only.", "Exclude the file (RetpolineExclude).", Severity.Error),
        new(Codes.NotX86_64, "NotX86_64", "Not an x86-64 ELF file", "Another machine (AArch64, RISC-V, …) or big-endian.", "Retpolines are x86 only; do not verify this file.", "Exclude the file (RetpolineExclude).", Severity.Error),
        new(Codes.Truncated, "Truncated", "Truncated ELF file", "A header, table or section extends past the end of the file.", "Rebuild or re-copy the file.", "Never.", Severity.Error),
        new(Codes.BadSectionTable, "BadSectionTable", "Malformed section table", "Section headers are missing, overlapping or inconsistent.", "Rebuild the file; sstrip'd files cannot be verified.", "Never.", Severity.Error),
        new(Codes.BadSymbolTable, "BadSymbolTable", "Malformed symbol table", "A symbol table has a wrong entry size or unreadable names.", "Rebuild the file.", "Never.", Severity.Error),
        new(Codes.IoError, "IoError", "File cannot be read or written", "Permission denied, or an I/O error while reading or replacing the file.", "Fix permissions or free space; the original is never left half-written.", "Never.", Severity.Error),
        new(Codes.Usage, "Usage", "Command-line usage error", "Unknown option or missing argument.", "See `retpoline --help`.", "Never.", Severity.Error),
        new(Codes.ProcessUnreadable, "ProcessUnreadable", "Process cannot be inspected",
            "`retpoline status PID` reads /proc/PID/maps and /proc/PID/mem: the process does not exist, or this user may not read its memory (ptrace access).",
            "Check the PID; run as the process's user (with kernel.yama.ptrace_scope 0) or as root.",
            "Never.", Severity.Error),
    ];

    static readonly Dictionary<string, Rule> ByCode = All.ToDictionary(r => r.Code);

    public static Rule Get(string code) => ByCode.TryGetValue(code, out var r) ? r
        : new Rule(code, code, code, "", "", "", Severity.Error);
}
