using Retpoline.Policy;
using Retpoline.Reporting;

namespace Retpoline.Tool;

static class VerifyCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--json", "--strict", "--harden-sls" };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--sarif", "--allow", "--map" };
    /// <summary>Given once per waiver; every other option at most once.</summary>
    public static readonly IReadOnlySet<string> Repeatable = new HashSet<string> { "--allow" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count == 0) throw new UsageException("verify needs at least one FILE");
        // A map describes one link: it names where the code of that one output came from.
        if (a.Get("--map") is not null && a.Files.Count != 1) throw new UsageException("--map FILE describes one link: give exactly one FILE with it");
        var options = new VerifyOptions
        {
            Strict = a.Has("--strict"),
            HardenSls = a.Has("--harden-sls"),
            Allow = Waivers.Parse(a.All("--allow").Select(AllowSpec.Parse)).Findings,
            Map = a.Get("--map") is { } map ? Elf.LinkerMap.Read(map) : null,
        };

        // The report is checked (never an input, a regular file, a writable directory) and opened — unnamed —
        // before any input is read; it gets its name only after all of them were.
        using var sarif = a.Get("--sarif") is { } sarifPath ? IO.ReportFile.Begin(sarifPath, a.Files) : null;
        // RETPOLINE_TIMING=1 prints where the time went (verify vs report output) to stderr: for benchmarking.
        bool timing = Environment.GetEnvironmentVariable("RETPOLINE_TIMING") == "1";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var reports = new List<VerifyReport>();
        var unusable = new List<RetpolineException>();
        foreach (var file in a.Files)
        {
            try
            {
                if (!Elf.StaticArchive.IsArchive(file)) { reports.Add(Verifier.Verify(file, options)); continue; }
                // A static library: each member as the object it is, named lib.a(member.o).
                var (members, unusableMembers) = Elf.StaticArchive.Verify(file, options);
                reports.AddRange(members);
                foreach (var e in unusableMembers) Unusable(e);
            }
            catch (RetpolineException e) { Unusable(e); }
        }

        void Unusable(RetpolineException e)
        {
            unusable.Add(e);
            stderr.WriteLine(Reporting.TextEscape.Line($"retpoline: {e.OneLine}"));
        }

        if (timing) stderr.WriteLine($"retpoline: timing: verify {clock.ElapsedMilliseconds} ms");
        clock.Restart();
        if (a.Has("--json"))
        {
            if (stdout is StreamWriter { BaseStream: var stream } writer)
            {
                // Straight to the output stream as UTF-8: a large report is tens of megabytes.
                writer.Flush();
                JsonReport.Write(stream, reports, unusable);
                stream.Write("\n"u8);
            }
            else
            {
                using var buffer = new MemoryStream();
                JsonReport.Write(buffer, reports, unusable);
                stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
            }
        }
        else
            foreach (var r in reports) TextReport.Write(stdout, r);

        if (timing) stderr.WriteLine($"retpoline: timing: report {clock.ElapsedMilliseconds} ms");
        if (sarif is not null)
        {
            sarif.Write(stream => SarifWriter.Write(stream, reports, unusable));
            sarif.Commit();
        }

        if (unusable.Count > 0) return ExitCodes.Unusable;
        return reports.Any(r => r.HasErrors) ? ExitCodes.Findings : ExitCodes.Clean;
    }
}
