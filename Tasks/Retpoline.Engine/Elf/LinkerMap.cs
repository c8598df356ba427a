using System.Globalization;
using System.Text.RegularExpressions;

namespace Retpoline.Elf;

/// <summary>
/// A linker map (`-Wl,-Map,FILE`) read into address ranges, each naming the link input its bytes came from: an object
/// file, or a static archive and member (`libthird.a(third.o)`). GNU ld's and lld's formats are both read; anything
/// the linker made itself (PLT, `&lt;internal&gt;`, fill) has no input and is left out.
/// </summary>
public sealed partial class LinkerMap
{
    readonly ulong[] starts;
    readonly ulong[] ends;
    readonly FindingOrigin[] origins;

    LinkerMap(List<(ulong start, ulong end, FindingOrigin origin)> ranges)
    {
        ranges.Sort((a, b) => a.start.CompareTo(b.start));
        starts = ranges.Select(r => r.start).ToArray();
        ends = ranges.Select(r => r.end).ToArray();
        origins = ranges.Select(r => r.origin).ToArray();
    }

    /// <summary>Input sections with bytes the map placed.</summary>
    public int Count => starts.Length;

    /// <summary>The input whose section holds the address, or null. Thread-safe.</summary>
    public FindingOrigin? At(ulong address)
    {
        int i = Array.BinarySearch(starts, address);
        if (i < 0) i = ~i - 1;
        // Input sections do not overlap; a zero-size one sorts before the section that follows it at the same address.
        for (; i >= 0 && i < starts.Length && starts[i] <= address; i++)
            if (address < ends[i] && (i + 1 == starts.Length || starts[i + 1] > address || ends[i + 1] <= address)) return origins[i];
        return null;
    }

