using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Tests;

/// <summary>
/// DESIGN.md §3's cross-check on large real libraries: the engine's count of indirect calls and jumps equals
/// `objdump -d --no-show-raw-insn FILE | grep -cE '(call|jmp)\s+\*'` (objdump run from here, the lines counted in C#
/// with the same regex).
/// </summary>
public sealed class OracleTests(ITestOutputHelper output)
{
    public static TheoryData<string> Libraries => new() { "libLLVM-14.so.1", "libcoreclr.so", "libc.so.6" };

    static string PathOf(string library) => library switch
    {
        "libLLVM-14.so.1" => Require("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", "libllvm14 (clang-14 depends on it)"),
        // The runtime running these tests: its libcoreclr.so sits beside System.Private.CoreLib.dll.
        "libcoreclr.so" => Require(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "libcoreclr.so"), "the .NET runtime"),
        "libc.so.6" => Require("/lib/x86_64-linux-gnu/libc.so.6", "libc6"),
        _ => throw new ArgumentOutOfRangeException(nameof(library)),
    };

    static string Require(string path, string package)
        => File.Exists(path) ? path : throw new NativeToolchainException($"{path} is missing: install {package}");

    [Theory]
    [MemberData(nameof(Libraries))]
    public void IndirectBranchCount_EqualsObjdump(string library)
    {
        string path = PathOf(library);
        var objdumpTime = Stopwatch.StartNew();
        int expected = 0;
        NativeToolchain.RunLines(NativeToolchain.Objdump, ["-d", "--no-show-raw-insn", path], line =>
        {
            if (FixtureSet.IndirectBranch.IsMatch(line)) expected++;
        }, TimeSpan.FromMinutes(10));
        objdumpTime.Stop();

        var verifyTime = Stopwatch.StartNew();
        var report = Verifier.Verify(path);
        verifyTime.Stop();
        output.WriteLine($"{path}: objdump {expected} in {objdumpTime.Elapsed.TotalSeconds:0.0}s, engine {report.IndirectBranches} in {verifyTime.Elapsed.TotalSeconds:0.0}s");

        Assert.True(expected > 100, $"objdump found only {expected} indirect branches in {path}: is the oracle working?");
        Assert.Equal(expected, report.IndirectBranches);
    }
}
