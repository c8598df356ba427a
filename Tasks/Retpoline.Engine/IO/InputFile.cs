using Microsoft.Win32.SafeHandles;
using Retpoline.Elf;

namespace Retpoline.IO;

/// <summary>
/// An input file opened for reading, after deciding from stat(2) alone that it is safe to open: a FIFO would block
/// in open(2) until a writer came, a device or a /proc file never ends or reports size 0, a directory is not a file.
/// Each is refused with one coded line that says what it is. The open itself is O_NONBLOCK (a file swapped for a FIFO
/// between stat and open still cannot block) and is checked with fstat to be the same regular file.
/// </summary>
public sealed class InputFile : IDisposable
{
    /// <summary>The largest file a byte buffer holds (Array.MaxLength): the engine reads ELF files into one.</summary>
    public const long MaxLength = 0x7FFFFFC7;

    /// <summary>As the caller named it: every message uses this.</summary>
    public string Path { get; }
    public SafeFileHandle Handle { get; }
    public FileStatus Status { get; }
    public long Length => Status.Size;

    InputFile(string path, SafeFileHandle handle, FileStatus status) { Path = path; Handle = handle; Status = status; }

    /// <exception cref="RetpolineException">RPL0100 (missing, dangling symlink, not a regular file), RPL0101 (empty),
    /// RPL0107 (permission, I/O), RPL0110 (too large).</exception>
    public static InputFile Open(string path)
    {
        var st = Check(path);
        var handle = Posix.Open(path, Posix.O_RDONLY | Posix.O_NONBLOCK | Posix.O_NOCTTY, 0, out int errno);
        if (handle is null)
            throw errno == Posix.EACCES || errno == Posix.EPERM
                ? new RetpolineException(Codes.IoError, path, "permission denied")
                : new RetpolineException(Codes.IoError, path, $"cannot open: {Posix.Describe(errno)}");
        var opened = Posix.Stat(handle, out errno);
        if (opened is not { Type: FileType.Regular } now || !now.SameFile(st))
        {
            handle.Dispose();
            throw new RetpolineException(Codes.IoError, path, "was replaced while it was opened; try again");
        }
        return new InputFile(path, handle, now);
    }

    /// <summary>What stat says, or the coded refusal: everything decided before the file is opened.</summary>
    public static FileStatus Check(string path)
    {
        if (path.Length == 0) throw new RetpolineException(Codes.FileNotFound, path, "empty file name");
        var st = Posix.Stat(path, out int errno);
        if (st is null)
        {
            if (errno is Posix.ENOENT or Posix.ENOTDIR)
            {
                // A dangling symlink: name the argument, and say where it points.
                if (Posix.LinkStat(path, out _) is not null && TryReadLink(path) is { } to)
                    throw new RetpolineException(Codes.FileNotFound, path, $"dangling symlink (to '{to}')");
                throw new RetpolineException(Codes.FileNotFound, path, "no such file");
            }
            throw errno switch
            {
                Posix.EACCES => new RetpolineException(Codes.IoError, path, "permission denied"),
                Posix.ELOOP => new RetpolineException(Codes.FileNotFound, path, "too many levels of symbolic links"),
                Posix.ENAMETOOLONG => new RetpolineException(Codes.FileNotFound, path, "file name too long"),
                _ => new RetpolineException(Codes.IoError, path, $"cannot stat: {Posix.Describe(errno)}"),
            };
        }
        var s = st.Value;
        if (s.Type != FileType.Regular)
            throw new RetpolineException(Codes.FileNotFound, path, $"is {FileTypes.Describe(s.Type)}, not a regular file");
        if (s.Size == 0)
            throw Posix.IsProcOrSys(path)
                ? new RetpolineException(Codes.FileNotFound, path, "is a /proc or /sys file (it reports size 0 and is generated on read), not a regular file")
                : new RetpolineException(Codes.NotElf, path, "empty file, not an ELF file");
        if (s.Size > MaxLength)
            throw new RetpolineException(Codes.TooLarge, path, $"is {Thousands(s.Size)} bytes; files over {Thousands(MaxLength)} bytes (2 GiB) are not supported");
        return s;
    }

    public static string Thousands(long n) => n.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);

    static string? TryReadLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public void Dispose() => Handle.Dispose();
}
