namespace Retpoline.Patching;

/// <summary>What `patch --vendor Host` chose, and why (one line each for `--explain`).</summary>
public sealed record HostVendorChoice(
    Vendor Vendor,
    IReadOnlyList<string> Explanation,
    /// <summary>The spectre_v2 line as read, or null when it could not be read.</summary>
    string? KernelMitigation,
    /// <summary>`GenuineIntel`, `AuthenticAMD`, `HygonGenuine`, …, or null when /proc/cpuinfo could not be read.</summary>
    string? CpuVendor);

/// <summary>
/// Picks the vendor for the machine we run on (issue 5: deploy time, the moment the kernel patches itself at boot)
/// from what the kernel says it chose: `/sys/devices/system/cpu/vulnerabilities/spectre_v2`, cross-checked against the
/// CPU vendor and flags in `/proc/cpuinfo`. Conservative: Generic whenever unsure.
/// <list type="bullet">
/// <item>`Not affected` → None (the CPU has no Spectre v2 to mitigate).</item>
/// <item>`Mitigation: Enhanced IBRS` / `Enhanced / Automatic IBRS` / `Automatic IBRS` (Intel eIBRS, AMD Zen 4 AutoIBRS)
/// → None, provided cpuinfo's flags show `ibrs_enhanced` or `autoibrs`; `… + Retpolines` (the kernel does not rely on
/// the hardware alone) → Generic; `… + LFENCE` → Amd.</item>
/// <item>`Mitigation: LFENCE` (Linux ≥ 5.17: only with an explicit `spectre_v2=retpoline,lfence`) → Amd.</item>
/// <item>`Mitigation: Retpolines`, `Full generic retpoline`, … → Generic. This is what current kernels report on AMD
/// parts too: "x86/speculation: Use generic retpoline by default on AMD" (Linux 5.17, March 2022).</item>
/// <item>`Full AMD retpoline` / `Minimal AMD ASM retpoline` (kernels before that change chose lfence on AMD by default,
/// not because anyone asked) → Generic: AMD withdrew that guidance.</item>
/// <item>`Vulnerable…`, `Mitigation: IBRS` (kernel entry only), anything unrecognised, a missing or unreadable file
/// → Generic.</item>
/// </list>
/// </summary>
public static class HostVendor
{
    public const string Spectre2File = "sys/devices/system/cpu/vulnerabilities/spectre_v2";
    public const string CpuInfoFile = "proc/cpuinfo";

