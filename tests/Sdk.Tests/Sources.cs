namespace Retpoline.Sdk.Tests;

/// <summary>The C, C++ and assembly the end-to-end tests build. Each prints something a test checks.</summary>
public static class Sources
{
    public const string DispatchC = """
        #include <stdio.h>
        typedef long (*op)(long, long);
        static long add(long a, long b) { return a + b; }
        static long sub(long a, long b) { return a - b; }
        static long mul(long a, long b) { return a * b; }
        op table[] = { add, sub, mul };
        long run(int n) { long t = 0; for (int i = 0; i < n; i++) t += table[i % 3](10 + i, 3); return t; }
        int main(void) { printf("total=%ld\n", run(6)); return 0; }
        """;
    // run(6): (10+3)+(11-3)+(12*3)+(13+3)+(14-3)+(15*3) = 13+8+36+16+11+45 = 129
    public const string DispatchExpected = "total=129";

    public const string VirtualCpp = """
        #include <cstdio>
        #include <memory>
        struct Shape { virtual ~Shape() = default; virtual long area() const = 0; };
        struct Sq : Shape { long s; explicit Sq(long s) : s(s) {} long area() const override { return s * s; } };
        struct Re : Shape { long w, h; Re(long w, long h) : w(w), h(h) {} long area() const override { return w * h; } };
        int main() { std::unique_ptr<Shape> a = std::make_unique<Sq>(6), b = std::make_unique<Re>(2, 5); std::printf("area=%ld\n", a->area() + b->area()); return 0; }
        """;
    public const string VirtualExpected = "area=46";

    /// <summary>Hand-written assembly with an unprotected indirect call on line 6.</summary>
    public const string TrampolineS = """
        	.text
        	.globl trampoline
        	.type trampoline,@function
        trampoline:
        	sub $8, %rsp
        	call *%rdi
        	add $8, %rsp
        	ret
        	.size trampoline,.-trampoline
        	.section .note.GNU-stack,"",@progbits
        """;

    public const string TrampolineMainC = """
        #include <stdio.h>
        extern long trampoline(long (*f)(void));
        static long seven(void) { return 7; }
        int main(void) { printf("seven=%ld\n", trampoline(seven)); return 0; }
        """;

    /// <summary>A C# project (net10.0) with the given items: the managed side of the solution tests.</summary>
    public static string CSharpProject(string items, string outputType = "Library") => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup><OutputType>{outputType}</OutputType><TargetFramework>net10.0</TargetFramework></PropertyGroup>
          <ItemGroup>
            {items}
          </ItemGroup>
        </Project>
        """;

    public static string Project(string outputType, string extra = "") => $"""
        <Project Sdk="Retpoline.Sdk">
          <PropertyGroup>
            <OutputType>{outputType}</OutputType>
          </PropertyGroup>
          {extra}
        </Project>
        """;

    /// <summary>A compile error on line 3 (column 12), and a warning whose note must stay attached to it.</summary>
    public const string BrokenC = "int main(void)\n{\n    return undefined_thing;\n}\n";
    public const string WarnWithNoteC = "void take(int *p);\nvoid call_it(void) { take(5); }\n";

    /// <summary>Calls functions nothing defines: linker errors at lines 3 and 4 (one function, two references).</summary>
    public const string UndefinedReferenceC = "extern int missing_function(void);\nextern int other_missing(void);\nint main(void) { int a = missing_function();\n  return a + other_missing(); }\n";

    // Thunk bodies for %rax (DESIGN.md §3), 17 bytes each.
    public const string GenericRax = "e807000000f3900faee8ebf948890424c3";
    public const string AmdRax = "0faee8ffe0cccccccccccccccccccccccc";
    public const string NoneRax = "ffe0cccccccccccccccccccccccccccccc";
    // ... and for %r11, the only register Clang's -mretpoline-external-thunk calls through.
    public const string GenericR11 = "e807000000f3900faee8ebf94c891c24c3";
    public const string AmdR11 = "0faee841ffe3cccccccccccccccccccccc";
    public const string NoneR11 = "41ffe3cccccccccccccccccccccccccccc";
}
