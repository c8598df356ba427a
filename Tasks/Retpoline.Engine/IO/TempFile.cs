using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace Retpoline.IO;

/// <summary>
/// The new contents of a file, written beside it and then renamed over it, so a reader sees the old file or the new
/// one and never half of each. The file is created with O_TMPFILE: it has no name until it is complete, so no other
/// user can open it at any moment and a process killed with SIGKILL leaves nothing behind. Where the file system
/// lacks O_TMPFILE it falls back to a named file created 0600 with O_EXCL. The name it is linked under before the
/// rename is short and fixed (`.retpoline-PID-RANDOM.tmp`, 39 bytes), so it fits beside any name the file system
/// accepts, and leftovers a dead process of ours left in the directory (the instant between link and rename, or the
/// named fallback) are removed by the next one.
/// </summary>
public sealed class TempFile : IDisposable
{
    static readonly Regex OurName = new(@"^\.retpoline-(\d+)-[0-9a-f]{16}\.tmp$", RegexOptions.CultureInvariant);
    /// <summary>What earlier versions of this tool named their temp files: cleaned up too.</summary>
    static readonly Regex OldName = new(@"^\..+\.(\d+)\.[0-9a-f]{32}\.rpl-tmp$", RegexOptions.CultureInvariant);

    readonly string directory;
    string? named; // the fallback's name, or the name linked before the rename
    bool done;

    public SafeFileHandle Handle { get; }
    /// <summary>Writes go straight to the descriptor; disposing the stream leaves the file open.</summary>
    public Stream Stream { get; }

    TempFile(string directory, SafeFileHandle handle, string? named)
    {
        this.directory = directory; Handle = handle; this.named = named;
        Stream = new DescriptorStream(handle);
    }

    /// <summary>Creates the file in <paramref name="directory"/> with <paramref name="mode"/> (before the umask).</summary>
    /// <param name="useTmpfile">False forces the named fallback (tests: every file system here has O_TMPFILE).</param>
    /// <exception cref="IOException">The directory does not accept a new file (errno text in the message).</exception>
    public static TempFile Create(string directory, uint mode) => Create(directory, mode, useTmpfile: true);

    internal static TempFile Create(string directory, uint mode, bool useTmpfile)
    {
        RemoveLeftovers(directory);
        if (useTmpfile && Directory.Exists("/proc/self/fd"))
        {
            var handle = Posix.Open(directory, Posix.O_TMPFILE | Posix.O_WRONLY, mode, out int errno);
            if (handle is not null) return new TempFile(directory, handle, null);
            // EOPNOTSUPP / EISDIR / EINVAL: this file system (or kernel) has no O_TMPFILE; anything else is real.
            if (errno is not (Posix.EOPNOTSUPP or Posix.EISDIR or Posix.EINVAL)) throw Failure(directory, errno);
        }
        string name = NewName(directory);
        var file = Posix.Open(name, Posix.O_WRONLY | Posix.O_CREAT | Posix.O_EXCL | Posix.O_NOFOLLOW, mode, out int e);
        return file is null ? throw Failure(directory, e) : new TempFile(directory, file, name);
    }

    /// <summary>fsync, then give the file <paramref name="target"/>'s name (rename over it), then fsync the directory.</summary>
    public void ReplaceAt(string target)
    {
        int rc = Posix.FSync(Handle);
        if (rc != 0) throw Failure(directory, rc);
        if (named is null)
        {
            string name = NewName(directory);
            rc = Posix.LinkTmpfile(Handle, name);
            if (rc != 0) throw Failure(directory, rc);
            named = name;
        }
        rc = Posix.Rename(named, target);
        if (rc != 0) throw Failure(directory, rc);
        named = null;
        done = true;
        Posix.SyncDirectory(directory);
    }

    /// <summary>Closes the file; one that was never renamed into place is deleted (an O_TMPFILE one simply vanishes).</summary>
    public void Dispose()
    {
        Handle.Dispose();
        if (!done && named is not null) _ = Posix.Unlink(named);
    }

    static string NewName(string directory)
        => Path.Combine(directory, $".retpoline-{Environment.ProcessId}-{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)).ToLowerInvariant()}.tmp");

    static IOException Failure(string directory, int errno) => new($"{Posix.Describe(errno)} (in {directory})");

    /// <summary>
    /// Deletes temp files of ours that a process no longer running left in <paramref name="directory"/>: our name
    /// pattern, owned by us, a regular file with one link, and no process with the pid the name carries.
    /// </summary>
    public static int RemoveLeftovers(string directory)
    {
        int removed = 0;
        IEnumerable<string> entries;
        try { entries = Directory.EnumerateFiles(directory, ".*"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
        try
        {
            foreach (var path in entries)
            {
                string name = Path.GetFileName(path);
                var m = OurName.Match(name);
                if (!m.Success) m = OldName.Match(name);
                if (!m.Success || !int.TryParse(m.Groups[1].Value, out int pid) || pid == Environment.ProcessId || Posix.ProcessExists(pid)) continue;
                if (Posix.LinkStat(path, out _) is not { Type: Elf.FileType.Regular, Links: 1 } st || st.Uid != Posix.EffectiveUid) continue;
                if (Posix.Unlink(path) == 0) removed++;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return removed;
    }

    /// <summary>A write-only stream over a descriptor it does not own.</summary>
    sealed class DescriptorStream(SafeFileHandle handle) : Stream
    {
        long position;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => position;
        public override long Position { get => position; set => throw new NotSupportedException(); }
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            RandomAccess.Write(handle, buffer, position);
            position += buffer.Length;
        }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
