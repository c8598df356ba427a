using System.Text.RegularExpressions;

namespace Retpoline.Sdk.Tests;

/// <summary>Facts read back from built binaries with binutils, to assert on exact bytes.</summary>
public static class Native
{
    public static ulong SymbolAddress(string binary, string symbol)
    {
        var r = Dotnet.Exec("nm", Path.GetDirectoryName(binary)!, [binary]);
        var m = Regex.Match(r.Output, @"^([0-9a-f]+) \w " + Regex.Escape(symbol) + "$", RegexOptions.Multiline);
        if (!m.Success) throw new InvalidOperationException($"{symbol} not in {binary}:\n{r.Output}");
        return Convert.ToUInt64(m.Groups[1].Value, 16);
    }

    /// <summary>The bytes at a virtual address, through the section headers (readelf), never guessed.</summary>
    public static byte[] BytesAt(string binary, ulong address, int count)
    {
        var r = Dotnet.Exec("readelf", Path.GetDirectoryName(binary)!, ["-SW", binary]);
        foreach (Match m in Regex.Matches(r.Output, @"\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s+([0-9a-f]+)\s+([0-9a-f]+)"))
        {
            ulong addr = Convert.ToUInt64(m.Groups[2].Value, 16), off = Convert.ToUInt64(m.Groups[3].Value, 16), size = Convert.ToUInt64(m.Groups[4].Value, 16);
            if (address >= addr && address + (ulong)count <= addr + size && addr != 0)
                return File.ReadAllBytes(binary).AsSpan((int)(off + address - addr), count).ToArray();
        }
        throw new InvalidOperationException($"0x{address:x} is in no section of {binary}");
    }

    public static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();

    /// <summary>Compile commands the build printed at -v:n (lines that start a compiler or linker).</summary>
    public static int CompilerInvocations(string log)
        => Regex.Matches(log, @"^\s*(\S*/)?(gcc|g\+\+|clang(\+\+)?(-\d+)?|cc|c\+\+) -", RegexOptions.Multiline).Count;

    public static bool HasClang => File.Exists("/usr/bin/clang-14");
}
