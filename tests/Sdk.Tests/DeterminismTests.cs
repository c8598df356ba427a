using System.Security.Cryptography;
using System.Text;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Sdk.Tests;

/// <summary>
/// Issue 4: a parallel `dotnet build -m` of a 10-project solution (seven native projects: static and shared libraries
/// in C, C++ and assembly, executables; three C# projects that reference them, held to the policy by
/// Directory.Build.props) is correct, and deterministic: built again from scratch, every output file is the same bytes.
/// </summary>
public sealed class DeterminismTests(ITestOutputHelper log) : SdkTest(log)
{
    static string Ref(params string[] projects) => string.Concat(projects.Select(p => $"<ProjectReference Include=\"{p}\" />"));

    static readonly string[] Projects =
    [
        "native/core/core.nativeproj", "native/mathx/mathx.nativeproj", "native/shapes/shapes.nativeproj", "native/util/util.nativeproj",
        "native/calc/calc.nativeproj", "native/tally/tally.nativeproj", "native/area/area.nativeproj",
        "managed/app/app.csproj", "managed/lib1/lib1.csproj", "managed/lib2/lib2.csproj",
    ];

    TestProject TenProjects()
    {
        var p = Sdk.NewProject("ten-projects")
            .Write("Directory.Build.props", """
                <Project>
                  <ItemGroup Condition="'$(MSBuildProjectExtension)' != '.nativeproj'">
                    <PackageReference Include="Retpoline.Sdk" Version="$(RetpolineSdkVersion)" PrivateAssets="all" />
                  </ItemGroup>
                </Project>
                """)
            // A static library (a jump table) linked into an executable; a shared C library with a function-pointer
            // table; a shared C++ library with virtual calls; a shared library in assembly and C; an executable over
            // a shared library (found through RUNPATH $ORIGIN), a C executable over the C++ library.
            .Write("native/core/core.nativeproj", Sources.Project("StaticLibrary", "<PropertyGroup><PublicIncludeDirectories>.</PublicIncludeDirectories></PropertyGroup>"))
            .Write("native/core/core.h", "long core_step(int op, long x);\n")
            .Write("native/core/core.c", """
                #include "core.h"
                long core_step(int op, long x)
                {
                    switch (op) { case 0: return x + 1; case 1: return x * 3; case 2: return x - 7; case 3: return x * x;
                                  case 4: return x ^ 5; case 5: return x / 2; case 6: return -x; default: return x; }
                }
                """)
            .Write("native/mathx/mathx.nativeproj", Sources.Project("Library", "<PropertyGroup><PublicIncludeDirectories>.</PublicIncludeDirectories></PropertyGroup>"))
            .Write("native/mathx/mathx.h", "long mathx_apply(int op, long a, long b);\n")
            .Write("native/mathx/mathx.c", """
                #include "mathx.h"
                typedef long (*f)(long, long);
                static long add(long a, long b) { return a + b; }
                static long mul(long a, long b) { return a * b; }
                static f ops[] = { add, mul };
                long mathx_apply(int op, long a, long b) { return ops[op & 1](a, b); }
                """)
            .Write("native/shapes/shapes.nativeproj", Sources.Project("Library"))
            .Write("native/shapes/shapes.cpp", """
                struct Shape { virtual ~Shape() {} virtual long area() const = 0; };
                struct Sq : Shape { long s; explicit Sq(long s) : s(s) {} long area() const override { return s * s; } };
                struct Re : Shape { long w, h; Re(long w, long h) : w(w), h(h) {} long area() const override { return w * h; } };
                extern "C" long shapes_area(long n) { Sq a(n); Re b(2, n); const Shape *s[] = { &a, &b }; return s[0]->area() + s[1]->area(); }
                """)
            .Write("native/util/util.nativeproj", Sources.Project("Library"))
            .Write("native/util/call.S", """
                	.text
                	.globl util_call
                	.type util_call,@function
                util_call:
                	mov %rdi, %rax
                	mov %rsi, %rdi
                	jmp __x86_indirect_thunk_rax
                	.size util_call,.-util_call
                	.section .note.GNU-stack,"",@progbits
                """)
            .Write("native/util/util.c", "long util_call(long (*f)(long), long x);\nstatic long neg(long x) { return -x; }\nlong util_neg(long x) { return util_call(neg, x); }\n")
            .Write("native/calc/calc.nativeproj", Sources.Project("Exe", $"<ItemGroup>{Ref("../mathx/mathx.nativeproj")}</ItemGroup>"))
            .Write("native/calc/main.c", "#include <stdio.h>\n#include \"mathx.h\"\nint main(void) { printf(\"calc=%ld\\n\", mathx_apply(1, 6, 7)); return 0; }\n")
            .Write("native/tally/tally.nativeproj", Sources.Project("Exe", $"<ItemGroup>{Ref("../core/core.nativeproj")}</ItemGroup>"))
            .Write("native/tally/main.c", "#include <stdio.h>\n#include \"core.h\"\nint main(void) { long x = 1; for (int i = 0; i < 8; i++) x = core_step(i, x); printf(\"tally=%ld\\n\", x); return 0; }\n")
            .Write("native/area/area.nativeproj", Sources.Project("Exe", $"<ItemGroup>{Ref("../shapes/shapes.nativeproj")}</ItemGroup>"))
            .Write("native/area/main.c", "#include <stdio.h>\nlong shapes_area(long n);\nint main(void) { printf(\"area=%ld\\n\", shapes_area(4)); return 0; }\n")
            .Write("managed/app/app.csproj", Sources.CSharpProject(Ref("../../native/mathx/mathx.nativeproj", "../../native/shapes/shapes.nativeproj", "../lib2/lib2.csproj"), "Exe"))
            .Write("managed/app/Program.cs", """
                using System.Runtime.InteropServices;
                static class Program
                {
                    [DllImport("mathx")] static extern long mathx_apply(int op, long a, long b);
                    [DllImport("shapes")] static extern long shapes_area(long n);
                    static void Main() => System.Console.WriteLine($"mathx={mathx_apply(0, 40, 2)} shapes={shapes_area(3)} util={Lib2.Twice.Neg(21)}");
                }
                """)
            .Write("managed/lib1/lib1.csproj", Sources.CSharpProject(Ref("../../native/util/util.nativeproj"), "Library"))
            .Write("managed/lib1/Util.cs", """
                using System.Runtime.InteropServices;
                namespace Lib1;
                public static class Util { [DllImport("util")] public static extern long util_neg(long x); }
                """)
            .Write("managed/lib2/lib2.csproj", Sources.CSharpProject(Ref("../lib1/lib1.csproj"), "Library"))
            .Write("managed/lib2/Twice.cs", "namespace Lib2;\npublic static class Twice { public static long Neg(long x) => 2 * Lib1.Util.util_neg(x); }\n");
        p.Write("all.slnx", "<Solution>\n" + string.Concat(Projects.Select(x => x.EndsWith(".nativeproj", StringComparison.Ordinal)
            ? $"  <Project Path=\"{x}\" Type=\"13b669be-bb05-4ddf-9536-439f39a36129\" />\n" : $"  <Project Path=\"{x}\" />\n")) + "</Solution>\n");
        return p;
    }

