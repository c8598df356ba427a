namespace Retpoline.Patching;

/// <summary>
/// The words for the host rules: what was read (one line per file), and why each rule's reason leads to its vendor
/// (`--explain`, `retpoline status`). Text only; the decision is <see cref="HostRules"/>.
/// </summary>
public static class HostExplanation
{
    /// <summary>What was read, from where, verbatim.</summary>
    public static List<string> Read(HostFacts facts, in HostConditions c)
    {
        var lines = new List<string>
        {
            facts.Spectre is null ? $"{facts.SpectrePath}: {facts.SpectreError}" : $"{facts.SpectrePath}: \"{facts.Spectre}\"",
        };
        if (facts.Cpu is { } cpu)
            lines.Add($"{facts.CpuInfoPath}: vendor_id {cpu.Vendor}" + (cpu.Model is null ? "" : $", model name \"{cpu.Model}\"") +
                $"; flags: {(cpu.Flags.Contains("ibrs_enhanced") ? "ibrs_enhanced" : "no ibrs_enhanced")}, {(cpu.Flags.Contains("autoibrs") ? "autoibrs" : "no autoibrs")}" +
                $"; bugs: {(cpu.Bugs is null ? "(no bugs line)" : cpu.Bugs.Contains(HostRules.SpectreBugWord) ? "spectre_v2" : "no spectre_v2")}");
        else lines.Add($"{facts.CpuInfoPath}: {facts.CpuInfoError ?? "no vendor_id line"}");
        if (c.Spectre == SpectreState.Mitigation && c.CpuKnown)
            lines.Add($"kernel mechanism: \"{c.MechanismText}\"{(c.AmdFamily ? " on an AMD-family CPU" : "")}");
        return lines;
    }

    /// <summary>Why a rule's vendor follows from its reason; <paramref name="mechanism"/>/<paramref name="addition"/> fill in the two that quote the kernel.</summary>
    public static string Why(string reason, string? mechanism = null, string? addition = null) => reason switch
    {
        "spectre-unreadable" => "the kernel's own Spectre v2 choice is unknown (kernels before 4.15 have no such file), so the full retpoline stays",
        "cpu-unknown" => "the CPU could not be identified from /proc/cpuinfo, so the kernel's choice cannot be confirmed; the full retpoline stays",
        "not-affected-but-bug" => "the kernel says \"Not affected\" but cpuinfo lists the spectre_v2 bug; unsure, so the full retpoline stays",
        "not-affected" => "the kernel reports this CPU as not affected by Spectre v2, so indirect branches need no retpoline ('jmp *%reg')",
        "vulnerable" => "the kernel runs without a working Spectre v2 mitigation (mitigations=off, spectre_v2=off or an unsafe eIBRS setup); that is no reason for this program to drop its own",
        "unknown-text" => "the spectre_v2 text is not one this tool knows; unsure, so the full retpoline stays",
        "eibrs-retpolines" => "the kernel has enhanced/automatic IBRS but still uses retpolines on top of it (spectre_v2=eibrs,retpoline), so it does not rely on the hardware alone and neither do we",
        "eibrs-lfence" => "the kernel uses enhanced/automatic IBRS plus 'lfence; jmp *%reg' thunks (spectre_v2=eibrs,lfence); the same form is used here",
        "eibrs-unknown-addition" => $"the kernel combines enhanced/automatic IBRS with \"{addition ?? "…"}\", which this tool does not know; unsure, so the full retpoline stays",
        "eibrs-no-flag" => "the kernel reports enhanced/automatic IBRS but cpuinfo shows neither the ibrs_enhanced nor the autoibrs flag; unsure, so the full retpoline stays",
        "eibrs" => "the CPU's enhanced/automatic IBRS protects indirect branches in hardware and the kernel relies on it; plain 'jmp *%reg' is enough (no retpoline)",
        "kernel-lfence" => "the kernel itself chose 'lfence; jmp *%reg' thunks (spectre_v2=retpoline,lfence; Linux ≥ 5.17 only does that when asked); the same form is used here. Note AMD no longer recommends it (March 2022)",
        "amd-retpoline-default" => "this kernel predates Linux 5.17 and used the lfence form on AMD by default, not by choice; AMD withdrew that guidance in March 2022 (the lfence race window), and current kernels use the generic retpoline on AMD",
        "retpoline-amd" => "the kernel uses the generic retpoline, as current kernels do by default on AMD parts (\"x86/speculation: Use generic retpoline by default on AMD\", Linux 5.17)",
        "retpoline" => "the kernel uses the generic retpoline on this CPU",
        "ibrs-entry-only" => "the kernel sets IBRS on kernel entry only (legacy IBRS protects the kernel, not one user process from another); user code keeps the full retpoline",
        HostRules.SpectreLineReason => $"the kernel's spectre_v2 line (mechanism \"{mechanism ?? "…"}\") decides it whatever /proc/cpuinfo says (every rule it leaves open agrees), so the run-time routine did not read that file",
        "unknown-mechanism" => $"the kernel mechanism \"{mechanism ?? "…"}\" is not one this tool knows; unsure, so the full retpoline stays",
        _ => $"reason '{reason}' (not one this version of the tool knows)",
    };

    /// <summary>Why the minimum, not the rules, decided.</summary>
    public static string Minimum(Vendor minimum) => minimum == HostVendor.DefaultMinimum
        ? $"the minimum is {minimum} (the default of --minimum and RetpolineRuntimeMinimum: enhanced/automatic IBRS does not protect a process from code in itself or from the process before it on the same core)"
        : $"the minimum is {minimum} (--minimum, RetpolineRuntimeMinimum)";
}
