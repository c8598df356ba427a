namespace Retpoline.Patching;

/// <summary>What the spectre_v2 line says, in the rules' terms.</summary>
public enum SpectreState : byte { Unreadable, NotAffected, Vulnerable, Mitigation, Unknown }

/// <summary>The kernel's mechanism: the first field after `Mitigation: `, before any ` + `.</summary>
public enum KernelMechanism : byte { Eibrs, Lfence, AmdRetpoline, GenericRetpoline, Ibrs, Other }

/// <summary>What the kernel adds on top of its mechanism (after ` + `).</summary>
public enum KernelAddition : byte { Nothing, Retpolines, Lfence, Other }

/// <summary>The facts reduced to what the rules test. Both the engine and the run-time routine compute exactly these.</summary>
public readonly record struct HostConditions(
    SpectreState Spectre,
    bool CpuKnown,
    /// <summary>cpuinfo's bugs line lists spectre_v2.</summary>
    bool SpectreBug,
    /// <summary>cpuinfo's flags line lists ibrs_enhanced or autoibrs.</summary>
    bool HardwareFlag,
    bool AmdFamily,
    KernelMechanism Mechanism,
    KernelAddition Addition,
    /// <summary>The mechanism field as read (for the explanation), or null when the line is not a `Mitigation:` line.</summary>
    string? MechanismText,
    /// <summary>The part after ` + `, or null.</summary>
    string? AdditionText);

/// <summary>One row: every condition that is not null must hold. The first row that matches decides.</summary>
public sealed record HostRule(
    /// <summary>A stable key: the explanation's, and what the run-time routine records for `retpoline status`.</summary>
    string Reason,
    Vendor Vendor,
    SpectreState? Spectre = null,
    bool? CpuKnown = null,
    bool? SpectreBug = null,
    KernelMechanism? Mechanism = null,
    KernelAddition? Addition = null,
    bool? HardwareFlag = null,
    bool? AmdFamily = null)
{
    public bool Matches(in HostConditions c)
        => (Spectre is not { } s || s == c.Spectre) && (CpuKnown is not { } k || k == c.CpuKnown) && (SpectreBug is not { } b || b == c.SpectreBug)
        && (Mechanism is not { } m || m == c.Mechanism) && (Addition is not { } a || a == c.Addition)
        && (HardwareFlag is not { } f || f == c.HardwareFlag) && (AmdFamily is not { } amd || amd == c.AmdFamily);
}

/// <summary>
/// The vendor rules of `--vendor Host` as data: the strings that classify the kernel's text, and the rule table.
/// This is the one source: native/retpoline_runtime_tables.h is generated from it (a test regenerates it and
/// compares), so the run-time routine and `patch --vendor Host` cannot disagree. Conservative: Generic whenever unsure.
/// </summary>
public static class HostRules
{
    public const string NotAffected = "Not affected", VulnerablePrefix = "Vulnerable", MitigationPrefix = "Mitigation: ";
    /// <summary>Fields of the spectre_v2 line are separated by "; " (Linux ≥ 5.x) or ", " (older kernels).</summary>
    public const string FieldSeparators = ";,";
    /// <summary>`Enhanced IBRS + Retpolines`: the kernel's mechanism plus what it adds.</summary>
    public const string AdditionSeparator = " + ";
    public const string SpectreBugWord = "spectre_v2";
    /// <summary>cpuinfo flags of the hardware mitigations (Intel eIBRS, AMD Zen 4 Automatic IBRS).</summary>
    public static readonly IReadOnlyList<string> HardwareFlagWords = ["ibrs_enhanced", "autoibrs"];
    public static readonly IReadOnlyList<string> AmdFamilyVendors = ["AuthenticAMD", "HygonGenuine"];

    /// <summary>The mechanism names kernels print (4.15 to 6.x), whole-field matches.</summary>
    public static readonly IReadOnlyList<(string Text, KernelMechanism Mechanism)> Mechanisms =
    [
        ("Enhanced IBRS", KernelMechanism.Eibrs),
        ("Enhanced / Automatic IBRS", KernelMechanism.Eibrs),
        ("Automatic IBRS", KernelMechanism.Eibrs),
        ("LFENCE", KernelMechanism.Lfence),
        ("Full AMD retpoline", KernelMechanism.AmdRetpoline),
        ("Minimal AMD ASM retpoline", KernelMechanism.AmdRetpoline),
        ("Retpolines", KernelMechanism.GenericRetpoline),
        ("Full generic retpoline", KernelMechanism.GenericRetpoline),
        ("Minimal generic ASM retpoline", KernelMechanism.GenericRetpoline),
        ("Retpoline", KernelMechanism.GenericRetpoline),
        ("IBRS", KernelMechanism.Ibrs),
    ];

    public static readonly IReadOnlyList<(string Text, KernelAddition Addition)> Additions =
    [
        ("Retpolines", KernelAddition.Retpolines),
        ("LFENCE", KernelAddition.Lfence),
    ];