    /// <param name="baseDirectory">Object paths under it are made relative to it (the project folder in a build), so
    /// no build folder appears in a report.</param>
    /// <exception cref="RetpolineException">RPL0119: the file cannot be read or is no GNU ld / lld map.</exception>
    public static LinkerMap Read(string path, string? baseDirectory = null)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RetpolineException(Codes.LinkerMapUnusable, path, $"linker map cannot be read: {e.Message}");
        }
        return Parse(text, baseDirectory) ?? throw new RetpolineException(Codes.LinkerMapUnusable, path,
            "not a GNU ld or lld linker map (expected the output of -Wl,-Map,FILE: 'Linker script and memory map', or lld's 'VMA LMA Size Align Out In Symbol' header)");
    }

    /// <summary>Null when the text is neither format.</summary>
    public static LinkerMap? Parse(string text, string? baseDirectory = null)
    {
        var lines = text.Split('\n');
        var ranges = new List<(ulong, ulong, FindingOrigin)>();
        int gnu = Array.FindIndex(lines, l => l.TrimEnd('\r') == "Linker script and memory map");
        int lld = Array.FindIndex(lines, l => LldHeader().IsMatch(l));
        if (gnu >= 0) ParseGnu(lines, gnu + 1, ranges, baseDirectory);
        else if (lld >= 0) ParseLld(lines, lld + 1, ranges, baseDirectory);
        else return null;
        return new LinkerMap(ranges);
    }

    // GNU ld: ` .text  0x0000000000001170  0x2f libthird.a(third.o)`, or a long section name alone on its line with the
    // address, size and file on the next. Symbol lines (`0x… name`) and `*fill*` carry one number or no file.
    [GeneratedRegex(@"^ (?<section>[^\s*]\S*)\s+0x(?<addr>[0-9a-fA-F]+)\s+0x(?<size>[0-9a-fA-F]+)\s+(?<file>\S.*?)\s*$")]
    private static partial Regex GnuInput();
    [GeneratedRegex(@"^ (?<section>[^\s*]\S*)\s*$")]
    private static partial Regex GnuSectionAlone();
    [GeneratedRegex(@"^\s+0x(?<addr>[0-9a-fA-F]+)\s+0x(?<size>[0-9a-fA-F]+)\s+(?<file>\S.*?)\s*$")]
    private static partial Regex GnuContinuation();

    // An output section (`.text  0x… 0x…`, or a long name alone and its address on the next line) at column 0:
    // only those with an address hold code; non-allocated ones (.debug_*, .comment) start at 0 and their inputs'
    // offsets would overlap the code's addresses.
    [GeneratedRegex(@"^(?<name>[^\s*]\S*)(\s+0x(?<addr>[0-9a-fA-F]+))?")]
    private static partial Regex GnuOutput();
    [GeneratedRegex(@"^\s+0x(?<addr>[0-9a-fA-F]+)\s+0x[0-9a-fA-F]+\s*$")]
    private static partial Regex GnuOutputAddress();

    static void ParseGnu(string[] lines, int from, List<(ulong, ulong, FindingOrigin)> ranges, string? baseDirectory)
    {
        bool allocated = false;
        for (int i = from; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Length > 0 && !char.IsWhiteSpace(line[0]) && GnuOutput().Match(line) is { Success: true } output)
            {
                string address = output.Groups["addr"].Value;
                if (address.Length == 0 && i + 1 < lines.Length && GnuOutputAddress().Match(lines[i + 1].TrimEnd('\r')) is { Success: true } at) { address = at.Groups["addr"].Value; i++; }
                allocated = address.Length > 0 && address.Any(c => c != '0');
                continue;
            }
            if (!allocated) continue;
            Match m = GnuInput().Match(line);
            if (!m.Success && GnuSectionAlone().IsMatch(line) && i + 1 < lines.Length && GnuContinuation().Match(lines[i + 1].TrimEnd('\r')) is { Success: true } next)
            {
                m = next; i++;
            }
            if (m.Success) Add(ranges, m.Groups["addr"].Value, m.Groups["size"].Value, m.Groups["file"].Value, baseDirectory);
        }
    }

    // lld: `VMA LMA Size Align Out In Symbol`, then `17e0 17e0 2f 16         libthird.a(third.o):(.text)`.
    [GeneratedRegex(@"^\s*VMA\s+LMA\s+Size\s+Align\s+Out\s+In\s+Symbol\s*$")]
    private static partial Regex LldHeader();
    [GeneratedRegex(@"^\s*(?<addr>[0-9a-fA-F]+)\s+[0-9a-fA-F]+\s+(?<size>[0-9a-fA-F]+)\s+\d+\s+(?<file>\S.*):\([^()]*\)\s*$")]
    private static partial Regex LldInput();

    // The output section's name follows the Align column after one space; inputs and symbols are indented further.
    [GeneratedRegex(@"^\s*(?<addr>[0-9a-fA-F]+)\s+[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+\d+ \S")]
    private static partial Regex LldOutput();

    static void ParseLld(string[] lines, int from, List<(ulong, ulong, FindingOrigin)> ranges, string? baseDirectory)
    {
        bool allocated = false;
        for (int i = from; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (LldOutput().Match(line) is { Success: true } output) { allocated = output.Groups["addr"].Value.Any(c => c != '0'); continue; }
            if (allocated && LldInput().Match(line) is { Success: true } m)
                Add(ranges, m.Groups["addr"].Value, m.Groups["size"].Value, m.Groups["file"].Value, baseDirectory);
        }
    }

    [GeneratedRegex(@"^(?<archive>.+)\((?<member>[^()]+)\)$")]
    private static partial Regex ArchiveMember();

    static void Add(List<(ulong, ulong, FindingOrigin)> ranges, string address, string size, string file, string? baseDirectory)
    {
        if (!ulong.TryParse(address, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
            || !ulong.TryParse(size, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong length)
            || length == 0 || start + length < start) return;
        if (file.StartsWith('<')) return; // <internal>: made by the linker
        var origin = ArchiveMember().Match(file) is { Success: true } m
            ? new FindingOrigin(Relative(m.Groups["archive"].Value, baseDirectory), m.Groups["member"].Value, null)
            : new FindingOrigin(null, Relative(file, baseDirectory), null);
        ranges.Add((start, start + length, origin));
    }

    /// <summary>An absolute path without its `..` (GNU ld writes `/usr/lib/gcc/…/12/../../../…/crti.o`), relative to the base when under it.</summary>
    static string Relative(string path, string? baseDirectory)
    {
        if (!Path.IsPathRooted(path)) return path;
        string full = Path.GetFullPath(path);
        if (baseDirectory is null) return full;
        string root = Path.GetFullPath(baseDirectory).TrimEnd('/') + "/";
        return full.StartsWith(root, StringComparison.Ordinal) ? full[root.Length..] : full;
    }
}
