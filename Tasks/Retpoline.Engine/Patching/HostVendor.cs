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
    string Reason,
    /// <summary>What the rules alone pick; <see cref="Vendor"/> is never weaker than <see cref="Minimum"/>.</summary>
    Vendor RuleVendor,
    Vendor Minimum);

/// <summary>
/// Picks the vendor for the machine we run on (deploy time, the moment the kernel patches itself at boot) from what
/// the kernel says it chose: `/sys/devices/system/cpu/vulnerabilities/spectre_v2`, cross-checked against the CPU
/// vendor and flags in `/proc/cpuinfo`. Three parts: <see cref="HostFacts"/> reads, <see cref="HostRules"/> decides
/// (the table the run-time routine shares), <see cref="HostExplanation"/> says why. Generic whenever unsure, and
/// never below the minimum (`--minimum`, RetpolineRuntimeMinimum).
/// </summary>
public static class HostVendor
{
    public const string Spectre2File = HostFacts.Spectre2File;
    public const string CpuInfoFile = HostFacts.CpuInfoFile;

    /// <summary>
    /// The floor `--vendor Host` and the run-time routine keep unless told otherwise. Generic: the hardware
    /// mitigations the rules can find (enhanced/automatic IBRS) protect the kernel and the sibling thread, not a
    /// process from code in itself or from the process that ran before it on the same core (docs/sdk.md, "Threat model").
    /// </summary>
    public const Vendor DefaultMinimum = Vendor.Generic;

    /// <summary>The stronger of the two: Generic over Amd over None.</summary>
    public static Vendor AtLeast(Vendor chosen, Vendor minimum) => Strength(chosen) >= Strength(minimum) ? chosen : minimum;

    static int Strength(Vendor v) => v switch { Vendor.Generic => 2, Vendor.Amd => 1, _ => 0 };

    /// <param name="root">The file system root the two files are read under: "/" on a real host, a fixture copy in tests.</param>
    /// <param name="minimum">The weakest form the choice may be.</param>
    public static HostVendorChoice Detect(string root = "/", Vendor minimum = DefaultMinimum) => Decide(HostFacts.Read(root), minimum);

    public static HostVendorChoice Decide(HostFacts facts, Vendor minimum = DefaultMinimum)
    {
        var conditions = HostRules.Classify(facts);
        var rule = HostRules.Match(conditions);
        var lines = HostExplanation.Read(facts, conditions);
        string why = HostExplanation.Why(rule.Reason, conditions.MechanismText, conditions.AdditionText);
        var vendor = AtLeast(rule.Vendor, minimum);
        lines.Add(vendor == rule.Vendor
            ? $"chose {vendor}: {why}"
            : $"chose {vendor}: {HostExplanation.Minimum(minimum)}; the host rules alone pick {rule.Vendor}: {why}");
        return new HostVendorChoice(vendor, lines, facts.Spectre, facts.Cpu?.Vendor, rule.Reason, rule.Vendor, minimum);
    }
}
