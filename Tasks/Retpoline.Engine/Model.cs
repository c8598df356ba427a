namespace Retpoline;

// The engine's public result model. Tasks, the tool and the reports translate these; nothing here knows MSBuild.

/// <summary>How a decided indirect branch is classified (DESIGN.md §3). Thunk bodies are never findings.</summary>
public enum FindingClass
{
    /// <summary>An indirect branch in the program's own code: an error by default (RPL0001).</summary>
    UserCode,
    /// <summary>A PLT entry reached from user code: an error by default (RPL0002).</summary>
    Plt,
    /// <summary>crt startup code, PLT entries only it reaches, the lazy PLT header: allowed unless strict (RPL0003).</summary>
    ToolchainStartup,
    /// <summary>An instruction marked RETPOLINE_SAFE in source: vouched for where it is written.</summary>
    Annotated,
    /// <summary>A call site rewritten on purpose by `patch --call-sites inline` and recorded in `.retpoline_sites`.</summary>
    PatchedSite,
    /// <summary>A `ret` or indirect `jmp` in user code with no `int3` after it, under HardenSls: an error (RPL0005).</summary>
    SlsGap,
}

public enum Severity { Error, Warning, Info }

/// <summary>What `patch` writes into a thunk body (DESIGN.md §3 "Vendor forms").</summary>
public enum Vendor { Generic, Amd, None }

/// <summary>The body a thunk symbol was recognised as.</summary>
public enum ThunkForm
{
    /// <summary>Full retpoline: call/pause/lfence/jmp/mov %reg,(%rsp)/ret (GCC or Clang layout).</summary>
    Generic,
    /// <summary>lfence; jmp *%reg.</summary>
    Amd,
    /// <summary>jmp *%reg.</summary>
    None,
    /// <summary>Return thunk: ret; int3.</summary>
    Return,
    /// <summary>Return thunk or memory thunk in retpoline style: call/pause/lfence/jmp/lea 8(%rsp),%rsp/ret.</summary>
    GenericReturn,
    /// <summary>LLVM's LVI thunk: lfence; jmp *%r11.</summary>
    Lvi,
}

/// <summary>One indirect call or jump that was found and classified.</summary>
public sealed record Finding(
    FindingClass Class,
    /// <summary>`symbol+0xoff`, or `section+0xoff` when no symbol covers the address, or `name@plt` for PLT entries.</summary>
    string Function,
    ulong Address,
    /// <summary>Intel syntax text of the instruction, e.g. `call qword ptr [rax+8]`.</summary>
    string Instruction,
    /// <summary>Source file from DWARF .debug_line, when present.</summary>
    string? SourceFile,
    int? Line,
    /// <summary>Extra context: PLT callers, the allow-list reason, the annotation, …</summary>
    string? Detail = null,
    /// <summary>Set when a RetpolineAllow rule matched: the finding stays listed but is not a diagnostic.</summary>
    string? AllowedBy = null,
    /// <summary>The link input the code came from, when the linker map or the file's own DWARF says.</summary>
    FindingOrigin? Origin = null)
{
    /// <summary>A PLT entry for a function the file itself defines and exports (it calls its own export through the
    /// PLT so the function stays interposable): the fix is -fno-semantic-interposition, not -fno-plt.</summary>
    public bool DefinedHere { get; init; }

    /// <summary>
    /// A PLT finding has no origin of its own (the linker made the entry); this is where the code that reaches it
    /// came from, one entry per distinct origin, so a waiver of an archive also waives the PLT entries only that
    /// archive's code calls. Null when any caller's origin is unknown, or when no waiver names an origin (it is not
    /// worked out then).
    /// </summary>
    public IReadOnlyList<FindingOrigin>? CallerOrigins { get; init; }

    /// <summary>`file:line` when known.</summary>
    public string? Source => SourceFile is null ? null : Line is int l ? $"{SourceFile}:{l}" : SourceFile;
}

/// <summary>
/// Where a finding's code came from: the object file the linker took it from, or the static archive and member
/// (`liblzma.a(lzma_encoder.o)`), and the source file of its compilation unit. Any part may be unknown.
/// </summary>
public sealed record FindingOrigin(
    /// <summary>The static archive's path, when the code came from an archive member.</summary>
    string? Archive,
    /// <summary>The object file: the archive member's name, or the path of an object given to the linker.</summary>
    string? Object,
    /// <summary>The compilation unit's source file (DWARF DW_AT_name, resolved against DW_AT_comp_dir).</summary>
    string? Source)
{
    /// <summary>`liblzma.a(lzma_encoder.o)`, `obj/Debug/src/a.o`, or the source file when that is all that is known.</summary>
    public override string ToString()
        => Archive is not null ? $"{System.IO.Path.GetFileName(Archive)}({Object})" : Object ?? Source ?? "";

    /// <summary>The link input is known (a linker map said), not only the compilation unit's source.</summary>
    public bool NamesInput => Archive is not null || Object is not null;
}

