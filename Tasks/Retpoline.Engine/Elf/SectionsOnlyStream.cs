namespace Retpoline.Elf;

/// <summary>
/// The file as ELFSharp should see it: identical bytes, except that the ELF header reports no program headers.
/// We need only sections and symbols from ELFSharp; left to itself it also parses every note segment, and a
/// PT_NOTE whose size overstates its contents — a file the loader runs happily — made it throw, failing verify.
/// It would also read parts of a partially loaded buffer that verify never loaded.
/// </summary>
sealed class SectionsOnlyStream(byte[] data) : Stream
{
    const int PhoffAt = 32, PhnumAt = 56;
    long position;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => data.Length;
    public override long Position { get => position; set => position = value; }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (position >= data.Length) return 0;
        int n = (int)Math.Min(buffer.Length, data.Length - position);
        data.AsSpan((int)position, n).CopyTo(buffer);
        // Blank e_phoff (8 bytes) and e_phnum (2 bytes) wherever this read overlaps them. ELFSharp reads a symbol
        // table field by field, six reads a symbol: only reads inside the ELF header can overlap.
        if (position < PhnumAt + 2)
        {
            Blank(buffer, n, PhoffAt, 8);
            Blank(buffer, n, PhnumAt, 2);
        }
        position += n;
        return n;
    }

    void Blank(Span<byte> buffer, int n, int fieldAt, int fieldSize)
    {
        for (int i = 0; i < fieldSize; i++)
        {
            long at = fieldAt + i - position;
            if (at >= 0 && at < n) buffer[(int)at] = 0;
        }
    }

    public override long Seek(long offset, SeekOrigin origin) => position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => position + offset,
        _ => data.Length + offset,
    };

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
