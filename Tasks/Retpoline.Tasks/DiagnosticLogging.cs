using Microsoft.Build.Utilities;
using Retpoline.Reporting;
using Retpoline.Policy;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>
/// Engine diagnostics to MSBuild's own format: `file(line,col): error CODE: text`, so IDEs and CI annotate the line.
/// Only translation: whether a diagnostic is an error, a warning or a message is the engine's decision
/// (<see cref="PolicyModes.LevelOf"/>).
/// </summary>
static class DiagnosticLogging
{
    /// <summary>`12.3`, whatever the culture: bench/build-vs-make.sh reads the link, patch and verify times from the log.</summary>
    public static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A compiler or linker diagnostic, at the file and line the compiler named.</summary>
    /// <param name="fallbackFile">Where to report a diagnostic that names no file (the source being compiled).</param>
    /// <param name="projectDirectory">A relative path (ld names sources as DWARF recorded them, `./b.c` after
    /// -ffile-prefix-map) is resolved against it, so every compiler and linker diagnostic names an absolute path.</param>
    public static void LogCompilerDiagnostic(TaskLoggingHelper log, CompilerDiagnostic d, string? fallbackFile, string projectDirectory)
    {
        string? file = d.File ?? fallbackFile;
        if (file is not null && !file.StartsWith('<')) file = Path.GetFullPath(file, projectDirectory);
        if (d.Severity == Severity.Error)
            log.LogError(null, d.Code, null, file, d.Line, d.Column, 0, 0, "{0}", d.Message);
        else
            log.LogWarning(null, d.Code, null, file, d.Line, d.Column, 0, 0, "{0}", d.Message);
    }

    /// <summary>A verify finding or thunk problem, as the policy says: at its source line when DWARF gave one, else at the binary.</summary>
    /// <param name="shownBinary">The binary as the user sees it (`bin/Release/libx.so`).</param>
    /// <returns>True when it was logged as a warning.</returns>
    public static bool LogVerifyDiagnostic(TaskLoggingHelper log, Diagnostic d, string shownBinary, PolicyMode mode)
    {
        // Names from the binary (symbols, DWARF file names) must not break the one-line diagnostic or drive a terminal.
        string message = TextEscape.Line(d.SourceFile is null ? d.Message : $"{d.Message} [{shownBinary}]");
        string file = TextEscape.Line(d.SourceFile ?? shownBinary);
        int line = d.Line ?? 0;
        var level = mode.LevelOf(d);
        switch (level)
        {
            case ReportLevel.Error: log.LogError(null, d.Code, null, file, line, 0, 0, 0, "{0}", message); break;
            case ReportLevel.Warning: log.LogWarning(null, d.Code, null, file, line, 0, 0, 0, "{0}", message); break;
            default: log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "{0}: {1}: {2}", file, d.Code, message); break;
        }
        return level == ReportLevel.Warning;
    }

    /// <summary>Every finding a waiver matched, with the waiver's reason: what was decided stays visible at -v:n.</summary>
    public static void LogWaived(TaskLoggingHelper log, VerifyReport report)
    {
        foreach (var f in report.Findings.Where(f => f.AllowedBy is not null))
            log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "Retpoline: allowed {0} '{1}' at 0x{2:x} in '{3}'{4}: {5}", f.Class, f.Instruction, f.Address, TextEscape.Line(f.Function),
                f.Origin is { NamesInput: true } o ? $" from '{TextEscape.Line(o.ToString())}'" : "", TextEscape.Line(f.AllowedBy!));
    }

    /// <summary>A setting the engine rejected (RPL0208), at the project.</summary>
    public static bool LogInvalidSetting(TaskLoggingHelper log, InvalidSettingException e)
    {
        log.LogError(null, e.Code, null, null, 0, 0, 0, 0, "{0}", e.Message);
        return false;
    }

    /// <summary>
    /// RetpolineAllow / RetpolineExclude items as the engine's plain records: the item's Include and the metadata the
    /// waiver model reads (<see cref="Waivers.Parse"/> decides what they mean).
    /// </summary>
    public static IEnumerable<WaiverItem> WaiverItems(string itemType, IEnumerable<Microsoft.Build.Framework.ITaskItem> items)
        => items.Select(i => WaiverItem.From(itemType, i.ItemSpec, i.GetMetadata));
}
