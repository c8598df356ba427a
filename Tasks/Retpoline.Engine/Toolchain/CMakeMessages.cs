using System.Text.RegularExpressions;

namespace Retpoline.Toolchain;

/// <summary>
/// CMake's own errors and warnings, from what `cmake` printed while configuring (or regenerating under
/// `cmake --build`):
/// <code>
/// CMake Error at CMakeLists.txt:12 (add_library):
///   Cannot find source file:
///
///     nope.c
/// </code>
/// becomes one diagnostic at that file (resolved against the source directory) and line, with the indented text
/// joined into one line. `CMake Error: text` (no location), `CMake Warning (dev) at …`, `CMake Deprecation Warning
/// at …` are recognised too. The call stack CMake adds under a message is dropped: the first frame is the location.
/// </summary>
public static partial class CMakeMessages
{
    [GeneratedRegex(@"^CMake (?<kind>Error|Warning|Deprecation Warning|Deprecation Error|Warning \(dev\)|Error \(dev\))(?: at (?<file>.+?):(?<line>\d+)(?: \((?<command>[^)]*)\))?)?:\s*(?<text>.*)$")]
    private static partial Regex Header();

    public static List<CompilerDiagnostic> Parse(string output, string sourceDirectory)
    {
        var list = new List<CompilerDiagnostic>();
        var lines = output.Replace("\r", "").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var m = Header().Match(lines[i]);
            if (!m.Success) continue;
            var text = new List<string>();
            if (m.Groups["text"].Value.Length > 0) text.Add(m.Groups["text"].Value.Trim());
            bool stack = false;
            // The message: every following line that is indented or blank, up to the next unindented line.
            while (i + 1 < lines.Length && (lines[i + 1].Length == 0 || lines[i + 1].StartsWith(' ')))
            {
                string l = lines[++i].Trim();
                if (l.StartsWith("Call Stack (most recent call first):", StringComparison.Ordinal)) stack = true;
                if (!stack && l.Length > 0) text.Add(l);
            }
            string kind = m.Groups["kind"].Value;
            string? file = m.Groups["file"].Success ? Path.GetFullPath(m.Groups["file"].Value, sourceDirectory) : null;
            int line = m.Groups["line"].Success ? int.Parse(m.Groups["line"].Value) : 0;
            string message = string.Join(' ', text);
            if (m.Groups["command"].Success) message = $"{m.Groups["command"].Value}: {message}";
            list.Add(new CompilerDiagnostic(kind.StartsWith("Error", StringComparison.Ordinal) || kind == "Deprecation Error" ? Severity.Error : Severity.Warning,
                file, line, 0, kind.StartsWith("Error", StringComparison.Ordinal) || kind == "Deprecation Error" ? CMakeCodes.CMakeError : CMakeCodes.CMakeWarning, message));
        }
        return list;
    }
}

/// <summary>The CMake and make drivers' codes (RPL0230–RPL0249), documented in docs/sdk.md.</summary>
public static class CMakeCodes
{
    /// <summary>cmake (or make, or ctest) is not installed or cannot be started.</summary>
    public const string ToolNotFound = "RPL0230";
    /// <summary>CMake's own error (`CMake Error at FILE:LINE`), at that file and line.</summary>
    public const string CMakeError = "RPL0231";
    /// <summary>CMake's own warning, at its file and line.</summary>
    public const string CMakeWarning = "RPL0232";
    /// <summary>The File API reply is missing or unreadable, so the outputs are unknown.</summary>
    public const string FileApiUnusable = "RPL0233";
    /// <summary>`cmake --build` or make failed without a diagnostic the SDK could place at a source line.</summary>
    public const string BuildFailed = "RPL0234";
    /// <summary>A CMakeTargets entry names no target of the project, or CMakeSourceDirectory/MakeDirectory has no CMakeLists.txt/Makefile.</summary>
    public const string NoSuchTarget = "RPL0235";
    /// <summary>A NativeOutput item (or a CMakeTargets target's artifact) does not exist after the build.</summary>
    public const string OutputMissing = "RPL0236";
    /// <summary>A target's own compile options turn the injected mitigation off (warning; verify reports the branches).</summary>
    public const string MitigationDefeated = "RPL0237";
}
