using Microsoft.Build.Utilities;
using Retpoline.Reporting;
using Retpoline.Toolchain;

namespace Retpoline.Tasks;

/// <summary>Engine diagnostics to MSBuild's own format: `file(line,col): error CODE: text`, so IDEs and CI annotate the line.</summary>
static class DiagnosticLogging
{
    /// <summary>`12.3`, whatever the culture: bench/build-vs-make.sh reads the link, patch and verify times from the log.</summary>
    public static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    /// <param name="projectDirectory">A relative path (ld names sources as DWARF recorded them, `./b.c` after
    /// -ffile-prefix-map) is resolved against it, so every compiler and linker diagnostic names an absolute path.</param>
    public static void Log(TaskLoggingHelper log, CompilerDiagnostic d, string? fallbackFile, string projectDirectory)
    {
        string? file = d.File ?? fallbackFile;
        if (file is not null && !file.StartsWith('<')) file = Path.GetFullPath(file, projectDirectory);
        if (d.Severity == Severity.Error)
            log.LogError(null, d.Code, null, file, d.Line, d.Column, 0, 0, "{0}", d.Message);
        else
            log.LogWarning(null, d.Code, null, file, d.Line, d.Column, 0, 0, "{0}", d.Message);
    }

    /// <summary>A verify finding or thunk problem: at its source line when DWARF gave one, else at the binary.</summary>
    /// <returns>True when it was logged as a warning.</returns>
    public static bool Log(TaskLoggingHelper log, Diagnostic d, string binary, string policy)
    {
        // Names from the binary (symbols, DWARF file names) must not break the one-line diagnostic or drive a terminal.
        string message = TextEscape.Line(d.SourceFile is null ? d.Message : $"{d.Message} [{binary}]");
        string? file = TextEscape.Line(d.SourceFile ?? binary);
        int line = d.Line ?? 0;
        bool asError = d.Severity == Severity.Error && policy.Equals("Error", StringComparison.OrdinalIgnoreCase);
        bool asWarning = d.Severity == Severity.Warning || (d.Severity == Severity.Error && policy.Equals("Warning", StringComparison.OrdinalIgnoreCase));
        if (asError) log.LogError(null, d.Code, null, file, line, 0, 0, 0, "{0}", message);
        else if (asWarning) log.LogWarning(null, d.Code, null, file, line, 0, 0, 0, "{0}", message);
        else log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "{0}: {1}: {2}", file, d.Code, message);
        return !asError && asWarning;
    }
}
