using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// A FIFO where the output scan looks: opening it would block until a writer came, and a build would hang forever.
/// The scan decides from stat(2) alone, so the build finishes; a FIFO named as a RetpolineBinary says what it is.
/// </summary>
public sealed class NonRegularOutputTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void A_FIFO_in_the_output_folder_does_not_hang_the_build()
    {
        var p = Sdk.NewProject("fifo-output").Write("lib.csproj", Sources.CSharpProject("""
            <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                <None Include="data/libplugin.so" CopyToOutputDirectory="PreserveNewest" />
                <RetpolineBinary Include="bin/Debug/net10.0/named.fifo" />
            """));
        Prebuilt.SharedLibrary(p, "data/libplugin.so", "plugin_apply", mitigated: true);
        // The copy is up to date when the destination is newer, so MSBuild leaves the FIFO there and the output scan
        // meets it under the name the item says: the case a scan that opened files would hang on.
        string output = p.PathOf("bin/Debug/net10.0");
        Directory.CreateDirectory(Path.Combine(output, "data"));
        foreach (var fifo in new[] { Path.Combine(output, "data", "libplugin.so"), Path.Combine(output, "named.fifo") })
        {
            var made = Tests.Dotnet.Exec("mkfifo", p.Directory, [fifo]);
            Assert.True(made.ExitCode == 0, made.Output);
        }
        File.SetLastWriteTimeUtc(p.PathOf("data/libplugin.so"), DateTime.UtcNow.AddHours(-1));

        var r = Must(p.Build("lib.csproj", "-v:n"), "dotnet build with FIFOs in the output folder"); // a hang fails at the runner's timeout
        Assert.Matches(@"(?m)^\s*bin/Debug/net10\.0/named\.fifo ?: warning RPL0213: RetpolineBinary 'bin/Debug/net10\.0/named\.fifo' was not verified: it is a FIFO \(named pipe\), and retpolines are verified in x86-64 ELF files only", r.Output);
        // Both FIFOs reached the scan (the copied item's too) and were skipped by type, unopened.
        Assert.Contains("Retpoline: output policy: 0 ELF file(s) pass (0 verified now, 0 unchanged since verified), 0 exempt, 2 other file(s) skipped", r.Output);
        Assert.True(File.Exists(Path.Combine(output, "lib.dll")));
    }
}
