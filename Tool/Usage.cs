namespace Retpoline.Tool;

static class Usage
{
    public const string Text = """
        retpoline — verify and patch Spectre-v2 retpoline thunks in x86-64 ELF files

        Usage:
          retpoline verify [--json] [--sarif FILE] [--strict] [--harden-sls] [--allow PATTERN=REASON]... FILE...
          retpoline patch --vendor Generic|Amd|None|Host [--call-sites thunk|inline] [--dry-run] [--explain] FILE...
          retpoline --help | --version

        verify   Decode every executable byte, classify every indirect call/jmp (UserCode, Plt, ToolchainStartup,
                 Annotated, PatchedSite), check every thunk body. Findings that break the policy are errors.
          --json          print one JSON object: {"files":[{"path","indirectBranches","ibt","shstk","findings":[…],"thunks":[…]}]}
          --sarif FILE    also write a SARIF 2.1.0 log to FILE
          --strict        toolchain startup code (crt1/crti/crtbegin, the PLT they use) is an error too (RPL0003)
          --harden-sls    report ret / indirect jmp in user code not followed by int3 (RPL0005)
          --allow P=R     allow findings in functions matching glob P, for reason R (like RetpolineAllow)

        patch    Rewrite every recognised thunk body for a CPU vendor, atomically (temp file + rename), idempotently.
          --vendor V      Generic (full retpoline) | Amd (lfence; jmp, warns: RPL0014) | None (jmp) |
                          Host (what this machine's kernel chose, conservatively; Generic when unsure)
          --call-sites M  thunk (default) | inline: also rewrite each `call __x86_indirect_thunk_<reg>` to
                          `call *%reg` (None) or `lfence; call *%reg` (Amd), recorded in .retpoline_sites
          --dry-run       show what would change, write nothing
          --explain       with Host: print what was read and why the vendor was chosen

        Exit codes: 0 clean, 1 findings (any error), 2 unusable input or usage.
        Diagnostics: RPL0001–RPL0018 and RPL0100–RPL0108, documented in docs/diagnostics.md.

        """;
}