/// <summary>A defined thunk symbol and the body it was recognised as.</summary>
public sealed record ThunkInfo(
    string Name,
    /// <summary>`rax` … `r15`; empty for `__x86_return_thunk` and the memory-operand thunk.</summary>
    string Register,
    ThunkForm Form,
    ulong Address,
    /// <summary>Bytes `patch` may rewrite (the recognised body plus the int3 fill a previous patch left).</summary>
    int BodyLength,
    /// <summary>Direct calls and jumps into the thunk found during the sweep.</summary>
    int DirectReferences,
    /// <summary>True when a shared library exports it with default visibility (it can be interposed).</summary>
    bool Exported);

/// <summary>A coded diagnostic about the file (findings that the policy rejects, thunk problems, notes).</summary>
public sealed record Diagnostic(
    string Code,
    Severity Severity,
    string Message,
    ulong? Address = null,
    string? Function = null,
    string? SourceFile = null,
    int? Line = null,
    /// <summary>A finding's origin (the object or archive member its code came from), for SARIF's related location.</summary>
    FindingOrigin? Origin = null);

/// <summary>
/// A finding waiver (a RetpolineAllow item, a `--allow`): which findings it waives and why. Kind
/// <see cref="Policy.WaiverKind.Function"/> names a symbol or glob (<see cref="Pattern"/>); kind
/// <see cref="Policy.WaiverKind.Origin"/> names where the code came from (<see cref="Archive"/>, <see cref="Object"/>,
/// <see cref="Source"/>), alone or together with a function pattern; every part given must match. Built and matched by
/// <see cref="Policy.Waivers"/>, which also requires the Reason.
/// </summary>
/// <param name="Pattern">Symbol name or glob (`*`, `?`) matched against `name` and `name+0xoff`; null: any function.</param>
public sealed record AllowRule(string? Pattern, string Reason)
{
    /// <summary>Static archive file name, path or glob (`liblzma.a`, `*/third_party/*.a`).</summary>
    public string? Archive { get; init; }
    /// <summary>Object file or archive member name, path or glob (`lzma_encoder.o`).</summary>
    public string? Object { get; init; }
    /// <summary>Source path or glob (`*/third_party/*`, `vendor/*.c`).</summary>
    public string? Source { get; init; }
    /// <summary>What the user wrote, for messages and reports: the item's Include, or the `--allow` spec.</summary>
    public string Name { get; init; } = Pattern ?? "";

    public Policy.WaiverKind Kind => Archive is null && Object is null && Source is null ? Policy.WaiverKind.Function : Policy.WaiverKind.Origin;
}

public sealed record VerifyOptions
{
    /// <summary>ToolchainStartup findings become errors (RPL0003).</summary>
    public bool Strict { get; init; }
    public IReadOnlyList<AllowRule> Allow { get; init; } = Array.Empty<AllowRule>();
    /// <summary>Also report every `ret` / indirect `jmp` in user code not followed by `int3` (RPL0005; RetpolineHardenSls).</summary>
    public bool HardenSls { get; init; }
    /// <summary>The linker map of the file's link (`--map`, the build's `-Wl,-Map`): which object or archive member
    /// each finding's code came from. Without it a finding's origin is the compilation unit DWARF names, if any.</summary>
    public Elf.LinkerMap? Map { get; init; }
    /// <summary>Decode sections in parallel (both cores). Tests may turn it off to compare.</summary>
    public bool Parallel { get; init; } = true;
}

public enum ElfKind { Executable, PositionIndependentExecutable, SharedLibrary, Relocatable }

public sealed class VerifyReport
{
    public required string Path { get; init; }
    public required ElfKind Kind { get; init; }
    /// <summary>Every indirect call/jmp decoded in executable sections, thunk bodies included.</summary>
    public required int IndirectBranches { get; init; }
    /// <summary>.note.gnu.property marks IBT / SHSTK.</summary>
    public required bool Ibt { get; init; }
    public required bool Shstk { get; init; }
    public required bool HasSymbols { get; init; }
    public required IReadOnlyList<Finding> Findings { get; init; }
    public required IReadOnlyList<ThunkInfo> Thunks { get; init; }
    /// <summary>Problems with the file itself: thunks (RPL001x), SHSTK, …; not the per-finding ones.</summary>
    public required IReadOnlyList<Diagnostic> FileDiagnostics { get; init; }
    /// <summary>Whether ToolchainStartup findings are errors (RPL0003).</summary>
    public required bool Strict { get; init; }
    /// <summary>The file links the run-time routine (RetpolineVendor=Runtime): its thunks are patched in memory at load.</summary>
    public bool RuntimeRoutine { get; init; }

