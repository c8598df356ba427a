using Retpoline.Reporting;

namespace Retpoline.Tool;

static class VerifyCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--json", "--strict", "--harden-sls" };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--sarif", "--allow" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count == 0) throw new UsageException("verify needs at least one FILE");
        var options = new VerifyOptions
        {
            Strict = a.Has("--strict"),
            HardenSls = a.Has("--harden-sls"),
            Allow = a.All("--allow").Select(ParseAllow).ToList(),
        };

        var reports = new List<VerifyReport>();
        var unusable = new List<RetpolineException>();
        foreach (var file in a.Files)
        {
            try { reports.Add(Verifier.Verify(file, options)); }
            catch (RetpolineException e)
            {
                unusable.Add(e);
                stderr.WriteLine($"retpoline: {e.OneLine}");
            }
        }

        if (a.Has("--json"))
        {
            using var buffer = new MemoryStream();
            JsonReport.Write(buffer, reports, unusable);
            stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        }
        else
            foreach (var r in reports) TextReport.Write(stdout, r);

        if (a.Get("--sarif") is { } sarif)
        {
            try
            {
                using var f = File.Create(sarif);
                SarifWriter.Write(f, reports, unusable);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RetpolineException(Codes.IoError, sarif, $"cannot write the SARIF log: {e.Message}");
            }
        }

        if (unusable.Count > 0) return ExitCodes.Unusable;
        return reports.Any(r => r.HasErrors) ? ExitCodes.Findings : ExitCodes.Clean;
    }

    static AllowRule ParseAllow(string s)
    {
        int eq = s.IndexOf('=');
        if (eq <= 0 || eq == s.Length - 1) throw new UsageException($"--allow takes PATTERN=REASON (a reason is required), got '{s}'");
        return new AllowRule(s[..eq], s[(eq + 1)..]);
    }
}
