using Retpoline.Patching;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// The in-memory ELF image the build's warm-up verifies and patches (Tasks/Retpoline.Engine/Warmup.cs) must be a
/// real ELF that binutils reads the same way, and must take the paths a real verify takes: thunk recognition, the
/// sweep, PLT classification with callers, the patch planner.
/// </summary>
public sealed class WarmupTests : IDisposable
{
    readonly TempDirectory dir = new("rpl-warmup-");
    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sample_image_is_an_ELF_objdump_reads_with_the_same_indirect_branches()
    {
        string file = dir["sample.so"];
        File.WriteAllBytes(file, Warmup.SampleImage());

        var r = Verifier.Verify(file);
        var objdump = FixtureSet.ObjdumpIndirect(file);
        Assert.Equal(objdump.Count, r.IndirectBranches);
        // 32 x (call rax, jmp [rip]) in dispatch, the PLT entry and the lazy header.
        Assert.Equal(66, objdump.Count);
        Assert.Equal(64, r.Findings.Count(f => f.Class == FindingClass.UserCode && (f.Function == "dispatch" || f.Function.StartsWith("dispatch+0x", StringComparison.Ordinal))));
        var plt = r.Findings.Where(f => f.Class == FindingClass.Plt).OrderBy(f => f.Address).ToList();
        Assert.Equal([".plt+0x6", ".plt+0x10"], plt.Select(f => f.Function));
        Assert.Equal("called from dispatch", plt[1].Detail);

        var thunk = Assert.Single(r.Thunks, t => t.Name == "__x86_indirect_thunk_rax");
        Assert.Equal((ThunkForm.Generic, 32, false), (thunk.Form, thunk.DirectReferences, thunk.Exported));
        Assert.Contains(r.Thunks, t => t.Name == "__x86_return_thunk" && t.Form == ThunkForm.Return);
    }

    [Fact]
    public void Sample_image_patches_to_every_vendor_and_back()
    {
        string file = dir["sample.so"];
        var original = Warmup.SampleImage();
        File.WriteAllBytes(file, original);

        Assert.Empty(Patcher.Patch(file, Vendor.Generic).Changes);
        var amd = Assert.Single(Patcher.Patch(file, Vendor.Amd).Changes);
        Assert.Equal("__x86_indirect_thunk_rax", amd.Name);
        Assert.Equal([0x0f, 0xae, 0xe8, 0xff, 0xe0], File.ReadAllBytes(file).AsSpan((int)amd.FileOffset, 5).ToArray()); // lfence; jmp *%rax
        Patcher.Patch(file, Vendor.Generic);
        Assert.Equal(original, File.ReadAllBytes(file));
    }

    [Fact]
    public void Warm_up_runs_every_round_without_an_exception()
    {
        Warmup.Start();
        Warmup.Start(); // once per process
        Warmup.Wait();
        Assert.Null(Warmup.Failure);
        Assert.Equal(2, Warmup.RoundsDone);
    }
}
