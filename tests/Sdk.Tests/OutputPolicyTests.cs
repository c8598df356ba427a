using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// The output policy of a project that references the package (VerifyOutputTask): what its content-hash cache
/// remembers, and what it says about files named explicitly as RetpolineBinary items.
/// </summary>
public sealed class OutputPolicyTests(ITestOutputHelper log) : SdkTest(log)
{
    static string LibraryProject(string items) => Sources.CSharpProject("""<PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />""" + items);

    static string Finding(string severity, string file) =>
        $@"(?m)^\s*(?:\d+>)?{Regex.Escape(file)} ?: {severity} RPL0001: indirect jump 'jmp qword ptr \[rdx\+rax\*8\]' at 0x[0-9a-f]+ in function 'vendor_apply\+0x[0-9a-f]+' is not routed through a retpoline thunk";

    [Fact]
    public void Warning_policy_findings_are_reported_again_by_a_no_op_build_and_Error_fails_after_it()
    {
        // The same unmitigated library twice in the output: the second copy is judged by content hash.
        var p = Sdk.NewProject("warning-cache").Write("lib.csproj", LibraryProject("""
            <None Include="prebuilt/libvendor.so" CopyToOutputDirectory="PreserveNewest" Link="libvendor.so" />
                <None Include="prebuilt/libvendor.so" CopyToOutputDirectory="PreserveNewest" Link="plugins/libvendor-copy.so" />
            """));
        Prebuilt.SharedLibrary(p, "prebuilt/libvendor.so", "vendor_apply");
        string lib = "bin/Debug/net10.0/libvendor.so", copy = "bin/Debug/net10.0/plugins/libvendor-copy.so";

        var first = Must(p.Build("lib.csproj", "-p:RetpolinePolicy=Warning", "-v:n"), "dotnet build under Warning");
        Assert.Matches(Finding("warning", lib), first.Output);
        Assert.Matches(Finding("warning", copy), first.Output);
        Assert.Contains("Retpoline: output policy: 2 ELF file(s) pass (1 verified now, 1 unchanged since verified)", first.Output);

        // A no-op build verifies nothing, and still warns: a policy's findings do not disappear after one build.
        var noop = Must(p.Build("lib.csproj", "-p:RetpolinePolicy=Warning", "-v:n"), "no-op build under Warning");
        Assert.Contains("Retpoline: output policy: 2 ELF file(s) pass (0 verified now, 2 unchanged since verified)", noop.Output);
        Assert.Matches(Finding("warning", lib), noop.Output);
        Assert.Matches(Finding("warning", copy), noop.Output);
        Assert.Contains($"Retpoline: {lib}: unchanged since verified; its 1 diagnostic(s) reported again", noop.Output);
        Assert.DoesNotContain("libvendor.so: FAIL", noop.Output);

        // What was remembered under Warning must not pass under Error.
        var error = p.Build("lib.csproj", "-p:RetpolinePolicy=Error");
        Log.WriteLine(error.Output);
        Assert.NotEqual(0, error.ExitCode);
        Assert.Matches(Finding("error", lib), error.Output);
        Assert.Matches(Finding("error", copy), error.Output);
    }

    [Fact]
    public void RetpolineBinary_that_is_missing_or_not_x86_64_ELF_is_RPL0213_while_implicit_output_files_are_skipped_silently()
    {
        var p = Sdk.NewProject("named-binaries").Write("lib.csproj", LibraryProject("""
            <RetpolineBinary Include="data/notes.txt" />
                <RetpolineBinary Include="data/libarm.so" />
                <RetpolineBinary Include="data/libmissing.so" />
                <RetpolineBinary Include="data/legacy.bin" />
                <RetpolineBinary Include="data/libgood.so" />
                <RetpolineExclude Include="legacy.bin" Reason="firmware blob for the device, not code we run" />
                <None Include="data/readme.txt" CopyToOutputDirectory="PreserveNewest" />
                <None Include="data/libarm-copy.so" CopyToOutputDirectory="PreserveNewest" />
            """))
            .Write("data/notes.txt", "release notes\n")
            .Write("data/readme.txt", "read me\n")
            .Write("data/legacy.bin", "\u0001\u0002 not ELF either\n");
        Prebuilt.SharedLibrary(p, "data/libgood.so", "good_apply", mitigated: true);
        // An AArch64 ELF file: a real shared library with e_machine set to EM_AARCH64 (183).
        byte[] elf = File.ReadAllBytes(Prebuilt.SharedLibrary(p, "data/libx86.so", "arm_apply"));
        elf[18] = 0xB7; elf[19] = 0;
        File.WriteAllBytes(p.PathOf("data/libarm.so"), elf);
        File.WriteAllBytes(p.PathOf("data/libarm-copy.so"), elf);

        var r = Must(p.Build("lib.csproj", "-v:n"), "dotnet build");
        Assert.Matches(@"(?m)^\s*data/notes\.txt ?: warning RPL0213: RetpolineBinary 'data/notes\.txt' was not verified: it is not an ELF file \(no ELF magic\), and retpolines are verified in x86-64 ELF files only \(remove the item, or exempt the file: RetpolineExclude Include=""notes\.txt"" Reason=""\.\.\.""\)", r.Output);
        Assert.Matches(@"(?m)^\s*data/libarm\.so ?: warning RPL0213: RetpolineBinary 'data/libarm\.so' was not verified: it is an ELF file for AArch64 \(machine 183\), and retpolines", r.Output);
        Assert.Matches(@"(?m)^\s*data/libmissing\.so ?: warning RPL0213: RetpolineBinary 'data/libmissing\.so' was not verified: it does not exist", r.Output);
        var warned = Regex.Matches(r.Output, @"(?m)^\s*(?:\d+>)?(\S+) ?: warning RPL0213")
            .Select(m => m.Groups[1].Value).Distinct().Order().ToList();
        Assert.Equal(["data/libarm.so", "data/libmissing.so", "data/notes.txt"], warned);
        Assert.DoesNotContain("warning RPL", r.Output.Replace("warning RPL0213", ""));
        // The x86-64 one is verified; the excluded one and the implicit files are not mentioned as problems.
        Assert.Contains("Retpoline: output policy: 1 ELF file(s) pass (1 verified now, 0 unchanged since verified), 0 exempt, 5 other file(s) skipped", r.Output);
    }
}
