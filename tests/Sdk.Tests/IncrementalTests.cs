using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>Incremental builds like make/ninja, and Clean removing exactly what the build wrote.</summary>
public sealed class IncrementalTests(ITestOutputHelper log) : SdkTest(log)
{
    [Fact]
    public void No_op_rebuild_starts_no_compiler_and_a_header_edit_recompiles_exactly_its_dependents()
    {
        var p = Sdk.NewProject("incr").Write("app.nativeproj", Sources.Project("Exe"))
            .Write("a.h", "#define A_VALUE 40\n")
            .Write("uses_a.c", "#include \"a.h\"\nlong get_a(void) { return A_VALUE; }\n")
            .Write("other.c", "long get_b(void) { return 2; }\n")
            .Write("main.c", "#include <stdio.h>\nlong get_a(void); long get_b(void);\nint main(void){printf(\"%ld\\n\", get_a()+get_b());return 0;}\n");
        var first = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Equal(4, Native.CompilerInvocations(first.Output)); // three sources and the package's thunks
        Assert.Equal(1, Native.LinkInvocations(first.Output));
        Assert.Equal("42", p.RunProgram("bin/Debug/app").Output.Trim());

        var noop = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Equal(0, Native.CompilerInvocations(noop.Output));
        Assert.Equal(0, Native.LinkInvocations(noop.Output));
        Assert.Contains("0 of 3 source(s) to compile", noop.Output);
        Assert.Contains("is up to date", noop.Output);
        Assert.Contains("Skipping target \"RetpolinePatchAndVerify\"", noop.Output);

        Thread.Sleep(1100); // coarse file systems: make the edit strictly newer than the objects
        p.Write("a.h", "#define A_VALUE 41\n");
        var edit = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("1 of 3 source(s) to compile", edit.Output);
        Assert.Equal(1, Native.CompilerInvocations(edit.Output));
        Assert.Matches(@"(?m)^\s*gcc .* -c \S*/uses_a\.c ", edit.Output);
        Assert.Equal(1, Native.LinkInvocations(edit.Output));
        Assert.Equal("43", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void A_changed_command_line_recompiles_and_a_changed_vendor_only_repatches()
    {
        var p = Sdk.NewProject("cmdline").Write("main.c", "#include <stdio.h>\nint main(void){printf(\"%d\\n\", VALUE);return 0;}\n")
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><DefineConstants>VALUE=1</DefineConstants></PropertyGroup>"));
        MustBuild(p, "app.nativeproj");
        Assert.Equal("1", p.RunProgram("bin/Debug/app").Output.Trim());

        p.Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><DefineConstants>VALUE=2</DefineConstants></PropertyGroup>"));
        var r = MustBuild(p, "app.nativeproj", "-v:n");
        // DefineConstants reach every source of the project; the package's thunk object does not depend on them.
        Assert.Contains("1 of 1 source(s) to compile", r.Output);
        Assert.Contains("0 of 1 source(s) to compile", r.Output);
        Assert.Equal("2", p.RunProgram("bin/Debug/app").Output.Trim());

        Thread.Sleep(1100); // coarse file systems: make the edit strictly newer than the object
        p.Write("main.c", "#include <stdio.h>\nint main(void){printf(\"%d\\n\", VALUE + 1);return 0;}\n");
        var one = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("1 of 1 source(s) to compile", one.Output);
        Assert.Equal("3", p.RunProgram("bin/Debug/app").Output.Trim());

        p.Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><DefineConstants>VALUE=2</DefineConstants><RetpolineVendor>None</RetpolineVendor></PropertyGroup>"));
        var v = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Equal(0, Native.CompilerInvocations(v.Output));
        Assert.Contains("patched", v.Output);
        Assert.Equal(Sources.NoneRax, Native.ThunkHex(p.PathOf("bin/Debug/app")));
    }

    /// <summary>A patch warning (RPL0014 for Amd) is shown by every build, as a verify warning is: a no-op build that
    /// stayed quiet about it would make the warning vanish after one build.</summary>
    [Fact]
    public void A_patch_warning_is_shown_again_by_the_next_build()
    {
        var p = Sdk.NewProject("amd-again").Write("dispatch.c", Sources.DispatchC)
            .Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><RetpolineVendor>Amd</RetpolineVendor></PropertyGroup>"));
        var first = MustBuild(p, "app.nativeproj");
        Assert.Contains("bin/Debug/app : warning RPL0014", first.Output);
        var again = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Equal(0, Native.CompilerInvocations(again.Output));
        Assert.Contains("bin/Debug/app : warning RPL0014", again.Output);
        Assert.False(File.Exists(p.PathOf("obj/Debug/retpoline/app.verified")), "a build that warned left a stamp");
    }

    /// <summary>Headers found through a relative -I in CFlags are written relative to the compiler's folder in the .d file.</summary>
    [Fact]
    public void Headers_found_through_relative_include_flags_are_tracked_too()
    {
        var p = Sdk.NewProject("relinc").Write("app.nativeproj", Sources.Project("Exe", "<PropertyGroup><CFlags>-Iinclude</CFlags></PropertyGroup>"))
            .Write("include/config.h", "#define ANSWER 41\n")
            .Write("src/main.c", "#include <stdio.h>\n#include \"config.h\"\nint main(void) { printf(\"%d\\n\", ANSWER); return 0; }\n");
        MustBuild(p, "app.nativeproj");
        Assert.Contains("include/config.h", File.ReadAllText(p.PathOf("obj/Debug/src/main.c.d")));
        var noop = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("0 of 1 source(s) to compile", noop.Output);
        Thread.Sleep(1100);
        p.Write("include/config.h", "#define ANSWER 42\n");
        var edit = MustBuild(p, "app.nativeproj", "-v:n");
        Assert.Contains("1 of 1 source(s) to compile", edit.Output);
        Assert.Equal("42", p.RunProgram("bin/Debug/app").Output.Trim());
    }

    [Fact]
    public void Clean_removes_what_the_build_wrote()
    {
        var p = Sdk.NewProject("clean").Write("app.nativeproj", Sources.Project("Exe")).Write("dispatch.c", Sources.DispatchC);
        MustBuild(p, "app.nativeproj");
        Assert.True(File.Exists(p.PathOf("bin/Debug/app")));
        var r = p.Dotnet("clean", "app.nativeproj", "-nologo");
        Assert.Equal(0, r.ExitCode);
        Assert.False(File.Exists(p.PathOf("bin/Debug/app")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/dispatch.c.o")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/dispatch.c.d")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/compile_commands.json")));
        Assert.False(File.Exists(p.PathOf("obj/Debug/retpoline/app.verified")));
        // What is left under obj/ is restore's (project.assets.json and friends), never a build output.
        Assert.Empty(Directory.EnumerateFiles(p.PathOf("obj/Debug"), "*.o", SearchOption.AllDirectories));
    }
}
