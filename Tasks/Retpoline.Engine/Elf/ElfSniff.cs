namespace Retpoline.Elf;

/// <summary>What the first bytes of a file say it is, read without reading the file whole.</summary>
public enum SniffKind
{
    /// <summary>No such file (or a dangling symlink).</summary>
    Missing,
    /// <summary>A FIFO, socket, device or directory: opening it could block or never end, so it is never opened.</summary>
    NotRegular,
    /// <summary>A regular file that reports size 0 (also what /proc files report): nothing to read.</summary>
    Empty,
    Unreadable,
    NotElf,
    /// <summary>ELF magic, shorter than an ELF identification + machine field.</summary>
    Truncated,
    Elf32,
    BigEndian,
    OtherMachine,
    X86_64,
}

/// <summary>The result of <see cref="ElfSniff.Read"/>: the kind, the machine field when there is one, and for a
/// non-regular file what it is ("a FIFO", "a character device").</summary>
public readonly record struct Sniff(SniffKind Kind, ushort Machine = 0, string? What = null)
{
    public bool IsX86_64Elf => Kind == SniffKind.X86_64;
    public bool IsElf => Kind is SniffKind.Truncated or SniffKind.Elf32 or SniffKind.BigEndian or SniffKind.OtherMachine or SniffKind.X86_64;

    /// <summary>In a few words: "not an ELF file (no ELF magic)", "an ELF file for AArch64 (machine 183)", "a FIFO".</summary>
    public string Describe() => Kind switch
    {
        SniffKind.Missing => "missing",
        SniffKind.NotRegular => What ?? "not a regular file",
        SniffKind.Empty => "an empty file",
        SniffKind.Unreadable => "unreadable",
        SniffKind.NotElf => "not an ELF file (no ELF magic)",
        SniffKind.Truncated => "a truncated ELF file (shorter than an ELF header)",
        SniffKind.Elf32 => $"a 32-bit ELF file for {ElfMachines.Name(Machine)} (machine {Machine})",
        SniffKind.BigEndian => $"a big-endian ELF file for {ElfMachines.Name(Machine)} (machine {Machine})",
        SniffKind.X86_64 => "an x86-64 ELF file",
        _ => $"an ELF file for {ElfMachines.Name(Machine)} (machine {Machine})",
    };
}

/// <summary>
/// The one place that decides, from its type and first 20 bytes, whether a file is an x86-64 ELF worth verifying: the
/// build's output scan, `retpoline audit` and the loader all ask it. A FIFO, socket or device is recognised from
/// stat(2) before any open (opening a FIFO blocks until a writer comes), so scanning an output folder never hangs.
/// </summary>
public static class ElfSniff
{
    const ushort MachineX86_64 = 62;

    public static Sniff Read(string path)
    {
        var type = FileTypes.Of(path, out long size);
        switch (type)
        {
            case FileType.Missing: return new Sniff(SniffKind.Missing);
            case FileType.Regular: break;
            case FileType.Unknown: return new Sniff(SniffKind.Unreadable);
            default: return new Sniff(SniffKind.NotRegular, What: FileTypes.Describe(type));
        }
        if (size == 0) return new Sniff(SniffKind.Empty);
        Span<byte> head = stackalloc byte[20];
        int n;
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (IOException) { return new Sniff(SniffKind.Unreadable); }
        catch (UnauthorizedAccessException) { return new Sniff(SniffKind.Unreadable); }
        if (n < 4 || head[0] != 0x7F || head[1] != (byte)'E' || head[2] != (byte)'L' || head[3] != (byte)'F') return new Sniff(SniffKind.NotElf);
        if (n < head.Length) return new Sniff(SniffKind.Truncated);
        if (head[5] == 2) return new Sniff(SniffKind.BigEndian, (ushort)(head[18] << 8 | head[19]));
        ushort machine = (ushort)(head[18] | head[19] << 8);
        if (head[4] != 2) return new Sniff(SniffKind.Elf32, machine);
        return new Sniff(machine == MachineX86_64 ? SniffKind.X86_64 : SniffKind.OtherMachine, machine);
    }
}

/// <summary>e_machine values by name: one table for every message that names an architecture.</summary>
public static class ElfMachines
{
    public static string Name(ushort machine) => machine switch
    {
        3 => "i386", 8 => "MIPS", 0x14 => "PowerPC", 0x15 => "PowerPC64", 0x16 => "s390", 0x28 => "ARM", 0x2B => "SPARC V9",
        0x3E => "x86-64", 0xB7 => "AArch64", 0xF3 => "RISC-V", 0x102 => "LoongArch", _ => "another machine",
    };
}

public enum FileType { Missing, Regular, Directory, Fifo, Socket, CharacterDevice, BlockDevice, Unknown }

/// <summary>stat(2) (statx, <see cref="IO.Posix"/>): the file type and size without opening the file (follows symlinks, as open does).</summary>
public static class FileTypes
{
    public static FileType Of(string path, out long size)
    {
        size = 0;
        if (path.Length == 0) return FileType.Missing;
        if (IO.Posix.Stat(path, out int errno) is not { } st)
            return errno is ENOENT or ENOTDIR or ELOOP or ENAMETOOLONG ? FileType.Missing : FileType.Unknown;
        size = st.Size;
        return st.Type;
    }

    public static string Describe(FileType type) => type switch
    {
        FileType.Directory => "a directory",
        FileType.Fifo => "a FIFO (named pipe)",
        FileType.Socket => "a socket",
        FileType.CharacterDevice => "a character device",
        FileType.BlockDevice => "a block device",
        FileType.Missing => "missing",
        FileType.Regular => "a regular file",
        _ => "not a regular file",
    };

    const int ENOENT = 2, ENOTDIR = 20, ENAMETOOLONG = 36, ELOOP = 40;
}