    /// <param name="root">The file system root the two files are read under: "/" on a real host, a fixture copy in tests.</param>
    public static HostVendorChoice Detect(string root = "/")
    {
        var lines = new List<string>();
        string spectrePath = Path.Combine(root, Spectre2File), cpuPath = Path.Combine(root, CpuInfoFile);

        string? spectre = TryRead(spectrePath, out string? spectreError)?.Trim();
        lines.Add(spectre is null ? $"{spectrePath}: {spectreError}" : $"{spectrePath}: \"{spectre}\"");
        string? cpuText = TryRead(cpuPath, out string? cpuError);
        Cpu? cpu = cpuText is null ? null : ParseCpu(cpuText);
        if (cpuText is null) lines.Add($"{cpuPath}: {cpuError}");
        else if (cpu is null) lines.Add($"{cpuPath}: no vendor_id line");
        else lines.Add($"{cpuPath}: vendor_id {cpu.Vendor}" + (cpu.Model is null ? "" : $", model name \"{cpu.Model}\"") +
            $"; flags: {(cpu.Flags.Contains("ibrs_enhanced") ? "ibrs_enhanced" : "no ibrs_enhanced")}, {(cpu.Flags.Contains("autoibrs") ? "autoibrs" : "no autoibrs")}" +
            $"; bugs: {(cpu.Bugs is null ? "(no bugs line)" : cpu.Bugs.Contains("spectre_v2") ? "spectre_v2" : "no spectre_v2")}");

        HostVendorChoice Choose(Vendor v, string why)
        {
            lines.Add($"chose {v}: {why}");
            return new HostVendorChoice(v, lines, spectre, cpu?.Vendor);
        }

        if (spectre is null)
            return Choose(Vendor.Generic, "the kernel's own Spectre v2 choice is unknown (kernels before 4.15 have no such file), so the full retpoline stays");
        if (cpu is null)
            return Choose(Vendor.Generic, "the CPU could not be identified from /proc/cpuinfo, so the kernel's choice cannot be confirmed; the full retpoline stays");
        bool amd = cpu.Vendor is "AuthenticAMD" or "HygonGenuine";
        bool hardwareFlag = cpu.Flags.Contains("ibrs_enhanced") || cpu.Flags.Contains("autoibrs");

        if (spectre == "Not affected")
        {
            if (cpu.Bugs is not null && cpu.Bugs.Contains("spectre_v2"))
                return Choose(Vendor.Generic, "the kernel says \"Not affected\" but cpuinfo lists the spectre_v2 bug; unsure, so the full retpoline stays");
            return Choose(Vendor.None, "the kernel reports this CPU as not affected by Spectre v2, so indirect branches need no retpoline ('jmp *%reg')");
        }
        if (spectre.StartsWith("Vulnerable", StringComparison.Ordinal))
            return Choose(Vendor.Generic, "the kernel runs without a working Spectre v2 mitigation (mitigations=off, spectre_v2=off or an unsafe eIBRS setup); that is no reason for this program to drop its own");
        const string prefix = "Mitigation: ";
        if (!spectre.StartsWith(prefix, StringComparison.Ordinal))
            return Choose(Vendor.Generic, "the spectre_v2 text is not one this tool knows; unsure, so the full retpoline stays");

        // The mechanism is the first field: fields are separated by "; " (Linux ≥ 5.x) or ", " (older kernels).
        string rest = spectre[prefix.Length..];
        int end = rest.IndexOfAny([';', ',']);
        string mechanism = (end < 0 ? rest : rest[..end]).Trim();
        lines.Add($"kernel mechanism: \"{mechanism}\"{(amd ? " on an AMD-family CPU" : "")}");

        string hardware = mechanism;
        string? extra = null;
        int plus = mechanism.IndexOf(" + ", StringComparison.Ordinal);
        if (plus >= 0) { hardware = mechanism[..plus]; extra = mechanism[(plus + 3)..]; }

        if (hardware is "Enhanced IBRS" or "Enhanced / Automatic IBRS" or "Automatic IBRS")
        {
            if (extra is "Retpolines")
                return Choose(Vendor.Generic, "the kernel has enhanced/automatic IBRS but still uses retpolines on top of it (spectre_v2=eibrs,retpoline), so it does not rely on the hardware alone and neither do we");
            if (extra is "LFENCE")
                return Choose(Vendor.Amd, "the kernel uses enhanced/automatic IBRS plus 'lfence; jmp *%reg' thunks (spectre_v2=eibrs,lfence); the same form is used here");
            if (extra is not null)
                return Choose(Vendor.Generic, $"the kernel combines enhanced/automatic IBRS with \"{extra}\", which this tool does not know; unsure, so the full retpoline stays");
            if (!hardwareFlag)
                return Choose(Vendor.Generic, "the kernel reports enhanced/automatic IBRS but cpuinfo shows neither the ibrs_enhanced nor the autoibrs flag; unsure, so the full retpoline stays");
            return Choose(Vendor.None, "the CPU's enhanced/automatic IBRS protects indirect branches in hardware and the kernel relies on it; plain 'jmp *%reg' is enough (no retpoline)");
        }
        if (mechanism == "LFENCE" || mechanism == "Retpolines, LFENCE")
            return Choose(Vendor.Amd, "the kernel itself chose 'lfence; jmp *%reg' thunks (spectre_v2=retpoline,lfence; Linux ≥ 5.17 only does that when asked); the same form is used here. Note AMD no longer recommends it (March 2022)");
        if (mechanism is "Full AMD retpoline" or "Minimal AMD ASM retpoline")
            return Choose(Vendor.Generic, "this kernel predates Linux 5.17 and used the lfence form on AMD by default, not by choice; AMD withdrew that guidance in March 2022 (the lfence race window), and current kernels use the generic retpoline on AMD");
        if (mechanism is "Retpolines" or "Full generic retpoline" or "Minimal generic ASM retpoline" or "Retpoline")
            return Choose(Vendor.Generic, amd
                ? "the kernel uses the generic retpoline, as current kernels do by default on AMD parts (\"x86/speculation: Use generic retpoline by default on AMD\", Linux 5.17)"
                : "the kernel uses the generic retpoline on this CPU");
        if (hardware is "IBRS")
            return Choose(Vendor.Generic, "the kernel sets IBRS on kernel entry only (legacy IBRS protects the kernel, not one user process from another); user code keeps the full retpoline");
        return Choose(Vendor.Generic, $"the kernel mechanism \"{mechanism}\" is not one this tool knows; unsure, so the full retpoline stays");
    }

    sealed record Cpu(string Vendor, string? Model, HashSet<string> Flags, HashSet<string>? Bugs);

    /// <summary>The first processor block: vendor_id, model name, flags, bugs.</summary>
    static Cpu? ParseCpu(string text)
    {
        string? vendor = null, model = null;
        HashSet<string>? flags = null, bugs = null;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0) { if (vendor is not null) break; continue; } // end of the first processor
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
        }
        return vendor is null ? null : new Cpu(vendor, model, flags ?? [], bugs);
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
