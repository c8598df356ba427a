using System.Buffers;
using System.Text;

namespace Retpoline.Reporting;

/// <summary>
/// Keeps names from the input from becoming control of the output. A file name or symbol name is bytes someone
/// else chose: a newline in one would split a one-line diagnostic in two (a forged second line in a CI log), an
/// escape sequence would drive the terminal, a bidirectional override would reorder what the reader sees. Every
/// text output — the report, the one-line errors, the build log — passes names through here: C0 and C1 control
/// characters, DEL, the Unicode line/paragraph separators and the bidi embedding/override/isolate characters are
/// written as C-style escapes (`\n`, `\t`, `\x1b`, `\u202e`). JSON and SARIF escape by their own rules instead.
/// </summary>
public static class TextEscape
{
    static readonly SearchValues<char> Unsafe = SearchValues.Create(
        new string(Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7f, 0x21))
            .Concat([0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]).Select(c => (char)c).ToArray()));

    /// <summary>Index of the first character that needs escaping, or -1 (the common case costs one vector scan).</summary>
    public static int FirstUnsafe(ReadOnlySpan<char> text) => text.IndexOfAny(Unsafe);

    /// <summary>The text with every unsafe character escaped; the same string when there is none.</summary>
    public static string Line(string text)
    {
        if (FirstUnsafe(text) < 0) return text;
        var b = new StringBuilder(text.Length + 8);
        Append(b, text);
        return b.ToString();
    }

    public static void Append(StringBuilder b, ReadOnlySpan<char> text)
    {
        while (text.Length > 0)
        {
            int i = FirstUnsafe(text);
            if (i < 0) { b.Append(text); return; }
            b.Append(text[..i]).Append(Escape(text[i]));
            text = text[(i + 1)..];
        }
    }

    public static string Escape(char c) => c switch
    {
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ when c <= 0xff => $"\\x{(int)c:x2}",
        _ => $"\\u{(int)c:x4}",
    };
}
