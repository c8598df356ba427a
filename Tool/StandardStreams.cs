namespace Retpoline.Tool;

/// <summary>
/// stdout or stderr as the tool writes them. A write that fails (`> /dev/full`: no space left; a closed pipe) is
/// caught here once: the first failure is remembered and every later write is dropped, so the tool ends with one
/// coded line instead of an exception from the last flush.
/// </summary>
sealed class StandardStream(Stream inner, string name) : Stream
{
    const int EPIPE = 32;

    /// <summary>The first failure, if any: `standard output: No space left on device`.</summary>
    public string? Failure { get; private set; }
    /// <summary>The reader went away (`retpoline verify lib.so | head`): not worth an error line.</summary>
    public bool ReaderGone { get; private set; }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Failure is not null) return;
        try { inner.Write(buffer); }
        catch (IOException e) { Fail(e); }
    }

    public override void Flush()
    {
        if (Failure is not null) return;
        try { inner.Flush(); }
        catch (IOException e) { Fail(e); }
    }

    void Fail(IOException e)
    {
        ReaderGone = e.HResult == EPIPE || e.Message.Contains("Broken pipe", StringComparison.Ordinal);
        Failure = $"{name}: {e.Message}";
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>stderr through <see cref="Console.Error"/>: a failed write is dropped (there is nowhere left to say so).</summary>
sealed class GuardedWriter(TextWriter inner) : TextWriter
{
    public override System.Text.Encoding Encoding => inner.Encoding;
    public override void Write(char value) => Guard(() => inner.Write(value));
    public override void Write(string? value) => Guard(() => inner.Write(value));
    public override void WriteLine(string? value) => Guard(() => inner.WriteLine(value));
    public override void Flush() => Guard(inner.Flush);

    static void Guard(Action write)
    {
        try { write(); }
        catch (IOException) { }
    }
}
