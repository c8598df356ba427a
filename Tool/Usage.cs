namespace Retpoline.Tool;

static class Usage
{
    public const string Text = """
        retpoline — verify and patch Spectre-v2 retpoline thunks in x86-64 ELF files

        Usage:
          retpoline verify [--json] [--sarif FILE] [--strict] [--harden-sls] [--allow [KIND:]GLOB[,KIND:GLOB]=REASON]...
                           [--map LINKER-MAP] FILE...
          retpoline patch --vendor Generic|Amd|None|Host [--minimum V] [--call-sites thunk|inline] [--dry-run] [--explain]
                          [--allow-owner-change] [--allow-read-only] [--break-hard-links] FILE...
          retpoline status [PID] [--json] [--minimum V]
          retpoline audit [--json] [--sarif FILE] [--require-policy] [--configuration C] SOLUTION|PROJECT|DIR
          retpoline --help | --version

        verify   Decode every executable byte, classify every indirect call/jmp (UserCode, Plt, ToolchainStartup,
                 Annotated, PatchedSite), check every thunk body. Findings that break the policy are errors.
                 A static archive (lib.a) is verified member by member, each named lib.a(member.o).
          --json          print one JSON object: {"files":[{"path","indirectBranches","ibt","shstk","findings":[…],"thunks":[…]}]}
          --sarif FILE    also write a SARIF 2.1.0 log to FILE (never an input: RPL0111; renamed into place at the end)
          --strict        toolchain startup code (crt1/crti/crtbegin, the PLT they use) is an error too (RPL0003)
          --harden-sls    report ret / indirect jmp in user code not followed by int3 (RPL0005)
          --allow SPEC=R  waive the findings SPEC matches, for reason R (required; like RetpolineAllow). SPEC is a
                          function glob (`jit_*`), or KIND:GLOB parts joined by `,` that must all match, KIND one of
                          function, archive, object, source: `archive:liblzma.a`, `source:third_party/*,function:z_*`.
                          A path glob matches the whole path or any tail after a `/`. Waived findings stay listed; repeatable.
          --map MAP       the linker map of FILE's link (-Wl,-Map,MAP; GNU ld or lld): each finding names the object
                          or archive member it came from (`libthird.a(third.o)`). Without it, the compilation unit DWARF
                          names is the origin. One FILE only; an unreadable map is RPL0119

        patch    Rewrite every recognised thunk body for a CPU vendor, atomically (temp file + rename), idempotently,
                 keeping owner, group, every mode bit and extended attribute; refuses what it cannot keep (RPL0112–RPL0115).
          --vendor V      Generic (full retpoline) | Amd (lfence; jmp, warns: RPL0014) | None (jmp) |
                          Host (what this machine's kernel chose, conservatively; Generic when unsure)
          --minimum V     with Host: never weaker than V: Generic (default) | Amd | None. Enhanced/automatic IBRS
                          guards the kernel and the sibling thread, not a process from itself; see docs/sdk.md
          --call-sites M  thunk (default) | inline: also rewrite each `call __x86_indirect_thunk_<reg>` to
                          `call *%reg` (None) or `lfence; call *%reg` (Amd), recorded in .retpoline_sites
          --dry-run       show what would change, write nothing
          --explain       with Host: print what was read and why the vendor was chosen
          --allow-owner-change  a file whose owner/group this user cannot keep: patch it anyway (it becomes yours,
                                setuid/setgid dropped; RPL0112)
          --allow-read-only     a file without write permission: patch it anyway, mode kept (RPL0113)
          --break-hard-links    a file with several hard links: this name gets the patched file, the others keep
                                the old one (RPL0114)

        status   Without PID: what a RetpolineVendor=Runtime module would choose on this machine (--minimum: its floor).
                 With PID: every module mapped in that process that has retpoline thunks, the form each thunk has in
                 memory now (read from /proc/PID/mem), whether it was built with Runtime, and what its start-up routine
                 chose and why. Needs ptrace access to PID (the same user, or root).
          --json          print one JSON object: {"pid","modules":[{"path","runtime","choice","reason","thunks":[…]}]}

        audit    Evaluate every project of a solution (.sln, .slnx), a project, or every project under a folder with the
                 installed .NET SDK's MSBuild (no restore or build needed) and print one row per project: kind (native,
                 managed-with-package, managed-without-package), vendor, policy, and the native binaries it produces or ships (its
                 RetpolineShippedBinaries target's list; from evaluation, with a note, when that cannot run: its output,
                 native ProjectReferences, None/Content copied to output, restored packages' linux-x64 native assets,
                 RetpolineBinary) with their status: PASS, FAIL, exempt (RetpolineExclude), not built, each verified
                 with its project's RetpolineAllow, RetpolineStrict and RetpolineHardenSls, as the build does. A DIR
                 means every project under it, recursively (bin/ and obj/ skipped), solution files or not.
          --json            print one JSON object: {"projects":[{"path","kind","vendor","policy","note"?,"binaries":[{"path","origin","status","errors"}]}]}
          --sarif FILE      also write the verified binaries' findings as SARIF 2.1.0
          --require-policy  a project that ships native code without Retpoline.Sdk is a failure (exit 1)
          --configuration C evaluate with Configuration=C (default Debug)

        Options are given once each (only --allow repeats); values are names, in any case.
        Exit codes: 0 clean, 1 findings (any error), 2 unusable input, a refused patch, or usage.
        Diagnostics: RPL0001–RPL0018, RPL0100–RPL0115, RPL0208 (a waiver without a reason) and (audit) RPL0211–RPL0212,
        documented in docs/diagnostics.md.

        """;
}
