using System.Globalization;
using Retpoline.Patching;
using Retpoline.Reporting;
using Retpoline.Runtime;

namespace Retpoline.Tool;

/// <summary>
/// `retpoline status [PID] [--json] [--minimum V]`: with a PID, the thunks of every module in that process as they
/// are in memory now and what each Runtime module's start-up routine chose; without one, what it would choose here.
/// </summary>
static class StatusCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--json" };
    public static readonly IReadOnlySet<string> Options = new HashSet<string> { "--minimum" };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Files.Count > 1) throw new UsageException("status takes at most one PID");
        bool json = a.Has("--json");
        if (a.Files.Count == 0)
        {
            var choice = HostVendor.Detect(minimum: PatchCommand.ParseMinimum(a.Get("--minimum")));
            if (json) Json(stdout, s => StatusReport.WriteHostJson(s, choice));
            else StatusReport.WriteHostText(stdout, choice);
            return ExitCodes.Clean;
        }
        if (a.Get("--minimum") is not null) throw new UsageException("--minimum applies to status without a PID (a process's modules were built with theirs)");
        if (!int.TryParse(a.Files[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
            throw new UsageException($"status takes a process id, not '{a.Files[0]}'");
        var modules = ProcessStatus.Read(pid);
        if (json) Json(stdout, s => StatusReport.WriteJson(s, pid, modules));
        else StatusReport.WriteText(stdout, pid, modules);
        return ExitCodes.Clean;
    }

    static void Json(TextWriter stdout, Action<Stream> write)
    {
        using var buffer = new MemoryStream();
        write(buffer);
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }
}
