using System.Diagnostics;

namespace Retpoline;

/// <summary>
/// RETPOLINE_TIMING=1: each phase of a verify prints its wall time on stderr (`retpoline: timing: sweep 180 ms`).
/// For benchmarking only; costs one environment read per process otherwise.
/// </summary>
public static class Timing
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("RETPOLINE_TIMING") == "1";
    static readonly Stopwatch Clock = Stopwatch.StartNew();
    static long last;

    public static void Mark(string phase)
    {
        if (!Enabled) return;
        long now = Clock.ElapsedTicks;
        Console.Error.WriteLine($"retpoline: timing: {phase} {(now - last) * 1000.0 / Stopwatch.Frequency:F1} ms");
        last = now;
    }
}
