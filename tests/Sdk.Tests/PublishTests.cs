using System.Text.RegularExpressions;
using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>`dotnet publish -r linux-x64 -o DIR` of native projects: the program and the shared libraries it links, verified as they land.</summary>
public sealed class PublishTests
{
    static string Must(ProcessOutcome r, string what) { Assert.True(r.ExitCode == 0, $"{what} failed:\n{r.Output}"); return r.Output; }

    [Fact]
    public void Publish_puts_the_exe_and_the_libraries_of_referenced_native_projects_in_the_folder_verified_and_runnable()
    {
        var p = SdkPackage.Instance.NewProject("publish-exe")
            .Write("mathx/mathx.nativeproj", Sources.Project("Library", "<PropertyGroup><PublicIncludeDirectories>include</PublicIncludeDirectories></PropertyGroup>"))
            .Write("mathx/include/mathx.h", "long mathx_answer(void);\n")
            .Write("mathx/mathx.c", "#include \"mathx.h\"\nlong mathx_answer(void) { return 42; }\n")
            .Write("app/app.nativeproj", Sources.Project("Exe", "<ItemGroup><ProjectReference Include=\"../mathx/mathx.nativeproj\" /></ItemGroup>"))
            .Write("app/main.c", "#include <stdio.h>\n#include \"mathx.h\"\nint main(void) { printf(\"answer=%ld\\n\", mathx_answer()); return 0; }\n");
        string output = Must(p.Dotnet("publish", "app/app.nativeproj", "-r", "linux-x64", "-o", "out", "-v:n", "-nologo"), "dotnet publish");
        Assert.Equal(["app", "libmathx.so"], Directory.GetFiles(p.PathOf("out")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        // The publish-time policy ran over both files where they landed.
        Assert.Matches(@"RetpolineVerifyPublishOutput:\s*\n(.*\n)*?\s*Retpoline: output policy: 2 ELF file\(s\) pass", output.Replace("\r", ""));
        // From the publish folder alone: the program finds its library through its $ORIGIN run path.
        var run = Dotnet.Exec(p.PathOf("out/app"), Path.GetTempPath(), []);
        Assert.Equal((0, "answer=42"), (run.ExitCode, run.Output.Trim()));

        // The library alone, without a RID (it used to fail copying an obj/…/mathx.dll that a native project never has).
        Must(p.Dotnet("publish", "mathx/mathx.nativeproj", "-o", "out-lib", "-nologo"), "dotnet publish of the library");
        Assert.Equal(["libmathx.so"], Directory.GetFiles(p.PathOf("out-lib")).Select(Path.GetFileName));
    }

    [Fact]
    public void A_third_party_library_that_only_publish_copies_is_verified_at_publish()
    {
        var p = SdkPackage.Instance.NewProject("publish-vendor");
        Prebuilt.SharedLibrary(p, "app/vendor/libvendor.so", "vendor_dispatch");
        p.Write("app/app.nativeproj", Sources.Project("Exe", "<ItemGroup><Content Include=\"vendor/libvendor.so\" CopyToPublishDirectory=\"PreserveNewest\" /></ItemGroup>"))
            .Write("app/main.c", "int main(void) { return 0; }\n");
        Must(p.Build("app/app.nativeproj"), "dotnet build");
        var r = p.Dotnet("publish", "app/app.nativeproj", "-r", "linux-x64", "-o", "out", "-nologo");
        Assert.True(r.ExitCode == 1, r.Output);
        // Reported where publish put it (Content keeps its folder), relative to the project folder like every verify finding.
        Assert.Matches(@"(?m)^\.\./out/vendor/libvendor\.so : error RPL0001: indirect jump 'jmp qword ptr \[rdx\+rax\*8\]' at 0x[0-9a-f]+ in function 'vendor_dispatch\+0x[0-9a-f]+' is not routed through a retpoline thunk", r.Output);
    }
}
