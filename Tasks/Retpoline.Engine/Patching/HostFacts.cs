namespace Retpoline.Patching;

/// <summary>The first processor block of /proc/cpuinfo: what the vendor rules look at.</summary>
public sealed record CpuFacts(string Vendor, string? Model, IReadOnlySet<string> Flags, IReadOnlySet<string>? Bugs);

/// <summary>
/// What the machine says, read and nothing decided: the kernel's spectre_v2 line and the CPU from /proc/cpuinfo, each
/// with where it was read and why it could not be. <see cref="HostRules"/> decides from these; native/retpoline_runtime.c
/// reads the same two files the same way (first block, the same keys, words split on spaces).
/// </summary>
public sealed record HostFacts(
    string SpectrePath,
    /// <summary>The spectre_v2 text, trimmed; null when it could not be read (<see cref="SpectreError"/> says why).</summary>
    string? Spectre,
    string? SpectreError,
    string CpuInfoPath,
    /// <summary>Null when /proc/cpuinfo could not be read (<see cref="CpuInfoError"/>) or has no vendor_id line.</summary>
    CpuFacts? Cpu,
    string? CpuInfoError)
{
    public const string Spectre2File = "sys/devices/system/cpu/vulnerabilities/spectre_v2";
    public const string CpuInfoFile = "proc/cpuinfo";
    /// <summary>
    /// The run-time routine reads at most this much of /proc/cpuinfo (a buffer on its stack); a first processor block
    /// that is not done within it (ended, or its vendor_id, flags and bugs lines all seen) is not trusted, here as
    /// there. Real blocks are 1–3 KB (the flags line is the longest, &lt; 2 KB).
    /// </summary>
    public const int CpuInfoLimit = 16384;

    /// <param name="root">The file system root the two files are read under: "/" on a real host, a fixture copy in tests.</param>
    public static HostFacts Read(string root = "/")
    {
        string spectrePath = Path.Combine(root, Spectre2File), cpuPath = Path.Combine(root, CpuInfoFile);
        string? spectre = TryRead(spectrePath, out string? spectreError)?.Trim();
        string? cpuText = TryRead(cpuPath, out string? cpuError);
        CpuFacts? cpu = null;
        if (cpuText is not null && (cpu = ParseCpu(cpuText, out bool ended)) is not null && !ended)
        {
            cpu = null;
            cpuError = $"the first processor block does not end within {CpuInfoLimit} bytes";
        }
        return new HostFacts(spectrePath, spectre, spectreError, cpuPath, cpu, cpuError);
    }

    /// <summary>
    /// The first processor block: vendor_id, model name, flags, bugs (the first of each). Only the first
    /// <see cref="CpuInfoLimit"/> characters count, and a line they cut is dropped; <paramref name="ended"/> says
    /// whether the block was done within them: it ended (a blank line, the end of the file), or vendor_id, flags and
    /// bugs were all seen, after which no line can change what is known (the routine stops reading there).
    /// </summary>
    static CpuFacts? ParseCpu(string text, out bool ended)
    {
        string? vendor = null, model = null;
        HashSet<string>? flags = null, bugs = null;
        bool complete = text.Length <= CpuInfoLimit;
        var lines = (complete ? text : text[..CpuInfoLimit]).Split('\n');
        ended = complete;
        for (int i = 0; i < lines.Length; i++)
        {
            if (i == lines.Length - 1 && !complete) break; // cut by the limit
            string line = lines[i].TrimEnd('\r');
            if (line.Length == 0) { if (vendor is not null) { ended = true; break; } continue; } // end of the first processor
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "vendor_id": vendor ??= value; break;
                case "model name": model ??= value; break;
                case "flags": flags ??= Words(value); break;
                case "bugs": bugs ??= Words(value); break;
            }
            if (vendor is not null && flags is not null && bugs is not null) { ended = true; break; }
        }
        return vendor is null ? null : new CpuFacts(vendor, model, flags ?? [], bugs);
    }

    static HashSet<string> Words(string s) => new(s.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);

    static string? TryRead(string path, out string? error)
    {
        error = null;
        try
        {
            if (Directory.Exists(path)) { error = "is a directory, not a file"; return null; }
            if (!File.Exists(path)) { error = "missing"; return null; }
            return File.ReadAllText(path);
        }
        catch (UnauthorizedAccessException) { error = "permission denied"; }
        catch (IOException e) { error = $"unreadable ({e.Message})"; }
        return null;
    }
}
