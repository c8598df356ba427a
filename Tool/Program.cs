namespace Retpoline.Tool;

/// <summary>
/// `retpoline`: verify and patch retpoline thunks in x86-64 ELF files. A thin shell over the engine: arguments in,
/// reports out, exit code 0 clean / 1 findings / 2 unusable input or usage. Nothing escapes as a stack trace.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var output = new StandardStream(Console.OpenStandardOutput(), "standard output");
        // Console.Out flushes on every write; a report on a large library is tens of thousands of lines.
        using var stdout = new StreamWriter(output, new System.Text.UTF8Encoding(false), 1 << 16) { AutoFlush = false };
        var stderr = new GuardedWriter(Console.Error);
        int exit = Run(args, stdout, stderr);
        stdout.Flush();
        // A report that did not reach its reader is not a clean run, whatever it said.
        if (output.Failure is not null && !output.ReaderGone)
        {
            stderr.WriteLine($"retpoline: error {Codes.IoError}: {output.Failure}");
            exit = ExitCodes.Unusable;
        }
        return exit;
    }

    /// <summary>The tool assembly's informational version (the package version, plus the commit when built from git).</summary>
    static string Version => typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion
        ?? typeof(Program).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help") { stdout.Write(Usage.Text); return args.Length == 0 ? ExitCodes.Unusable : ExitCodes.Clean; }
            if (args[0] is "--version" or "version") { stdout.WriteLine($"retpoline {Version}"); return ExitCodes.Clean; }
            var rest = args[1..];
            return args[0] switch
            {
                "verify" => VerifyCommand.Run(new Arguments(rest, VerifyCommand.Flags, VerifyCommand.Options, VerifyCommand.Repeatable), stdout, stderr),
                "patch" => PatchCommand.Run(new Arguments(rest, PatchCommand.Flags, PatchCommand.Options), stdout, stderr),
                "audit" when AuditDelegation.Needed => AuditDelegation.Run(args, stdout, stderr),
                "audit" => AuditCommand.Run(new Arguments(rest, AuditCommand.Flags, AuditCommand.Options), stdout, stderr),
                "status" => StatusCommand.Run(new Arguments(rest, StatusCommand.Flags, StatusCommand.Options), stdout, stderr),
                _ => throw new UsageException($"unknown command '{args[0]}' (expected verify, patch, audit or status; see retpoline --help)"),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: error {Codes.Usage}: {e.Message}"));
            return ExitCodes.Unusable;
        }
        catch (RetpolineException e)
        {
            stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: {e.OneLine}"));
            return ExitCodes.Unusable;
        }
        catch (Policy.InvalidSettingException e)
        {
            // A waiver without a Reason: the same code and text as in a build.
            stderr.WriteLine($"retpoline: error {e.Code}: {e.Message}");
            return ExitCodes.Unusable;
        }
        catch (Exception e)
        {
            // A bug of ours: still one coded line, with enough to report it.
            stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: error {Codes.IoError}: internal error: {e.GetType().Name}: {e.Message.Split('\n')[0]}"));
            return ExitCodes.Unusable;
        }
    }
}

public static class ExitCodes
{
    public const int Clean = 0, Findings = 1, Unusable = 2;
}
