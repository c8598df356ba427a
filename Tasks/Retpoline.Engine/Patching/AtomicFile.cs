using System.Runtime.InteropServices;

namespace Retpoline.Patching;

/// <summary>
/// Replaces a file's contents all at once: a temp file in the same directory, flushed to disk, given the original's
/// mode and owner, then renamed over it. A reader sees the old file or the new one, never half of each; a failure
/// leaves the original untouched and no temp file behind.
/// </summary>
public static class AtomicFile
{
    /// <summary>Patch the file a symlink points at, not the link (rename would replace the link with a file).</summary>
    public static string ResolveTarget(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.LinkTarget is null ? path : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
        }
        catch (IOException) { return path; }
    }

    public static void Replace(string path, byte[] contents)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.rpl-tmp");
        try
        {
            UnixFileMode? mode = OperatingSystem.IsWindows() ? null : File.GetUnixFileMode(full);
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(contents);
                fs.Flush(flushToDisk: true);
            }
            if (mode is { } m && !OperatingSystem.IsWindows()) { File.SetUnixFileMode(temp, m); CopyOwner(full, temp); }
            File.Move(temp, full, overwrite: true); // rename(2): atomic within a file system
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw new RetpolineException(Codes.IoError, path, $"cannot write the patched file ({e.Message}); the original is unchanged");
        }
    }

    static void TryDelete(string path) { try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { } }

    /// <summary>Keep uid/gid when we may (root patching another user's file); otherwise the new file is ours, as with `cp`.</summary>
    static void CopyOwner(string from, string to)
    {
        var st = new byte[StatSize];
        if (stat(from, st) != 0) return;
        uint uid = BitConverter.ToUInt32(st, 28), gid = BitConverter.ToUInt32(st, 32); // x86-64 glibc struct stat layout
        if (stat(to, st) == 0 && BitConverter.ToUInt32(st, 28) == uid && BitConverter.ToUInt32(st, 32) == gid) return;
        _ = chown(to, uid, gid); // EPERM for a non-root user patching a file it does not own: the mode is still kept
    }

    const int StatSize = 144;
    [DllImport("libc", SetLastError = true)] static extern int stat(string path, byte[] buf);
    [DllImport("libc", SetLastError = true)] static extern int chown(string path, uint owner, uint group);
}
