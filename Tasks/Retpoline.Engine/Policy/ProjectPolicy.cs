namespace Retpoline.Policy;

/// <summary>
/// What decides a project's verdicts besides the bytes: RetpolinePolicy, RetpolineStrict, RetpolineHardenSls and its
/// waivers. The build's tasks and `retpoline audit` each build one from what they read, so both verify a file with the
/// same <see cref="VerifyOptions"/> and judge it by the same mode.
/// </summary>
public sealed record ProjectPolicy(PolicyMode Mode, bool Strict, bool HardenSls, WaiverSet Waivers)
{
    public static readonly ProjectPolicy Default = new(PolicyMode.Error, false, false, WaiverSet.Empty);

    /// <exception cref="InvalidSettingException">A bad RetpolinePolicy or a waiver without a Reason (RPL0208).</exception>
    public static ProjectPolicy From(string policy, bool strict, bool hardenSls, IEnumerable<WaiverItem> waivers)
        => new(PolicyModes.Parse(policy), strict, hardenSls, Policy.Waivers.Parse(waivers));

    public VerifyOptions VerifyOptions => new() { Strict = Strict, HardenSls = HardenSls, Allow = Waivers.Findings };

    /// <summary>What a verified file's verdict depends on besides its bytes, as one string: a remembered verdict is
    /// reused only under the same one.</summary>
    public string VerdictFingerprint => $"policy={Mode};strict={Strict};sls={HardenSls};{Waivers.FindingsFingerprint}";
}
