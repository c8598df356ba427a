using Xunit;

namespace Retpoline.Sdk.Tests;

/// <summary>`dotnet run` on native projects: an Exe is built and run with the arguments after `--`, in its project folder, with its exit code.</summary>
public sealed class RunTests
{
    const string EchoC = """
        #include <stdio.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            char cwd[4096];
            if (!getcwd(cwd, sizeof cwd)) return 99;
            printf("argc=%d\n", argc - 1);
            for (int i = 1; i < argc; i++) printf("arg[%d]=<%s>\n", i, argv[i]);
            printf("cwd=%s\n", cwd);
            return argc > 1 ? 7 : 0;
        }
        """;

    [Fact]
    public void Run_builds_and_runs_an_exe_with_its_arguments_in_the_project_folder_and_its_exit_code()
    {
        var p = SdkPackage.Instance.NewProject("run-exe").Write("app/app.nativeproj", Sources.Project("Exe")).Write("app/main.c", EchoC);
        var r = p.Dotnet("run", "--project", "app/app.nativeproj", "--", "one", "two words", "$HOME;x");
        Assert.True(r.ExitCode == 7, r.Output);
        Assert.Contains($"argc=3\narg[1]=<one>\narg[2]=<two words>\narg[3]=<$HOME;x>\ncwd={p.PathOf("app")}\n", r.Output.Replace("\r", ""));
        Assert.True(File.Exists(p.PathOf("app/bin/Debug/app")));

        var quiet = p.Dotnet("run", "--project", "app/app.nativeproj", "--no-build");
        Assert.True(quiet.ExitCode == 0, quiet.Output);
        Assert.Contains($"argc=0\ncwd={p.PathOf("app")}\n", quiet.Output.Replace("\r", ""));
    }

    [Fact]
    public void Run_on_a_library_is_a_coded_error()
    {
        var p = SdkPackage.Instance.NewProject("run-lib").Write("lib/lib.nativeproj", Sources.Project("Library")).Write("lib/lib.c", "int f(void) { return 1; }\n");
        var r = p.Dotnet("run", "--project", "lib/lib.nativeproj");
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("error RPL0250: dotnet run needs a program, and this native project's OutputType is Library: set OutputType to Exe, or run a project that references this one.", r.Output);
    }
}
