using System.Globalization;
using System.Text;

namespace Retpoline.Elf;

/// <summary>
/// A static library (`ar` archive, GNU and BSD member names) verified member by member, each as the object it is; its
/// reports and findings are named `lib.a(member.o)`, and every finding's origin is that archive and member, so the
/// Archive and Object waivers match as they do in a linked file. The symbol table (`/`, `/SYM64/`) and the long-name
/// table (`//`) are not members. A thin archive (members stored elsewhere) is RPL0117; a member that is not an x86-64
/// ELF object RPL0116 (the others are still verified); an archive whose headers do not add up RPL0118.
/// </summary>
public static class StaticArchive
{
    static readonly byte[] Magic = "!<arch>\n"u8.ToArray();
    static readonly byte[] ThinMagic = "!<thin>\n"u8.ToArray();
    const int HeaderSize = 60;

    /// <summary>The file starts like an ar archive (regular or thin).</summary>
    public static bool IsArchive(string path)
    {
        // Only a regular file is opened here: opening a FIFO would block (verify refuses it later, with its code).
        if (IO.Posix.Stat(path, out _) is not { Type: FileType.Regular }) return false;
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> head = stackalloc byte[8];
            return f.ReadAtLeast(head, 8, throwOnEndOfStream: false) == 8 && (head.SequenceEqual(Magic) || head.SequenceEqual(ThinMagic));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>One member: its name and bytes.</summary>
    public sealed record Member(string Name, byte[] Data);

    /// <exception cref="RetpolineException">RPL0117 thin archive, RPL0118 bad archive, RPL01xx an unreadable file.</exception>
    public static List<Member> Read(string path)
    {
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (FileNotFoundException) { throw new RetpolineException(Codes.FileNotFound, path, "no such file"); }
        catch (UnauthorizedAccessException) { throw new RetpolineException(Codes.IoError, path, "permission denied"); }
        catch (IOException e) { throw new RetpolineException(Codes.IoError, path, $"cannot read: {e.Message}"); }
        return Parse(path, data);
    }

    public static List<Member> Parse(string path, byte[] data)
    {
        if (data.AsSpan().StartsWith(ThinMagic))
            throw new RetpolineException(Codes.ThinArchive, path, "thin archive: its members are files stored elsewhere (ar T); verify those object files, or make a regular archive with ar rcs");
        if (!data.AsSpan().StartsWith(Magic)) throw new RetpolineException(Codes.BadArchive, path, "not an ar archive (no !<arch> magic)");
        var members = new List<Member>();
        byte[]? longNames = null;
        long pos = Magic.Length;
        while (pos < data.Length)
        {
            long at = pos;
            if (data.Length - pos == 1 && data[pos] == (byte)'\n') break; // the padding after an odd-sized last member
            if (data.Length - pos < HeaderSize) throw Bad(path, $"truncated member header at offset {pos}");
            var header = data.AsSpan((int)pos, HeaderSize);
            if (header[58] != (byte)'`' || header[59] != (byte)'\n') throw Bad(path, $"member header at offset {pos} lacks its terminator");
            string rawName = Encoding.ASCII.GetString(header[..16]).TrimEnd(' ');
            string sizeText = Encoding.ASCII.GetString(header[48..58]).Trim();
            if (!long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out long size))
                throw Bad(path, $"member at offset {pos} has size '{sizeText}', not a number");
            long start = pos + HeaderSize;
            if (size > data.Length - start) throw Bad(path, $"member at offset {pos} claims {size} bytes, past the end of the file");
            var body = data.AsSpan((int)start, (int)size);
            pos = start + size + (size & 1);

            if (rawName is "/" or "/SYM64/" or "__.SYMDEF" or "__.SYMDEF SORTED") continue; // symbol tables
            if (rawName == "//") { longNames = body.ToArray(); continue; }
            string name;
            if (rawName.StartsWith("#1/", StringComparison.Ordinal))
            {
                // BSD: the name is the first N bytes of the data.
                if (!int.TryParse(rawName[3..], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > body.Length)
                    throw Bad(path, $"member at offset {at} has a BSD name length '{rawName[3..]}' past its data");
                name = Encoding.UTF8.GetString(body[..n]).TrimEnd('\0');
                body = body[n..];
            }
            else if (rawName.Length > 1 && rawName[0] == '/' && int.TryParse(rawName[1..], NumberStyles.None, CultureInfo.InvariantCulture, out int offset))
            {
                // GNU: an offset into the `//` table, the name ending in "/\n".
                if (longNames is null || offset >= longNames.Length) throw Bad(path, $"member name {rawName} points outside the long-name table");
                var rest = longNames.AsSpan(offset);
                int end = rest.IndexOf("/\n"u8);
                name = Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]);
            }
            else name = rawName.EndsWith('/') ? rawName[..^1] : rawName;
            members.Add(new Member(name, body.ToArray()));
        }
        return members;
    }

    /// <summary>
    /// Each member verified as an object, its report named `path(member)`; a member that is not an x86-64 ELF object
    /// is RPL0116 in the second list and the others are still verified.
    /// </summary>
    /// <exception cref="RetpolineException">The archive itself is unusable (RPL0117, RPL0118, RPL01xx).</exception>
    public static (List<VerifyReport> Reports, List<RetpolineException> Unusable) Verify(string path, VerifyOptions options)
    {
        var reports = new List<VerifyReport>();
        var unusable = new List<RetpolineException>();
        foreach (var member in Read(path))
        {
            string name = $"{path}({member.Name})";
            ElfFile elf;
            try { elf = ElfFile.Parse(name, member.Data); }
            catch (RetpolineException e)
            {
                unusable.Add(new RetpolineException(Codes.ArchiveMemberNotElf, name, $"archive member is not an x86-64 ELF object: {e.Message}"));
                continue;
            }
            reports.Add(Verifier.Verify(elf, options, new FindingOrigin(path, member.Name, null)));
        }
        return (reports, unusable);
    }

    static RetpolineException Bad(string path, string what) => new(Codes.BadArchive, path, $"bad ar archive: {what}");
}
