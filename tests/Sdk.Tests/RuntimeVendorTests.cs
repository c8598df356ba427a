using Retpoline.Patching;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// RetpolineVendor=Runtime through `dotnet build`: the start-up routine is compiled with its own flags and linked
/// beside the thunks, the file keeps Generic thunks on disk, and the program patches itself when it starts — to what
/// `patch --vendor Host` picks on this machine for the same minimum.
/// </summary>
public sealed class RuntimeVendorTests(ITestOutputHelper log) : SdkTest(log)
{
    /// <summary>Prints the bytes its rax thunk holds in memory, then runs an indirect call through it.</summary>
    const string SelfC = """
        #include <stdio.h>
        extern const unsigned char __x86_indirect_thunk_rax[] __attribute__((visibility("hidden")));
        typedef long (*op)(long, long);
        static long add(long a, long b) { return a + b; }
        static long mul(long a, long b) { return a * b; }
        op table[] = { add, mul };
        int main(void)
        {
            for (int i = 0; i < 17; i++) printf("%02x", __x86_indirect_thunk_rax[i]);
            printf(" total=%ld\n", table[0](2, 3) + table[1](4, 5));
            return 0;
        }
        """;

    static string Expected(Vendor v) => v switch { Vendor.None => Sources.NoneRax, Vendor.Amd => Sources.AmdRax, _ => Sources.GenericRax };

    [Theory]
    [InlineData("None")]
    [InlineData("Generic")]
    public void A_Runtime_executable_keeps_Generic_on_disk_and_patches_itself_at_start(string minimum)
    {
        var p = Sdk.NewProject("runtime-" + minimum).Write("app.nativeproj", Sources.Project("Exe",
                $"<PropertyGroup><RetpolineVendor>Runtime</RetpolineVendor><RetpolineRuntimeMinimum>{minimum}</RetpolineRuntimeMinimum><CFlags>-DPROJECT_FLAG_MARK</CFlags></PropertyGroup>"))
            .Write("self.c", SelfC);
        var r = MustBuild(p, "app.nativeproj", "-c", "Release", "-v:n");
        string exe = p.PathOf("bin/Release/app");
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(exe));
        Assert.True(Native.HasSymbol(exe, "retpoline_runtime_record"), "the routine's record is linked");
        Assert.Contains("Runtime: patched in memory at load", r.Output);

        // The routine's own compile: its flags and minimum, never the project's CFlags, never a fixture root.
        string routine = r.Output.Split('\n').Single(l => l.Contains("retpoline_runtime.c") && l.Contains(" -c "));
        var want = Enum.Parse<Vendor>(minimum);
        Assert.Contains($"-DRETPOLINE_RUNTIME_MINIMUM={(int)want}", routine);
        Assert.Contains("-ffreestanding", routine);
        Assert.DoesNotContain("PROJECT_FLAG_MARK", routine);
        Assert.DoesNotContain("FIXTURE_ROOT", routine);
        Assert.DoesNotContain("-DRETPOLINE_RUNTIME_SHARED", routine);

        var run = p.RunProgram("bin/Release/app").Output.Trim();
        Assert.Equal($"{Expected(HostVendor.Detect("/", want).Vendor)} total=25", run);

        // A no-op build compiles nothing, the routine included.
        var noop = MustBuild(p, "app.nativeproj", "-c", "Release", "-v:n");
        Assert.Equal(0, Native.CompilerInvocations(noop.Output));
    }

    /// <summary>A C# program, threads running, loads a Runtime library through P/Invoke; the library patches itself.</summary>
    [Fact]
    public void A_CSharp_host_loads_a_Runtime_library_through_PInvoke()
    {
        var p = Sdk.NewProject("runtime-pinvoke")
            .Write("native/selfx.nativeproj", Sources.Project("Library",
                "<PropertyGroup><RetpolineVendor>Runtime</RetpolineVendor><RetpolineRuntimeMinimum>None</RetpolineRuntimeMinimum></PropertyGroup>"))
            .Write("native/selfx.c", """
                extern const unsigned char __x86_indirect_thunk_rax[] __attribute__((visibility("hidden")));
                typedef long (*op)(long, long);
                static long add(long a, long b) { return a + b; }
                static long mul(long a, long b) { return a * b; }
                static op table[] = { add, mul };
                long selfx_apply(int i, long a, long b) { return table[i & 1](a, b); }
                int selfx_rax(unsigned char *out) { for (int i = 0; i < 17; i++) out[i] = __x86_indirect_thunk_rax[i]; return 17; }
                """)
            .Write("app/app.csproj", Sources.CSharpProject("<ProjectReference Include=\"../native/selfx.nativeproj\" />", "Exe"))
            .Write("app/Program.cs", """
                using System.Runtime.InteropServices;
                static class Program
                {
                    [DllImport("selfx")] static extern long selfx_apply(int op, long a, long b);
                    [DllImport("selfx")] static extern int selfx_rax(byte[] bytes);
                    static void Main()
                    {
                        var busy = new System.Threading.Thread[2];
                        for (int i = 0; i < busy.Length; i++) { busy[i] = new System.Threading.Thread(() => { long s = 0; for (int k = 0; k < 1_000_000; k++) s += k; }); busy[i].Start(); }
                        var rax = new byte[17];
                        selfx_rax(rax);
                        System.Console.WriteLine($"{System.Convert.ToHexString(rax).ToLowerInvariant()} selfx={selfx_apply(1, 6, 7)}");
                        foreach (var t in busy) t.Join();
                    }
                }
                """);
        Must(p.Build("app/app.csproj"), "dotnet build");
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(p.PathOf("native/bin/Debug/libselfx.so")));
        Assert.Equal($"{Expected(HostVendor.Detect("/", Vendor.None).Vendor)} selfx=42", p.RunProgram("app/bin/Debug/net10.0/app").Output.Trim());
    }

    [Fact]
    public void An_unknown_minimum_is_RPL0208()
    {
        var p = Sdk.NewProject("runtime-bad").Write("app.nativeproj", Sources.Project("Exe",
                "<PropertyGroup><RetpolineVendor>Runtime</RetpolineVendor><RetpolineRuntimeMinimum>Weak</RetpolineRuntimeMinimum></PropertyGroup>"))
            .Write("self.c", SelfC);
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0208: RetpolineRuntimeMinimum must be Generic, Amd or None, not 'Weak'", r.Output);
    }

    /// <summary>Runtime asked for, but the link lost the routine (here a target of the project's own removes it): RPL0214.</summary>
    [Fact]
    public void A_Runtime_output_without_the_routine_is_RPL0214()
    {
        var p = Sdk.NewProject("runtime-missing").Write("app.nativeproj", Sources.Project("Exe", """
                <PropertyGroup><RetpolineVendor>Runtime</RetpolineVendor></PropertyGroup>
                <Target Name="DropTheRoutine" AfterTargets="RetpolineCompileRuntimeRoutine">
                  <ItemGroup><RetpolineRuntimeObject Remove="@(RetpolineRuntimeObject)" /></ItemGroup>
                </Target>
                """))
            .Write("self.c", SelfC);
        var r = MustFail(p, "app.nativeproj");
        Assert.Contains("error RPL0214: RetpolineVendor=Runtime, but bin/Debug/app does not link the run-time routine", r.Output);
    }
}
