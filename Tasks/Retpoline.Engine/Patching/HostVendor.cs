namespace Retpoline.Patching;

/// <summary>What `patch --vendor Host` chose, and why (one line each for `--explain`).</summary>
public sealed record HostVendorChoice(
    Vendor Vendor,
    IReadOnlyList<string> Explanation,
    /// <summary>The spectre_v2 line as read, or null when it could not be read.</summary>
    string? KernelMitigation,
    /// <summary>`GenuineIntel`, `AuthenticAMD`, `HygonGenuine`, …, or null when /proc/cpuinfo could not be read.</summary>
    string? CpuVendor,
    /// <summary>The <see cref="HostRule.Reason"/> of the rule that decided.</summary>
    string Reason = "");

/// <summary>
/// Picks the vendor for the machine we run on (deploy time, the moment the kernel patches itself at boot) from what
/// the kernel says it chose: `/sys/devices/system/cpu/vulnerabilities/spectre_v2`, cross-checked against the CPU
/// vendor and flags in `/proc/cpuinfo`. Three parts: <see cref="HostFacts"/> reads, <see cref="HostRules"/> decides
/// (the table the run-time routine shares), <see cref="HostExplanation"/> says why. Generic whenever unsure.
/// </summary>
public static class HostVendor
{
    public const string Spectre2File = HostFacts.Spectre2File;
    public const string CpuInfoFile = HostFacts.CpuInfoFile;

    /// <param name="root">The file system root the two files are read under: "/" on a real host, a fixture copy in tests.</param>
    public static HostVendorChoice Detect(string root = "/") => Decide(HostFacts.Read(root));

    public static HostVendorChoice Decide(HostFacts facts)
    {
        var conditions = HostRules.Classify(facts);
        var rule = HostRules.Match(conditions);
        var lines = HostExplanation.Read(facts, conditions);
        lines.Add($"chose {rule.Vendor}: {HostExplanation.Why(rule.Reason, conditions.MechanismText, conditions.AdditionText)}");
        return new HostVendorChoice(rule.Vendor, lines, facts.Spectre, facts.Cpu?.Vendor, rule.Reason);
    }
}
