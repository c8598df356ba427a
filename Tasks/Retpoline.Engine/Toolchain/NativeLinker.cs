namespace Retpoline.Toolchain;

/// <summary>Links an executable or shared library with the compiler driver, or archives a static library with ar.</summary>
public static class NativeLinker
{
    public sealed record LinkStep(string Tool, IReadOnlyList<string> Arguments, string Output, string CommandFile, IReadOnlyList<string> Inputs)
    {
        public string CommandLine => ProcessRunner.Display(Tool, Arguments);
    }

    /// <param name="linkerMap">Where the linker writes its map (an executable or shared library only): verify reads
    /// it to name the object or archive member of each finding. Passed with -Xlinker, not -Wl, whose commas would split
    /// a path that contains one.</param>
    public static LinkStep Plan(NativeSettings s, string driver, string ar, IReadOnlyList<string> objects, string output, string intermediateDirectory, string? linkerMap = null)
    {
        string cmd = Path.Combine(intermediateDirectory, "link.cmd");
        if (s.OutputType == "StaticLibrary")
            // D: deterministic (zero timestamps, uids, modes), so the same objects give the same bytes.
            return new LinkStep(ar, ["rcsD", output, .. objects], output, cmd, objects);
        var command = CompilerCommand.Parse(driver);
        string[] map = string.IsNullOrEmpty(linkerMap) ? [] : ["-Xlinker", "-Map=" + linkerMap];
        return new LinkStep(command.Program, [.. command.Prefix, .. FlagSet.Link(s, objects, output), .. map], output, cmd, objects);
    }

    public static bool IsUpToDate(LinkStep step)
    {
        var output = new FileInfo(step.Output);
        if (!output.Exists) return false;
        try { if (File.ReadAllText(step.CommandFile) != step.CommandLine) return false; } catch (IOException) { return false; }
        return step.Inputs.All(i => new FileInfo(i) is { Exists: true } f && f.LastWriteTimeUtc <= output.LastWriteTimeUtc);
    }

    public static (bool ok, List<CompilerDiagnostic> diagnostics) Run(LinkStep step, CompilerFamily family, string workingDirectory)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(step.Output)!);
        Directory.CreateDirectory(Path.GetDirectoryName(step.CommandFile)!);
        File.Delete(step.CommandFile);
        if (step.Tool.EndsWith("ar", StringComparison.Ordinal)) File.Delete(step.Output); // ar appends to an existing archive
        var r = ProcessRunner.Run(step.Tool, step.Arguments, workingDirectory);
        string output = (r.StandardError + r.StandardOutput).Trim();
        var diagnostics = CompilerDiagnostics.Parse(output, family);
        if (r.ExitCode == 0) { File.WriteAllText(step.CommandFile, step.CommandLine); return (true, diagnostics); }
        if (!diagnostics.Any(d => d.Severity == Severity.Error))
            diagnostics.Add(new CompilerDiagnostic(Severity.Error, null, 0, 0, ToolchainCodes.LinkFailed, $"{Path.GetFileName(step.Tool)} exited with code {r.ExitCode}: {(output.Length > 0 ? output : "no output")}"));
        return (false, diagnostics);
    }
}
