using Microsoft.Win32.SafeHandles;

namespace Retpoline.Patching;

/// <summary>
/// A patched file as edits of the original: its first <see cref="KeepLength"/> bytes with some ranges overwritten,
/// then <see cref="Tail"/>. Patch writes it by streaming the original through a small buffer, so memory does not
/// grow with the file, and every byte outside the overwritten ranges is the original's, copied, never recomputed.
/// </summary>
public sealed class FileEdits(long originalLength)
{
    const int ChunkSize = 1 << 20;
    readonly List<(long offset, byte[] bytes)> writes = [];

    public long OriginalLength { get; } = originalLength;
    /// <summary>How much of the original the output starts with (less when an appended record is cut off).</summary>
    public long KeepLength { get; set; } = originalLength;
    /// <summary>Appended after the kept bytes.</summary>
    public byte[] Tail { get; set; } = [];
    public long Length => KeepLength + Tail.Length;
    public bool IsEmpty => writes.Count == 0 && KeepLength == OriginalLength && Tail.Length == 0;

    /// <summary>Overwrites bytes of the original; a later write wins where two overlap.</summary>
    public void Overwrite(long offset, ReadOnlySpan<byte> bytes)
    {
        if (offset < 0 || offset + bytes.Length > OriginalLength) throw new ArgumentOutOfRangeException(nameof(offset), $"write at 0x{offset:x}+{bytes.Length} outside the {OriginalLength}-byte file");
        if (bytes.Length > 0) writes.Add((offset, bytes.ToArray()));
    }

    /// <summary>Streams the output: the original read from <paramref name="original"/> with the writes applied, then the tail.</summary>
    public void WriteTo(Stream output, SafeFileHandle original)
    {
        var ranges = Normalised();
        var chunk = new byte[(int)Math.Min(ChunkSize, Math.Max(1, KeepLength))];
        int next = 0;
        for (long at = 0; at < KeepLength; at += chunk.Length)
        {
            int n = (int)Math.Min(chunk.Length, KeepLength - at);
            var span = chunk.AsSpan(0, n);
            ReadExactly(original, span, at);
            while (next < ranges.Count && ranges[next].offset + ranges[next].bytes.Length <= at) next++;
            for (int i = next; i < ranges.Count && ranges[i].offset < at + n; i++)
            {
                var (offset, bytes) = ranges[i];
                long from = Math.Max(offset, at), to = Math.Min(offset + bytes.Length, at + n);
                bytes.AsSpan((int)(from - offset), (int)(to - from)).CopyTo(span[(int)(from - at)..]);
            }
            output.Write(span);
        }
        output.Write(Tail);
    }

    /// <summary>The output built in memory from the whole original (small files, tests).</summary>
    public byte[] Apply(ReadOnlySpan<byte> original)
    {
        var output = new byte[Length];
        original[..(int)KeepLength].CopyTo(output);
        foreach (var (offset, bytes) in writes)
        {
            if (offset >= KeepLength) continue;
            bytes.AsSpan(0, (int)Math.Min(bytes.Length, KeepLength - offset)).CopyTo(output.AsSpan((int)offset));
        }
        Tail.CopyTo(output, KeepLength);
        return output;
    }

    /// <summary>The writes as sorted, non-overlapping ranges inside the kept bytes, later writes painted over earlier ones.</summary>
    List<(long offset, byte[] bytes)> Normalised()
    {
        var order = writes.Select((w, i) => (w.offset, end: w.offset + w.bytes.Length, i)).Where(w => w.offset < KeepLength)
            .OrderBy(w => w.offset).ThenBy(w => w.i).ToList();
        var result = new List<(long, byte[])>();
        for (int k = 0; k < order.Count;)
        {
            long start = order[k].offset, end = order[k].end;
            int first = k;
            while (++k < order.Count && order[k].offset <= end) end = Math.Max(end, order[k].end);
            end = Math.Min(end, KeepLength);
            var merged = new byte[end - start];
            foreach (var w in order.Skip(first).Take(k - first).OrderBy(w => w.i))
            {
                var bytes = writes[w.i].bytes;
                int length = (int)Math.Min(bytes.Length, end - w.offset);
                bytes.AsSpan(0, length).CopyTo(merged.AsSpan((int)(w.offset - start)));
            }
            result.Add((start, merged));
        }
        return result;
    }

    static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n <= 0) throw new IOException("the file shrank while it was patched");
            done += n;
        }
    }
}
