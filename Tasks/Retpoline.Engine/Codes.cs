namespace Retpoline;

/// <summary>
/// Every diagnostic code the engine emits, in one place (the SDK's build codes, RPL02xx, are in
/// Toolchain/CompilerProbe.cs). docs/diagnostics.md documents each as Problem / Fix / Waive if / Example, from
/// Reporting/RuleCatalog.cs; a test keeps the page and the catalog in step.
/// </summary>
public static class Codes
{
    // Findings (RPL000x).
    public const string UserCode = "RPL0001";          // unprotected indirect branch in user code
    public const string Plt = "RPL0002";               // PLT entry reached from user code
    public const string ToolchainStartup = "RPL0003";  // crt/PLT startup branch, only under strict
    public const string AnnotationMisplaced = "RPL0004"; // RETPOLINE_SAFE annotation not on an indirect branch
    public const string SlsUnprotected = "RPL0005";    // ret / indirect jmp not followed by int3 under RetpolineHardenSls

    // Thunk problems (RPL001x).
    public const string ThunkMissing = "RPL0010";      // a thunk is called but not defined in the file
    public const string ThunkMalformed = "RPL0011";    // a thunk body is not one of the known forms
    public const string ThunkWrongRegister = "RPL0012"; // a thunk named for one register branches through another
    public const string ThunkExported = "RPL0013";     // a shared library exports a thunk with default visibility
    public const string AmdVendor = "RPL0014";         // Amd (lfence; jmp) chosen: no longer AMD's guidance
    public const string ShstkWithGeneric = "RPL0015";  // SHSTK-marked binary with Generic thunks
    public const string PatchRefused = "RPL0016";      // patch refused: an unrecognised or too small thunk body
    public const string SiteTampered = "RPL0017";      // a call site recorded in .retpoline_sites no longer holds the bytes patch wrote
    public const string SiteRecordMalformed = "RPL0018"; // the .retpoline_sites record is unreadable or names a site that is not a thunk call

    // Unusable input (RPL01xx).
    public const string FileNotFound = "RPL0100";
    public const string NotElf = "RPL0101";
    public const string NotElf64 = "RPL0102";
    public const string NotX86_64 = "RPL0103";
    public const string Truncated = "RPL0104";
    public const string BadSectionTable = "RPL0105";
    public const string BadSymbolTable = "RPL0106";
    public const string IoError = "RPL0107";
    public const string Usage = "RPL0108";
    public const string ProcessUnreadable = "RPL0109"; // retpoline status: no such process, or its maps/memory cannot be read
    public const string TooLarge = "RPL0110";          // over the 2 GiB a buffer holds, or not enough memory to read it
    public const string ReportPathRefused = "RPL0111"; // a report file (--sarif, RetpolineReportFile) names an input or is not a regular file

    // A patch that would change more than the bytes it means to (RPL0112–RPL0115): refused unless the user asks for it.
    public const string OwnerNotKept = "RPL0112";      // owner, group or mode bits (setuid/setgid) cannot be kept: --allow-owner-change
    public const string ReadOnlyFile = "RPL0113";      // no write permission: --allow-read-only
    public const string HardLinks = "RPL0114";         // more than one hard link: --break-hard-links
    public const string XattrNotCopied = "RPL0115";    // an extended attribute (capability, ACL, SELinux label, user.*) cannot be copied

    // Inputs that say where code came from (RPL0116–RPL0119).
    public const string ArchiveMemberNotElf = "RPL0116"; // a static archive member that is not an x86-64 ELF object
    public const string ThinArchive = "RPL0117";       // a thin archive: its members are files stored elsewhere
    public const string BadArchive = "RPL0118";        // an ar archive whose headers do not add up
    public const string LinkerMapUnusable = "RPL0119"; // --map / the build's linker map cannot be read or is no GNU ld / lld map
}
