using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// What native/ shares with the engine is generated from the engine (<see cref="NativeTables"/>): the checked-in
/// files must equal what the generator writes now. `RETPOLINE_REGENERATE=1` rewrites them instead of failing.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
public sealed class NativeTablesTests(FixtureSet fx)
{
    static bool Regenerate => Environment.GetEnvironmentVariable("RETPOLINE_REGENERATE") == "1";
    static string PathOf(string file) => Path.Combine(NativeToolchain.RepoRoot, file);

    [Fact]
    public void Runtime_tables_header_is_generated_from_the_engine()
    {
        string path = PathOf(NativeTables.TablesFile), expected = NativeTables.TablesHeader();
        if (Regenerate) File.WriteAllText(path, expected);
        Assert.True(File.Exists(path), $"{NativeTables.TablesFile} is missing; run with RETPOLINE_REGENERATE=1");
        Assert.Equal(expected, File.ReadAllText(path));
    }

    [Fact]
    public void Thunks_source_defines_its_thunks_from_the_engines_register_list()
    {
        string path = PathOf(NativeTables.ThunksFile);
        var lines = File.ReadAllLines(path).ToList();
        int at = lines.FindIndex(l => l.StartsWith(".irp reg,", StringComparison.Ordinal));
        Assert.True(at >= 0, "native/retpoline_thunks.S has no '.irp reg,' line");
        Assert.Equal(1, lines.Count(l => l.StartsWith(".irp reg,", StringComparison.Ordinal)));
        if (Regenerate && lines[at] != NativeTables.ThunksIrpLine())
        {
            lines[at] = NativeTables.ThunksIrpLine();
            File.WriteAllText(path, string.Join('\n', lines) + "\n");
        }
        Assert.Equal(NativeTables.ThunksIrpLine(), File.ReadAllLines(path)[at]);
    }

    /// <summary>The Generic rows of the tables are the bodies the assembler makes of native/retpoline_thunks.S.</summary>
    [Fact]
    public void Every_thunk_as_assembled_is_the_generated_generic_form()
    {
        var elf = ElfBits.Read(fx.Get(FixtureSet.ThunksObject));
        var thunks = NativeTables.Thunks().ToList();
        Assert.Equal(30, thunks.Count);
        foreach (var (name, reg, notrack) in thunks)
        {
            Assert.Equal((ulong)NativeTables.BodyLength, elf.SymbolNamed(name).Size);
            Assert.Equal(X86.ThunkBody.Encode(Vendor.Generic, reg, NativeTables.BodyLength, notrack), elf.BytesAt(name, NativeTables.BodyLength));
        }
    }
}
