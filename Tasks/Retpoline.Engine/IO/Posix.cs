using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Retpoline.Elf;

namespace Retpoline.IO;

/// <summary>What statx(2) says about a file: enough to refuse it, keep its metadata, and notice it changed.</summary>
public readonly record struct FileStatus(FileType Type, uint Mode, uint Uid, uint Gid, uint Links, long Size, ulong Device, ulong Inode, long ModifiedNs)
{
    /// <summary>S_ISUID | S_ISGID: the bits the kernel clears on chown and that grant the owner's identity.</summary>
    public const uint SetIdBits = 0xC00;
    /// <summary>Permission bits as `chmod` writes them: 0755, 6755.</summary>
    public string Octal => Convert.ToString(Mode, 8).PadLeft(4, '0');
    public bool SameFile(FileStatus other) => Device == other.Device && Inode == other.Inode;
    /// <summary>Same inode, size and modification time: nobody wrote the file in between.</summary>
    public bool Unchanged(FileStatus other) => SameFile(other) && Size == other.Size && ModifiedNs == other.ModifiedNs;
}

/// <summary>
/// The few Linux calls .NET does not expose: statx, open with O_TMPFILE / O_NONBLOCK, fchown/fchmod on a
/// descriptor, extended attributes, linkat. statx (glibc ≥ 2.28) rather than stat, which glibc exports as a
/// symbol only since 2.33. Every call returns the errno; callers turn it into a coded one-line diagnostic.
/// </summary>
public static class Posix
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_NONBLOCK = 0x800,
        O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_TMPFILE = 0x400000 | O_DIRECTORY;
    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EACCESS = 0x200, AT_SYMLINK_FOLLOW = 0x400, AT_EMPTY_PATH = 0x1000;
    public const int W_OK = 2;
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EACCES = 13, EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21,
        EINVAL = 22, ENOSPC = 28, EROFS = 30, ERANGE = 34, ENAMETOOLONG = 36, ENODATA = 61, ELOOP = 40, EOPNOTSUPP = 95, EDQUOT = 122;
    const uint STATX_BASIC_STATS = 0x7ff;
    const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000, S_IFBLK = 0x6000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;

    /// <summary>stat (follows symlinks, as open does). Null with <paramref name="errno"/> set when it fails.</summary>
    public static FileStatus? Stat(string path, out int errno) => StatAt(AT_FDCWD, path, 0, out errno);

    /// <summary>lstat: the link itself.</summary>
    public static FileStatus? LinkStat(string path, out int errno) => StatAt(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, out errno);

    public static FileStatus? Stat(SafeHandle fd, out int errno)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return StatAt((int)fd.DangerousGetHandle(), "", AT_EMPTY_PATH, out errno);
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    static FileStatus? StatAt(int dirfd, string path, int flags, out int errno)
    {
        errno = 0;
        var b = new byte[256];
        if (statx(dirfd, path, flags, STATX_BASIC_STATS, b) != 0) { errno = Marshal.GetLastPInvokeError(); return null; }
        ReadOnlySpan<byte> s = b;
        uint mode = BinaryPrimitives.ReadUInt16LittleEndian(s[28..]);
        var type = (mode & S_IFMT) switch
        {
            S_IFREG => FileType.Regular,
            S_IFDIR => FileType.Directory,
            S_IFIFO => FileType.Fifo,
            S_IFSOCK => FileType.Socket,
            S_IFCHR => FileType.CharacterDevice,
            S_IFBLK => FileType.BlockDevice,
            _ => FileType.Unknown,
        };
        ulong device = (ulong)BinaryPrimitives.ReadUInt32LittleEndian(s[136..]) << 32 | BinaryPrimitives.ReadUInt32LittleEndian(s[140..]);
        long mtime = BinaryPrimitives.ReadInt64LittleEndian(s[112..]) * 1_000_000_000 + BinaryPrimitives.ReadUInt32LittleEndian(s[120..]);
        return new FileStatus(type, mode & 0xFFF, BinaryPrimitives.ReadUInt32LittleEndian(s[20..]), BinaryPrimitives.ReadUInt32LittleEndian(s[24..]),
            BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadInt64LittleEndian(s[40..]), device,
            BinaryPrimitives.ReadUInt64LittleEndian(s[32..]), mtime);
    }

    /// <summary>
    /// "/proc", "/sys", "debugfs", … when the path is on one of the kernel's pseudo file systems, whose files are
    /// generated on read (procfs reports size 0, sysfs 4096, whatever they hold); null for a real file system.
    /// </summary>
    public static string? PseudoFileSystem(string path)
    {
        var b = new byte[120];
        if (statfs(path, b) != 0) return null;
        return BinaryPrimitives.ReadInt64LittleEndian(b) switch
        {
            0x9fa0 => "/proc",
            0x62656572 => "/sys",
            0x64626720 => "debugfs",
            0x74726163 => "tracefs",
            0x73636673 => "securityfs",
            0x27e0eb or 0x63677270 => "cgroup",
            0x62656570 => "configfs",
            _ => null,
        };
    }

    /// <summary>open(2); the descriptor is owned by the returned handle. Null with <paramref name="errno"/> on failure.</summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? Open(string path, int flags, uint mode, out int errno)
    {
        errno = 0;
        int fd;
        do fd = open(path, flags | O_CLOEXEC, mode);
        while (fd < 0 && (errno = Marshal.GetLastPInvokeError()) == EINTR);
        return fd < 0 ? null : new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    public static int FChown(SafeHandle fd, uint uid, uint gid) => WithFd(fd, f => fchown(f, uid, gid));
    public static int FChmod(SafeHandle fd, uint mode) => WithFd(fd, f => fchmod(f, mode));
    public static int FSync(SafeHandle fd) => WithFd(fd, fsync);

    /// <summary>Names of the extended attributes on <paramref name="fd"/> the caller can see. Null with errno on failure.</summary>
    public static List<string>? ListXattrs(SafeHandle fd, out int errno)
    {
        errno = 0;
        for (int size = 4096; ; size *= 4)
        {
            var buffer = new byte[size];
            nint n = 0;
            int rc = WithFd(fd, f => (int)(n = flistxattr(f, buffer, buffer.Length)) < 0 ? -1 : 0);
            if (rc == 0) return SplitNames(buffer.AsSpan(0, (int)n));
            errno = rc;
            if (errno == EOPNOTSUPP) { errno = 0; return []; } // the file system has none at all
            if (errno != ERANGE || size > 1 << 24) return null;
        }
    }

    public static byte[]? GetXattr(SafeHandle fd, string name, out int errno)
    {
        errno = 0;
        for (int size = 1024; ; size *= 8)
        {
            var buffer = new byte[size];
            nint n = 0;
            int rc = WithFd(fd, f => (int)(n = fgetxattr(f, name, buffer, buffer.Length)) < 0 ? -1 : 0);
            if (rc == 0) return buffer.AsSpan(0, (int)n).ToArray();
            errno = rc;
            if (errno != ERANGE || size > 1 << 24) return null;
        }
    }

    public static int SetXattr(SafeHandle fd, string name, byte[] value) => WithFd(fd, f => fsetxattr(f, name, value, value.Length, 0));
    public static int RemoveXattr(SafeHandle fd, string name) => WithFd(fd, f => fremovexattr(f, name));

    /// <summary>Gives an O_TMPFILE file a name (through /proc/self/fd, which needs no privilege).</summary>
    public static int LinkTmpfile(SafeHandle fd, string newPath)
        => WithFd(fd, f => linkat(AT_FDCWD, $"/proc/self/fd/{f}", AT_FDCWD, newPath, AT_SYMLINK_FOLLOW));

    public static int Rename(string from, string to) => rename(from, to) == 0 ? 0 : Marshal.GetLastPInvokeError();
    public static int Unlink(string path) => unlink(path) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Whether the effective user may write <paramref name="path"/> (AT_EACCESS: euid, not the real uid).</summary>
    public static bool CanWrite(string path) => faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0;

    public static uint EffectiveUid => geteuid();
    public static uint EffectiveGid => getegid();

    /// <summary>False only when no process has this id (ESRCH); a process we may not signal (EPERM) is alive.</summary>
    public static bool ProcessExists(int pid) => pid > 0 && (kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() != ESRCH);

    /// <summary>fsync of a directory, so a rename in it survives a crash.</summary>
    public static void SyncDirectory(string dir)
    {
        using var h = Open(dir, O_RDONLY | O_DIRECTORY, 0, out _);
        if (h is not null) _ = FSync(h);
    }

    /// <summary>realpath(3): the absolute path with every symlink and `..` resolved; null when it does not exist.</summary>
    public static string? RealPath(string path)
    {
        nint p = realpath(path, 0);
        if (p == 0) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { free(p); }
    }

    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    static int WithFd(SafeHandle fd, Func<int, int> call)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            int f = (int)fd.DangerousGetHandle();
            int rc;
            do rc = call(f) == 0 ? 0 : Marshal.GetLastPInvokeError();
            while (rc == EINTR);
            return rc;
        }
        finally { if (added) fd.DangerousRelease(); }
    }

    static List<string> SplitNames(ReadOnlySpan<byte> list)
    {
        var names = new List<string>();
        while (list.Length > 0)
        {
            int end = list.IndexOf((byte)0);
            if (end < 0) end = list.Length;
            if (end > 0) names.Add(System.Text.Encoding.UTF8.GetString(list[..end]));
            list = list[Math.Min(list.Length, end + 1)..];
        }
        return names;
    }

    [DllImport("libc", SetLastError = true)] static extern int statx(int dirfd, string path, int flags, uint mask, byte[] buf);
    [DllImport("libc", SetLastError = true)] static extern int statfs(string path, byte[] buf);
    [DllImport("libc", SetLastError = true)] static extern int open(string path, int flags, uint mode);
    [DllImport("libc", SetLastError = true)] static extern int fchown(int fd, uint owner, uint group);
    [DllImport("libc", SetLastError = true)] static extern int fchmod(int fd, uint mode);
    [DllImport("libc", SetLastError = true)] static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] static extern nint flistxattr(int fd, byte[] list, nint size);
    [DllImport("libc", SetLastError = true)] static extern nint fgetxattr(int fd, string name, byte[] value, nint size);
    [DllImport("libc", SetLastError = true)] static extern int fsetxattr(int fd, string name, byte[] value, nint size, int flags);
    [DllImport("libc", SetLastError = true)] static extern int fremovexattr(int fd, string name);
    [DllImport("libc", SetLastError = true)] static extern int linkat(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);
    [DllImport("libc", SetLastError = true)] static extern int rename(string oldpath, string newpath);
    [DllImport("libc", SetLastError = true)] static extern int unlink(string path);
    [DllImport("libc", SetLastError = true)] static extern int faccessat(int dirfd, string path, int mode, int flags);
    [DllImport("libc", SetLastError = true)] static extern nint realpath(string path, nint resolved);
    [DllImport("libc")] static extern void free(nint p);
    [DllImport("libc")] static extern uint geteuid();
    [DllImport("libc")] static extern uint getegid();
    [DllImport("libc", SetLastError = true)] static extern int kill(int pid, int sig);
}
