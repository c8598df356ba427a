using System.Text.RegularExpressions;
using Retpoline.Tests;

namespace Retpoline.Sdk.Tests;

/// <summary>Facts read back from built binaries with binutils, to assert on exact bytes.</summary>
public static class Native
{
    public static ulong SymbolAddress(string binary, string symbol)
    {
        var r = NativeToolchain.Run(NativeToolchain.Nm, [binary]).EnsureSuccess();
        var m = Regex.Match(r.StdOut, @"^([0-9a-f]+) \w " + Regex.Escape(symbol) + "$", RegexOptions.Multiline);
        if (!m.Success) throw new InvalidOperationException($"{symbol} not in {binary}:\n{r.StdOut}");
        return Convert.ToUInt64(m.Groups[1].Value, 16);
    }

    public static bool HasSymbol(string binary, string symbol)
        => Regex.IsMatch(NativeToolchain.Run(NativeToolchain.Nm, [binary]).StdOut, @"^[0-9a-f]+ \w " + Regex.Escape(symbol) + "$", RegexOptions.Multiline);

    /// <summary>The bytes at a virtual address, through the section headers (readelf), never guessed.</summary>
    public static byte[] BytesAt(string binary, ulong address, int count)
    {
        var r = NativeToolchain.Run(NativeToolchain.Readelf, ["-SW", binary]).EnsureSuccess();
        foreach (Match m in Regex.Matches(r.StdOut, @"\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s+([0-9a-f]+)\s+([0-9a-f]+)"))
        {
            ulong addr = Convert.ToUInt64(m.Groups[2].Value, 16), off = Convert.ToUInt64(m.Groups[3].Value, 16), size = Convert.ToUInt64(m.Groups[4].Value, 16);
            if (address >= addr && address + (ulong)count <= addr + size && addr != 0)
                return File.ReadAllBytes(binary).AsSpan((int)(off + address - addr), count).ToArray();
        }
        throw new InvalidOperationException($"0x{address:x} is in no section of {binary}");
    }

    public static string ThunkHex(string binary, string thunk = "__x86_indirect_thunk_rax")
        => Hex(BytesAt(binary, SymbolAddress(binary, thunk), 17));

    public static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();

    public static string Disassemble(string binary) => NativeToolchain.Run(NativeToolchain.Objdump, ["-d", binary]).EnsureSuccess().StdOut;

    public static string DynamicSection(string binary) => NativeToolchain.Run(NativeToolchain.Readelf, ["-dW", binary]).EnsureSuccess().StdOut;

    /// <summary>Compile commands the build printed at -v:n (lines that start a compiler).</summary>
    public static int CompilerInvocations(string log)
        => Regex.Matches(log, @"^\s*(\S*/)?(gcc|g\+\+|clang(\+\+)?(-\d+)?|cc|c\+\+) .* -c ", RegexOptions.Multiline).Count;

    /// <summary>Link commands the build printed at -v:n.</summary>
    public static int LinkInvocations(string log)
        => Regex.Matches(log, @"^\s*(\S*/)?(gcc|g\+\+|clang(\+\+)?(-\d+)?|cc|c\+\+) (?!.* -c ).*-Wl,-z,now", RegexOptions.Multiline).Count;
}
