using System.Runtime.InteropServices;

namespace Sample;

/// <summary>libmathx.so, found next to the assembly.</summary>
public static class MathX
{
    [DllImport("mathx", EntryPoint = "mathx_apply")]
    public static extern long Apply(int op, long a, long b);
}