    /// <summary>In order; the last row matches everything.</summary>
    public static readonly IReadOnlyList<HostRule> Table =
    [
        new("spectre-unreadable", Vendor.Generic, Spectre: SpectreState.Unreadable),
        new("cpu-unknown", Vendor.Generic, CpuKnown: false),
        new("not-affected-but-bug", Vendor.Generic, Spectre: SpectreState.NotAffected, SpectreBug: true),
        new("not-affected", Vendor.None, Spectre: SpectreState.NotAffected),
        new("vulnerable", Vendor.Generic, Spectre: SpectreState.Vulnerable),
        new("unknown-text", Vendor.Generic, Spectre: SpectreState.Unknown),
        new("eibrs-retpolines", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Eibrs, Addition: KernelAddition.Retpolines),
        new("eibrs-lfence", Vendor.Amd, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Eibrs, Addition: KernelAddition.Lfence),
        new("eibrs-unknown-addition", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Eibrs, Addition: KernelAddition.Other),
        new("eibrs-no-flag", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Eibrs, Addition: KernelAddition.Nothing, HardwareFlag: false),
        new("eibrs", Vendor.None, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Eibrs, Addition: KernelAddition.Nothing, HardwareFlag: true),
        new("kernel-lfence", Vendor.Amd, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Lfence, Addition: KernelAddition.Nothing),
        new("amd-retpoline-default", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.AmdRetpoline, Addition: KernelAddition.Nothing),
        new("retpoline-amd", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.GenericRetpoline, Addition: KernelAddition.Nothing, AmdFamily: true),
        new("retpoline", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.GenericRetpoline, Addition: KernelAddition.Nothing),
        new("ibrs-entry-only", Vendor.Generic, Spectre: SpectreState.Mitigation, Mechanism: KernelMechanism.Ibrs),
        new("unknown-mechanism", Vendor.Generic),
    ];

    public static HostConditions Classify(HostFacts facts)
    {
        var cpu = facts.Cpu;
        string? mechanismText = null, additionText = null;
        var mechanism = KernelMechanism.Other;
        var addition = KernelAddition.Nothing;
        var state = facts.Spectre switch
        {
            null => SpectreState.Unreadable,
            NotAffected => SpectreState.NotAffected,
            var s when s.StartsWith(VulnerablePrefix, StringComparison.Ordinal) => SpectreState.Vulnerable,
            var s when s.StartsWith(MitigationPrefix, StringComparison.Ordinal) => SpectreState.Mitigation,
            _ => SpectreState.Unknown,
        };
        if (state == SpectreState.Mitigation)
        {
            string rest = facts.Spectre![MitigationPrefix.Length..];
            int end = rest.IndexOfAny(FieldSeparators.ToCharArray());
            mechanismText = (end < 0 ? rest : rest[..end]).Trim();
            string hardware = mechanismText;
            int plus = mechanismText.IndexOf(AdditionSeparator, StringComparison.Ordinal);
            if (plus >= 0) { hardware = mechanismText[..plus]; additionText = mechanismText[(plus + AdditionSeparator.Length)..]; }
            mechanism = Lookup(Mechanisms, hardware, KernelMechanism.Other);
            addition = additionText is null ? KernelAddition.Nothing : Lookup(Additions, additionText, KernelAddition.Other);
        }
        return new HostConditions(state, cpu is not null,
            cpu?.Bugs is { } bugs && bugs.Contains(SpectreBugWord),
            cpu is not null && HardwareFlagWords.Any(cpu.Flags.Contains),
            cpu is not null && AmdFamilyVendors.Contains(cpu.Vendor),
            mechanism, addition, mechanismText, additionText);
    }

    public static HostRule Match(in HostConditions c)
    {
        foreach (var rule in Table)
            if (rule.Matches(c)) return rule;
        throw new InvalidOperationException("the last host rule matches everything");
    }

    /// <summary>
    /// True when the spectre_v2 line alone fixes the vendor: every rule the four CPU facts (known, bug, flag, AMD)
    /// could still reach gives the same one. The run-time routine then never reads /proc/cpuinfo (formatting a CPU's
    /// block is its most expensive step); its reason is that rule's, or <see cref="SpectreLineReason"/> when several
    /// rules agree.
    /// </summary>
    public static bool SpectreLineDecides(in HostConditions c, out Vendor vendor, out string reason)
    {
        HostRule? first = null;
        bool sameVendor = true, sameRule = true;
        for (int facts = 0; facts < 16; facts++)
        {
            var rule = Match(c with { CpuKnown = (facts & 1) != 0, SpectreBug = (facts & 2) != 0, HardwareFlag = (facts & 4) != 0, AmdFamily = (facts & 8) != 0 });
            first ??= rule;
            sameVendor &= rule.Vendor == first.Vendor;
            sameRule &= ReferenceEquals(rule, first);
        }
        vendor = first!.Vendor;
        reason = sameRule ? first.Reason : SpectreLineReason;
        return sameVendor;
    }

    /// <summary>The run-time routine's reason when several rules agree on the vendor from the spectre_v2 line alone.</summary>
    public const string SpectreLineReason = "spectre-line";

    static T Lookup<T>(IReadOnlyList<(string Text, T Value)> names, string text, T otherwise)
    {
        foreach (var (name, value) in names)
            if (name == text) return value;
        return otherwise;
    }
}
