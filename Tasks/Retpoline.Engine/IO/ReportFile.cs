using Retpoline.Elf;

namespace Retpoline.IO;

/// <summary>
/// A report file (`--sarif FILE`, RetpolineReportFile): never one of the inputs — not by name, not through a
/// symlink, not as another hard link of one — and never half-written. <see cref="Begin"/> checks the path and opens
/// a new unnamed file beside it before any input is read; <see cref="PendingReport.Commit"/> renames it into place
/// after they all were. A FIFO, device, directory or /proc file is refused rather than opened (opening a FIFO
/// blocks; writing /proc/self/mem writes into our own memory).
/// </summary>
public static class ReportFile
{
    /// <exception cref="RetpolineException">RPL0111: the path names an input or is not a regular file; RPL0107: the
    /// directory does not accept a new file. Nothing has been written.</exception>
    public static PendingReport Begin(string path, IEnumerable<string> inputs, bool createDirectory = false)
    {
        if (path.Length == 0) throw Refused(path, "empty file name");
        string target = Target(path);
        var st = Posix.Stat(target, out _);
        if (st is { } existing)
        {
            if (existing.Type != FileType.Regular) throw Refused(path, $"is {FileTypes.Describe(existing.Type)}, not a regular file; a report is written as a new file renamed over the old one");
            if (Posix.IsProcOrSys(target)) throw Refused(path, "is a /proc or /sys file, not a regular file");
        }
        foreach (var input in inputs)
        {
            if (input.Length == 0) continue;
            bool same = st is { } report && Posix.Stat(input, out _) is { } i && i.SameFile(report);
            if (same || SamePath(target, input))
                throw Refused(path, $"is also an input ('{input}'); the report would overwrite it: choose another report path (nothing was read or written)");
        }
        string dir = Path.GetDirectoryName(Path.GetFullPath(target))!;
        try
        {
            if (createDirectory) Directory.CreateDirectory(dir);
            var temp = TempFile.Create(dir, st is { } old ? old.Mode & 0x1ff : 0x1b6 /* 0666, less the umask */);
            if (st is { } keep) _ = Posix.FChmod(temp.Handle, keep.Mode & 0x1ff);
            return new PendingReport(path, target, temp);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RetpolineException(Codes.IoError, path, $"cannot write the report: {e.Message}");
        }
    }

    /// <summary>Begin, write, commit: for a caller that has everything in hand already (the build's post-link step).</summary>
    public static void Write(string path, IEnumerable<string> inputs, Action<Stream> write, bool createDirectory = false)
    {
        using var report = Begin(path, inputs, createDirectory);
        report.Write(write);
        report.Commit();
    }

    static RetpolineException Refused(string path, string why) => new(Codes.ReportPathRefused, path, why);

    /// <summary>Where the report lands: through symlinks (as a shell's `&gt;` follows them), even a dangling one.</summary>
    static string Target(string path)
    {
        string full = Path.GetFullPath(path);
        for (int hops = 0; hops < 40; hops++)
        {
            string? link;
            try { link = new FileInfo(full).LinkTarget; }
            catch (IOException) { return full; }
            if (link is null) return full;
            full = Path.GetFullPath(link, Path.GetDirectoryName(full)!);
        }
        throw Refused(path, "too many levels of symbolic links");
    }

    /// <summary>The same path once symlinks are followed: catches an input that does not exist (yet) by name.</summary>
    static bool SamePath(string target, string input)
    {
        try { return string.Equals(Canonical(target), Canonical(Target(input)), StringComparison.Ordinal); }
        catch (RetpolineException) { return false; }
    }

    /// <summary>The directory with its symlinks resolved (realpath), plus the name.</summary>
    static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        return dir is not null && Posix.RealPath(dir) is { } real ? Path.Combine(real, Path.GetFileName(full)) : full;
    }
}

/// <summary>A report being written: invisible until <see cref="Commit"/>; discarded if disposed first.</summary>
public sealed class PendingReport : IDisposable
{
    readonly string path, target;
    readonly TempFile temp;

    internal PendingReport(string path, string target, TempFile temp) { this.path = path; this.target = target; this.temp = temp; }

    public void Write(Action<Stream> write)
    {
        try { write(temp.Stream); }
        catch (IOException e) { throw new RetpolineException(Codes.IoError, path, $"cannot write the report: {e.Message}"); }
    }

    public void Commit()
    {
        try { temp.ReplaceAt(target); }
        catch (IOException e) { throw new RetpolineException(Codes.IoError, path, $"cannot write the report: {e.Message}"); }
    }

    public void Dispose() => temp.Dispose();
}
