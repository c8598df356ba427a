using Retpoline.Patching;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// `patch --vendor Host`: the choice made from fixture copies of
/// /sys/devices/system/cpu/vulnerabilities/spectre_v2 and /proc/cpuinfo (tests/Engine.Tests/Fixtures/host/&lt;case&gt;/).
/// The rules' own choice is what these assert, so they pass the floor that lets every choice through (minimum None);
/// the default floor (Generic) is tested on its own below.
/// </summary>
public sealed class HostVendorTests
{
    static string Fixture(string name) => Path.Combine(CallSiteTests.Native.RepoRoot, "tests", "Engine.Tests", "Fixtures", "host", name);

    [Theory]
    // Intel eIBRS: the hardware protects indirect branches and the kernel relies on it.
    [InlineData("intel-eibrs", Vendor.None, "enhanced/automatic IBRS protects")]
    [InlineData("intel-eibrs-5.10", Vendor.None, "enhanced/automatic IBRS protects")]
    // The kernel adds retpolines on top of eIBRS: it does not rely on the hardware alone.
    [InlineData("intel-eibrs-retpoline", Vendor.Generic, "retpolines on top")]
    // eIBRS claimed but the CPU flag is absent: unsure.
    [InlineData("intel-eibrs-noflag", Vendor.Generic, "neither the ibrs_enhanced nor the autoibrs flag")]
    [InlineData("intel-retpoline", Vendor.Generic, "generic retpoline on this CPU")]
    [InlineData("intel-ibrs", Vendor.Generic, "IBRS on kernel entry only")]
    // AMD: current kernels use the generic retpoline, and so do we.
    [InlineData("amd-retpoline", Vendor.Generic, "by default on AMD parts")]
    // AMD where the kernel was told to use lfence: the same form.
    [InlineData("amd-lfence", Vendor.Amd, "the kernel itself chose 'lfence; jmp *%reg'")]
    // A pre-5.17 kernel's "AMD retpoline" was a default, not a choice, and AMD has withdrawn it.
    [InlineData("amd-legacy", Vendor.Generic, "predates Linux 5.17")]
    // Zen 4 Automatic IBRS.
    [InlineData("amd-autoibrs", Vendor.None, "enhanced/automatic IBRS protects")]
    [InlineData("vulnerable", Vendor.Generic, "without a working Spectre v2 mitigation")]
    [InlineData("not-affected", Vendor.None, "not affected")]
    // Missing files.
    [InlineData("no-vulnerabilities-file", Vendor.Generic, "the kernel's own Spectre v2 choice is unknown")]
    [InlineData("no-cpuinfo", Vendor.Generic, "could not be identified")]
    [InlineData("empty", Vendor.Generic, "the kernel's own Spectre v2 choice is unknown")]
    public void Chooses_from_the_kernels_own_choice(string fixture, Vendor expected, string why)
    {
        string root = Fixture(fixture);
        Assert.True(Directory.Exists(root), root);
        var choice = HostVendor.Detect(root, minimum: Vendor.None);
        Assert.Equal(expected, choice.Vendor);
        Assert.StartsWith($"chose {expected}: ", choice.Explanation[^1]);
        Assert.Contains(why, choice.Explanation[^1]);

        // --explain shows what was read, verbatim, from where.
        string spectre = Path.Combine(root, HostVendor.Spectre2File);
        if (File.Exists(spectre))
        {
            string text = File.ReadAllText(spectre).Trim();
            Assert.Equal(text, choice.KernelMitigation);
            Assert.Contains($"{spectre}: \"{text}\"", choice.Explanation);
        }
        else
        {
            Assert.Null(choice.KernelMitigation);
            Assert.Contains($"{spectre}: missing", choice.Explanation);
        }
        string cpuinfo = Path.Combine(root, HostVendor.CpuInfoFile);
        if (File.Exists(cpuinfo)) Assert.Contains(choice.Explanation, l => l.StartsWith($"{cpuinfo}: vendor_id ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("amd-retpoline", "AuthenticAMD")]
    [InlineData("intel-eibrs", "GenuineIntel")]
    public void Reports_the_cpu_vendor(string fixture, string vendor)
        => Assert.Equal(vendor, HostVendor.Detect(Fixture(fixture)).CpuVendor);

    [Fact]
    public void Retpolines_on_an_amd_part_is_generic_even_though_the_line_says_not_affected_elsewhere()
    {
        // "PBRSB-eIBRS: Not affected" is a later field, not the mechanism.
        var choice = HostVendor.Detect(Fixture("amd-retpoline"));
        Assert.Contains("Not affected", choice.KernelMitigation);
        Assert.Equal(Vendor.Generic, choice.Vendor);
        Assert.Contains("kernel mechanism: \"Retpolines\" on an AMD-family CPU", choice.Explanation);
    }

    [Fact]
    public void Unreadable_or_unknown_text_is_generic()
    {
        var root = Directory.CreateTempSubdirectory("rpl-host-");
        try
        {
            string vuln = Path.Combine(root.FullName, HostVendor.Spectre2File);
            string cpu = Path.Combine(root.FullName, HostVendor.CpuInfoFile);
            Directory.CreateDirectory(Path.GetDirectoryName(cpu)!);
            File.Copy(Path.Combine(Fixture("intel-eibrs"), HostVendor.CpuInfoFile), cpu);

            Directory.CreateDirectory(vuln); // a directory where the file should be: unreadable
            var choice = HostVendor.Detect(root.FullName);
            Assert.Equal(Vendor.Generic, choice.Vendor);
            Assert.Contains($"{vuln}: is a directory, not a file", choice.Explanation);
            Directory.Delete(vuln);

            File.WriteAllText(vuln, "Mitigation: Something New; IBPB: conditional\n");
            Assert.Equal(Vendor.Generic, HostVendor.Detect(root.FullName).Vendor);
            File.WriteAllText(vuln, "Unknown: no idea\n");
            Assert.Equal(Vendor.Generic, HostVendor.Detect(root.FullName).Vendor);
            File.WriteAllText(vuln, "Mitigation: Enhanced / Automatic IBRS + LFENCE; IBPB: conditional; RSB filling\n");
            Assert.Equal(Vendor.Amd, HostVendor.Detect(root.FullName, minimum: Vendor.None).Vendor);
            File.WriteAllText(vuln, "");
            Assert.Equal(Vendor.Generic, HostVendor.Detect(root.FullName).Vendor);

            File.WriteAllText(vuln, "Not affected\n");
            File.WriteAllText(cpu, "processor\t: 0\nmodel name\t: something\n\n"); // no vendor_id
            Assert.Equal(Vendor.Generic, HostVendor.Detect(root.FullName).Vendor);
        }
        finally { root.Delete(recursive: true); }
    }

    /// <summary>
    /// The floor: by default nothing goes below Generic, whatever the hardware; a lower floor lets the rules' choice
    /// through down to it, and the explanation says which decided.
    /// </summary>
    [Theory]
    [InlineData("intel-eibrs", null, Vendor.Generic)]
    [InlineData("intel-eibrs", Vendor.Generic, Vendor.Generic)]
    [InlineData("intel-eibrs", Vendor.Amd, Vendor.Amd)]
    [InlineData("intel-eibrs", Vendor.None, Vendor.None)]
    [InlineData("not-affected", null, Vendor.Generic)]
    [InlineData("amd-lfence", Vendor.None, Vendor.Amd)]
    [InlineData("amd-lfence", null, Vendor.Generic)]
    [InlineData("amd-retpoline", Vendor.None, Vendor.Generic)]
    public void The_minimum_is_a_floor(string fixture, Vendor? minimum, Vendor expected)
    {
        var choice = minimum is { } m ? HostVendor.Detect(Fixture(fixture), m) : HostVendor.Detect(Fixture(fixture));
        Assert.Equal(expected, choice.Vendor);
        Assert.Equal(minimum ?? HostVendor.DefaultMinimum, choice.Minimum);
        var rules = HostVendor.Detect(Fixture(fixture), Vendor.None);
        Assert.Equal(rules.Vendor, choice.RuleVendor);
        Assert.Equal(rules.Reason, choice.Reason);
        string last = choice.Explanation[^1];
        Assert.StartsWith($"chose {expected}: ", last);
        if (expected == rules.Vendor) Assert.Equal(rules.Explanation[^1], last);
        else
        {
            Assert.Contains($"the minimum is {choice.Minimum}", last);
            Assert.Contains($"the host rules alone pick {rules.Vendor}: ", last);
        }
    }

    [Fact]
    public void This_machine_gets_a_choice_with_reasons()
    {
        var choice = HostVendor.Detect("/");
        Assert.True(choice.Explanation.Count >= 3);
        Assert.StartsWith("chose ", choice.Explanation[^1]);
    }
}
