using System.Text.RegularExpressions;
using Retpoline.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>`dotnet build` of an existing Makefile project: make with the mitigation inside CC, then patch and verify.</summary>
public sealed class MakeBuildTests(ITestOutputHelper log) : SdkTest(log)
{
    /// <summary>Assigns CC and CFLAGS itself, as most hand-written Makefiles do; an executable, a shared and a static library.</summary>
    const string Makefile = """
        CC = gcc
        CFLAGS = -O2 -Wall
        all: app libdisp.so libutil.a
        app: main.o disp.o
        	$(CC) $(CFLAGS) -o $@ $^
        libdisp.so: disp.c
        	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<
        libutil.a: disp.o
        	ar rcs $@ $^
        """;

    const string DispC = """
        typedef long (*op)(long);
        static long inc(long x) { return x + 1; }
        static long dbl(long x) { return 2 * x; }
        op disp_ops[] = { inc, dbl };
        long disp(int i, long x) { long r = disp_ops[i & 1](x); return r + 1; }
        """;

    const string MainC = """
        #include <stdio.h>
        long disp(int i, long x);
        int main(void) { printf("disp=%ld\n", disp(1, 20) + disp(0, 1)); return 0; }
        """;

    static string Project(string outputs) => $"""
        <Project Sdk="Retpoline.Sdk">
          <PropertyGroup>
            <MakeDirectory>src</MakeDirectory>
          </PropertyGroup>
          <ItemGroup>
            {outputs}
          </ItemGroup>
        </Project>
        """;

    [Fact]
    public void Makefile_that_assigns_CFLAGS_is_still_mitigated_and_every_output_verified()
    {
        Preconditions.Require("make");
        var p = Sdk.NewProject("make").Write("src/Makefile", Makefile.Replace("        ", "\t")).Write("src/disp.c", DispC).Write("src/main.c", MainC)
            .Write("mk.nativeproj", Project("""<NativeOutput Include="src/app;src/libdisp.so;src/libutil.a" />"""));
        var r = MustBuild(p, "mk.nativeproj", "-v:n");
        string exe = p.PathOf("src/app"), so = p.PathOf("src/libdisp.so");
        // Every compile and link: the SDK's CC (flags, thunk object, -z now/relro), then the Makefile's own CFLAGS.
        Assert.Equal(4, Regex.Matches(r.Output, @"(?m)^\s*gcc -mindirect-branch=thunk-extern -mindirect-branch-register -fno-plt -Wl,\S+/retpoline_thunks\.S\.o -Wl,-z,now -Wl,-z,relro -O2 -Wall ").Count);
        Assert.Equal($"{exe}: PASS: 6 indirect branches (6 ToolchainStartup); 31 thunks (30 Generic, 1 Return); 0 error(s), 0 warning(s)", CMakeBuildTests.VerifyLine(r.Output, exe));
        Assert.Equal($"{so}: PASS: 5 indirect branches (5 ToolchainStartup); 31 thunks (30 Generic, 1 Return); 0 error(s), 0 warning(s)", CMakeBuildTests.VerifyLine(r.Output, so));
        string member = p.PathOf("obj/Debug/retpoline/members/libutil.a/disp.o");
        Assert.Equal($"{member}: PASS: 0 indirect branches (none outside thunks); 0 thunks (none); 0 error(s), 0 warning(s)", CMakeBuildTests.VerifyLine(r.Output, member));
        Assert.Matches(@"call\s+[0-9a-f]+ <__x86_indirect_thunk_\w+>", CMakeBuildTests.FunctionBody(Native.Disassemble(exe), "disp"));
        Assert.Equal(Sources.GenericRax, Native.ThunkHex(so));
        Assert.Equal("disp=44", p.RunProgram("src/app").Output.Trim());

        // make decides what is stale: nothing; verify is not run again.
        var again = MustBuild(p, "mk.nativeproj", "-v:n");
        Assert.Contains("make: Nothing to be done for 'all'.", again.Output);
        Assert.Contains("Skipping target \"RetpolinePatchAndVerify\" because all output files are up-to-date", again.Output);

        // Another vendor: make has nothing to do, the post-link step re-patches the same files.
        var none = MustBuild(p, "mk.nativeproj", "-v:n", "-p:RetpolineVendor=None");
        Assert.Contains("make: Nothing to be done for 'all'.", none.Output);
        Assert.Equal(Sources.NoneRax, Native.ThunkHex(so));
        Assert.Equal(Sources.NoneRax, Native.ThunkHex(exe));
        Assert.Equal("disp=44", p.RunProgram("src/app").Output.Trim());
    }

    [Fact]
    public void A_missing_NativeOutput_is_RPL0236_and_an_unmitigated_object_linked_in_is_RPL0001()
    {
        Preconditions.Require("make");
        // A prebuilt object compiled without the flags (a vendor's blob) smuggled into the link by the Makefile.
        const string smuggling = """
            app: main.o disp.o vendor.o
            	$(CC) -o $@ $^
            vendor.o: vendor.c
            	gcc -O2 -c -o $@ $<
            """;
        var p = Sdk.NewProject("make-bad").Write("src/Makefile", smuggling.Replace("            ", "")).Write("src/disp.c", DispC).Write("src/main.c", MainC)
            .Write("src/vendor.c", "long vendor(long (*f)(void)) { return f() * 2; }\n")
            .Write("mk.nativeproj", Project("""<NativeOutput Include="src/app;src/libmissing.so" />"""));
        var r = MustFail(p, "mk.nativeproj");
        Assert.Contains($"error RPL0236: NativeOutput '{p.PathOf("src/libmissing.so")}' does not exist after make: the Makefile did not produce it", r.Output);

        p.Write("mk.nativeproj", Project("""<NativeOutput Include="src/app" />"""));
        r = MustFail(p, "mk.nativeproj");
        Assert.Matches(@"(?m)^\s*\S+ : error RPL0001: indirect (call|jump) '(call|jmp) r\w+' at 0x[0-9a-f]+ in function 'vendor(\+0x\w+)?' is not routed through a retpoline thunk \(rebuild with the retpoline flags; waive: RetpolineAllow ""vendor""\)", r.Output);
    }
}