    /// <summary>Every file under every project's bin/, by path relative to the solution, with its SHA-256.</summary>
    static SortedDictionary<string, string> HashOutputs(TestProject p)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string project in Projects)
        {
            string bin = Path.Combine(p.PathOf(Path.GetDirectoryName(project)!), "bin");
            foreach (string f in Directory.EnumerateFiles(bin, "*", SearchOption.AllDirectories))
                result[Path.GetRelativePath(p.Directory, f)] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)));
        }
        return result;
    }

    [Fact]
    public void Parallel_build_of_a_ten_project_solution_is_correct_and_gives_the_same_bytes_twice()
    {
        var p = TenProjects();
        var first = Must(p.Build("all.slnx", "-m", "-v:n"), "parallel build");
        Assert.Contains("Build succeeded.", first.Output);
        Assert.DoesNotContain(": warning ", first.Output);

        // Correct: every program runs, and every C# project verified the native libraries it ships.
        Assert.Equal("mathx=42 shapes=15 util=-42", p.RunProgram("managed/app/bin/Debug/net10.0/app").Output.Trim());
        Assert.Equal("calc=42", p.RunProgram("native/calc/bin/Debug/calc").Output.Trim());
        // x: 1 → +1 = 2 → *3 = 6 → -7 = -1 → squared = 1 → ^5 = 4 → /2 = 2 → negated = -2 → default = -2
        Assert.Equal("tally=-2", p.RunProgram("native/tally/bin/Debug/tally").Output.Trim());
        Assert.Equal("area=24", p.RunProgram("native/area/bin/Debug/area").Output.Trim());
        foreach (string shipped in new[] { "app/bin/Debug/net10.0/libmathx.so", "app/bin/Debug/net10.0/libshapes.so", "app/bin/Debug/net10.0/libutil.so",
                                           "lib1/bin/Debug/net10.0/libutil.so", "lib2/bin/Debug/net10.0/libutil.so" })
            Assert.Contains($"{p.PathOf("managed/" + shipped)}: PASS", first.Output);

        var before = HashOutputs(p);
        string[] native = before.Keys.Where(k => k.StartsWith("native/", StringComparison.Ordinal)).ToArray();
        Assert.Equal(["native/area/bin/Debug/area", "native/area/bin/Debug/libshapes.so", "native/calc/bin/Debug/calc", "native/calc/bin/Debug/libmathx.so", "native/core/bin/Debug/libcore.a", "native/mathx/bin/Debug/libmathx.so",
                      "native/shapes/bin/Debug/libshapes.so", "native/tally/bin/Debug/tally", "native/util/bin/Debug/libutil.so"], native);
        // No absolute path of the build tree is baked into a native output (-ffile-prefix-map; ar D), so another
        // checkout builds the same bytes too.
        byte[] root = Encoding.UTF8.GetBytes(p.Directory);
        foreach (string file in native)
            Assert.True(File.ReadAllBytes(p.PathOf(file)).AsSpan().IndexOf(root) < 0, $"{file} contains the path {p.Directory}");

        // From scratch again (restore kept): every bin/ and obj/Debug/ goes, then another parallel build.
        foreach (string project in Projects)
        {
            string dir = p.PathOf(Path.GetDirectoryName(project)!);
            Directory.Delete(Path.Combine(dir, "bin"), recursive: true);
            Directory.Delete(Path.Combine(dir, "obj", "Debug"), recursive: true);
        }
        Must(p.Build("all.slnx", "-m", "--no-restore"), "second parallel build");
        var after = HashOutputs(p);
        Assert.Equal(before.Keys, after.Keys);
        var differ = before.Keys.Where(k => before[k] != after[k]).ToList();
        Assert.True(differ.Count == 0, "outputs differ between two builds: " + string.Join(", ", differ));
    }
}