    /// <summary>
    /// `Runtime` for a file that patches itself at load; otherwise the form every register thunk shares (`Generic`,
    /// `Amd`, `None`); null when it has none or they differ.
    /// </summary>
    public string? Vendor
    {
        get
        {
            if (RuntimeRoutine) return "Runtime";
            var forms = Thunks.Where(t => t.Register.Length > 0).Select(t => t.Form).Distinct().ToList();
            return forms.Count == 1 && forms[0] is ThunkForm.Generic or ThunkForm.Amd or ThunkForm.None ? forms[0].ToString() : null;
        }
    }

    IReadOnlyList<Diagnostic>? diagnostics;

    /// <summary>
    /// Every diagnostic: one per finding the policy rejects and no waiver matched (RPL0001/2/3/5, in address order), then the file's own.
    /// Built on first use: an unmitigated library has tens of thousands of findings, and a caller that only needs
    /// the verdict, the counts or the JSON should not pay for the message text.
    /// </summary>
    public IReadOnlyList<Diagnostic> Diagnostics => diagnostics ??= Policy.FindingDiagnostics.For(Findings, Strict).Concat(FileDiagnostics).ToList();

    public bool HasErrors => FileDiagnostics.Any(d => d.Severity == Severity.Error) || Findings.Any(f => Policy.FindingDiagnostics.IsError(f, Strict));
}

/// <summary>One thunk body `patch` rewrote (or would rewrite with --dry-run).</summary>
public sealed record ThunkPatch(string Name, ulong Address, long FileOffset, ThunkForm From, ThunkForm To, byte[] OldBytes, byte[] NewBytes);

public sealed class PatchResult
{
    public required string Path { get; init; }
    public required Vendor Vendor { get; init; }
    /// <summary>Thunks whose bytes change (already-correct thunks are not listed).</summary>
    public required IReadOnlyList<ThunkPatch> Changes { get; init; }
    /// <summary>Thunks already in the requested form.</summary>
    public required int Unchanged { get; init; }
    /// <summary>False for --dry-run and when nothing changed (the file is not rewritten then).</summary>
    public required bool Written { get; init; }
    /// <summary>The file differs from the requested form (thunk bytes or call-site record): a real patch writes it.</summary>
    public bool NeedsWrite { get; init; }
    public IReadOnlyList<Diagnostic> Diagnostics { get; init; } = Array.Empty<Diagnostic>();
    /// <summary>How call sites were treated.</summary>
    public CallSiteMode CallSites { get; init; } = CallSiteMode.Thunk;
    /// <summary>Call sites whose bytes change: inlined, re-patched for another vendor, or restored to the thunk call.</summary>
    public IReadOnlyList<SitePatch> Sites { get; init; } = Array.Empty<SitePatch>();
    /// <summary>Sites in the `.retpoline_sites` record after the patch (inlined for <see cref="Vendor"/>).</summary>
    public int SitesInlined { get; init; }
    /// <summary>Direct branches to a register thunk that keep going through the (patched) thunk: conditional jumps,
    /// and under Amd the sites where `lfence; call *%reg` does not fit.</summary>
    public int SitesThroughThunk { get; init; }
}

/// <summary>
/// An input the engine cannot use (RPL01xx) or a patch it refuses: one line, a code, never a stack trace.
/// </summary>
public sealed class RetpolineException(string code, string path, string message) : Exception(message)
{
    public string Code { get; } = code;
    public string FilePath { get; } = path;
    /// <summary>`error RPL0101: file: not an ELF file`.</summary>
    public string OneLine => $"error {Code}: {FilePath}: {Message}";
}

/// <summary>
/// `patch --call-sites` / RetpolineCallSites: Thunk leaves every `call __x86_indirect_thunk_<reg>` as it is
/// (and restores recorded sites); Inline rewrites them to `call *%reg` (None) or `lfence; call *%reg` (Amd, where it
/// fits) and records each site in the `.retpoline_sites` section so verify can allow it and Generic can undo it.
/// </summary>
public enum CallSiteMode { Thunk, Inline }

/// <summary>A direct call or a direct jump to a thunk.</summary>
public enum CallSiteKind { Call, Jump }

/// <summary>One call site `patch` rewrote (or would rewrite with --dry-run).</summary>
public sealed record SitePatch(
    ulong Address,
    /// <summary>`rax` … `r15`.</summary>
    string Register,
    CallSiteKind Kind,
    /// <summary>The thunk the original bytes branch to.</summary>
    string Thunk,
    long FileOffset,
    byte[] OldBytes,
    byte[] NewBytes,
    /// <summary>The vendor the new bytes are inlined for; Generic when they are the original thunk call again.</summary>
    Vendor To);
