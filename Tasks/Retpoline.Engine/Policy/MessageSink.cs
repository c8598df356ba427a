using System.Text;

namespace Retpoline.Policy;

/// <summary>
/// Where a message is written: a string (MSBuild diagnostics, SARIF) or UTF-8 bytes (the text report of a large
/// library, tens of thousands of lines). The message text itself lives once, in <see cref="Messages"/>.
/// </summary>
public interface IMessageSink
{
    void Add(ReadOnlySpan<char> text);
    void AddHex(ulong value);
}

/// <summary>Builds a string.</summary>
public sealed class StringSink : IMessageSink
{
    readonly StringBuilder builder = new(160);
    public void Add(ReadOnlySpan<char> text) => builder.Append(text);
    public void AddHex(ulong value) => builder.Append(value.ToString("x"));
    public override string ToString() => builder.ToString();
}

/// <summary>
/// Appends UTF-8 bytes to a growable buffer, formatting numbers in place: nothing allocated per line. Text added as
/// characters is part of one line: control characters in it (a symbol or file name's) are escaped
/// (<see cref="Reporting.TextEscape"/>); a line ends with <c>Add((byte)'\n')</c>.
/// </summary>
public sealed class Utf8Sink(int capacity = 1 << 16) : IMessageSink
{
    byte[] buffer = new byte[capacity];
    int length;

    public ReadOnlySpan<byte> Written => buffer.AsSpan(0, length);
    public int Length => length;

    public void Add(ReadOnlySpan<char> text)
    {
        while (Reporting.TextEscape.FirstUnsafe(text) is int i && i >= 0)
        {
            AddVerbatim(text[..i]);
            AddVerbatim(Reporting.TextEscape.Escape(text[i]));
            text = text[(i + 1)..];
        }
        AddVerbatim(text);
    }

    void AddVerbatim(ReadOnlySpan<char> text)
    {
        Reserve(Encoding.UTF8.GetMaxByteCount(text.Length));
        length += Encoding.UTF8.GetBytes(text, buffer.AsSpan(length));
    }

    public void Add(ReadOnlySpan<byte> utf8)
    {
        Reserve(utf8.Length);
        utf8.CopyTo(buffer.AsSpan(length));
        length += utf8.Length;
    }

    public void Add(byte b) { Reserve(1); buffer[length++] = b; }

    public void AddHex(ulong value)
    {
        Reserve(16);
        value.TryFormat(buffer.AsSpan(length), out int n, "x");
        length += n;
    }

    public void AddDecimal(long value)
    {
        Reserve(20);
        value.TryFormat(buffer.AsSpan(length), out int n);
        length += n;
    }

    public void Clear() => length = 0;

    void Reserve(int more)
    {
        if (length + more <= buffer.Length) return;
        Array.Resize(ref buffer, Math.Max(buffer.Length * 2, length + more));
    }
}
