using Retpoline.Elf;
using Xunit;

namespace Retpoline.Tests;

/// <summary>The one ELF sniff the output scan, audit and loader share: what each kind of file is taken for.</summary>
[Collection(NativeFixturesCollection.Name)]
public sealed class ElfSniffTests(FixtureSet fx)
{
    [Fact]
    public async Task A_fifo_is_named_without_being_opened_so_nothing_blocks()
    {
        string dir = fx.NewDirectory("sniff-fifo");
        string fifo = Path.Combine(dir, "in.fifo");
        NativeToolchain.Run("mkfifo", fifo).EnsureSuccess();
        // Opening a FIFO without a writer blocks forever; the sniff must answer from stat alone.
        var reading = Task.Run(() => ElfSniff.Read(fifo));
        var first = await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.True(first == reading, "ElfSniff.Read blocked on a FIFO");
        var sniff = await reading;
        Assert.Equal(SniffKind.NotRegular, sniff.Kind);
        Assert.Equal("a FIFO (named pipe)", sniff.Describe());
    }

    [Theory]
    [InlineData("/dev/zero", SniffKind.NotRegular, "a character device")]
    [InlineData("/proc/self/status", SniffKind.Empty, "an empty file")]
    [InlineData("/nonexistent/file", SniffKind.Missing, "missing")]
    [InlineData("/", SniffKind.NotRegular, "a directory")]
    public void Special_files_are_told_apart(string path, SniffKind kind, string described)
    {
        var sniff = ElfSniff.Read(path);
        Assert.Equal(kind, sniff.Kind);
        Assert.Equal(described, sniff.Describe());
    }

    [Fact]
    public void A_linked_program_is_x86_64_and_a_patched_machine_field_is_named()
    {
        string exe = fx.Get(FixtureSet.GccExe);
        Assert.Equal(SniffKind.X86_64, ElfSniff.Read(exe).Kind);
        var bytes = File.ReadAllBytes(exe);
        bytes[18] = 183; bytes[19] = 0; // EM_AARCH64
        string other = Path.Combine(fx.NewDirectory("sniff"), "aarch64");
        File.WriteAllBytes(other, bytes);
        var sniff = ElfSniff.Read(other);
        Assert.Equal(SniffKind.OtherMachine, sniff.Kind);
        Assert.Equal("an ELF file for AArch64 (machine 183)", sniff.Describe());
    }
}
