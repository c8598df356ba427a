using System.Diagnostics;
using Microsoft.Build.Framework;
using Retpoline.Patching;
using Retpoline.Reporting;

namespace Retpoline.Tasks;

/// <summary>
/// After link: patch the thunks for the vendor, then verify the binary, and report by policy. Writes the stamp
/// file only on success, so a failed verification fails the next build too instead of looking up to date.
/// </summary>
public sealed class PatchAndVerifyTask : Microsoft.Build.Utilities.Task
{
    [Required] public string Binary { get; set; } = "";
    /// <summary>
    /// True when verify reported a warning (a finding under RetpolinePolicy=Warning, an exported thunk, …). The stamp
    /// is then not written, so the next build verifies again and the warning stays visible instead of vanishing after
    /// one build; the patch is idempotent, so nothing else changes.
    /// </summary>
    [Output] public bool Warned { get; set; }
    public string Vendor { get; set; } = "Generic";
    public string CallSites { get; set; } = "Thunk";
    public bool Patch { get; set; } = true;
    public string Policy { get; set; } = "Error";
    public bool Strict { get; set; }
    public bool HardenSls { get; set; }
    public ITaskItem[] Allow { get; set; } = [];
    public string ReportFile { get; set; } = "";
    public string StampFile { get; set; } = "";
    /// <summary>Messages name the binary relative to this folder (`[bin/Release/libx.so]`), as the user sees it.</summary>
    public string ProjectDirectory { get; set; } = "";

    string Shown => ProjectDirectory.Length > 0 ? Path.GetRelativePath(ProjectDirectory, Path.GetFullPath(Binary)) : Binary;

    public override bool Execute()
    {
        if (!Enum.TryParse<Vendor>(Vendor, ignoreCase: true, out var vendor) || !Enum.IsDefined(vendor))
            return Fail(Toolchain.ToolchainCodes.BadItem, $"RetpolineVendor must be Generic, Amd or None, not '{Vendor}'");
        if (!Enum.TryParse<CallSiteMode>(CallSites, ignoreCase: true, out var callSites))
            return Fail(Toolchain.ToolchainCodes.BadItem, $"RetpolineCallSites must be Thunk or Inline, not '{CallSites}'");
        if (Policy is not ("Error" or "Warning" or "None"))
            return Fail(Toolchain.ToolchainCodes.BadItem, $"RetpolinePolicy must be Error, Warning or None, not '{Policy}'");
        var rules = new List<AllowRule>();
        foreach (var item in Allow)
        {
            string reason = item.GetMetadata("Reason");
            if (string.IsNullOrWhiteSpace(reason))
                return Fail(Toolchain.ToolchainCodes.BadItem, $"RetpolineAllow '{item.ItemSpec}' needs a Reason (why is this indirect branch acceptable?)");
            // MSBuild expands `*` in Include against files (and drops an item that matches none), so a glob is
            // written escaped (Include="tramp%2A") or in the Pattern metadata.
            string pattern = item.GetMetadata("Pattern") is { Length: > 0 } p ? p : item.ItemSpec;
            rules.Add(new AllowRule(pattern, reason));
        }
        if (StampFile.Length > 0) File.Delete(StampFile);

        try
        {
            var options = new VerifyOptions { Strict = Strict, HardenSls = HardenSls, Allow = rules };
            VerifyReport report;
            if (Patch)
            {
                var (patched, verified, patchTime, verifyTime) = Patcher.PatchThenVerify(Binary, vendor, callSites, options);
                foreach (var d in patched.Diagnostics) DiagnosticLogging.Log(Log, d, Shown, "Error");
                Log.LogMessage(MessageImportance.Normal, "Retpoline: patched {0} for {1}: {2} thunk(s) changed, {3} already in form{4}",
                    Binary, vendor, patched.Changes.Count, patched.Unchanged,
                    callSites == CallSiteMode.Inline ? $", {patched.SitesInlined} call site(s) inlined" : "");
                Log.LogMessage(MessageImportance.Normal, "Retpoline: patch {0} ms, verify {1} ms", DiagnosticLogging.Ms(patchTime), DiagnosticLogging.Ms(verifyTime));
                report = verified;
            }
            else
            {
                var clock = Stopwatch.StartNew();
                report = Verifier.Verify(Binary, options);
                Log.LogMessage(MessageImportance.Normal, "Retpoline: verify {0} ms (RetpolinePatch is false)", DiagnosticLogging.Ms(clock.Elapsed));
            }
            foreach (var d in report.Diagnostics) Warned |= DiagnosticLogging.Log(Log, d, Shown, Policy);
            foreach (var f in report.Findings.Where(f => f.AllowedBy is not null))
                Log.LogMessage(MessageImportance.Normal, "Retpoline: allowed {0} '{1}' at 0x{2:x} in '{3}': {4}", f.Class, f.Instruction, f.Address, f.Function, f.AllowedBy);
            string summary = TextReport.Summary(report);
            Log.LogMessage(MessageImportance.Normal, "{0}", summary);
            if (ReportFile.Length > 0)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(ReportFile))!);
                using var f = File.Create(ReportFile);
                SarifWriter.Write(f, [report]);
            }
            if (Log.HasLoggedErrors) return false;
            if (StampFile.Length > 0 && !Warned) { Directory.CreateDirectory(Path.GetDirectoryName(StampFile)!); File.WriteAllText(StampFile, summary + "\n"); }
            return true;
        }
        catch (RetpolineException e)
        {
            Log.LogError(null, e.Code, null, e.FilePath, 0, 0, 0, 0, "{0}", e.Message);
            return false;
        }
    }

    bool Fail(string code, string message)
    {
        Log.LogError(null, code, null, null, 0, 0, 0, 0, "{0}", message);
        return false;
    }
}
