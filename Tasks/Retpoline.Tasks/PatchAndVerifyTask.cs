using Microsoft.Build.Framework;
using Retpoline.Patching;
using Retpoline.Policy;
using Retpoline.Reporting;

namespace Retpoline.Tasks;

/// <summary>
/// The post-link step for every output a build-system driver produced: patch the thunks of each linked file for the
/// vendor, verify it (a static library: each of its objects, unpatched — the thunks come with the final link), and
/// report by policy. Each output has its own stamp, written only when it passed without a warning, so a failed
/// verification fails the next build too and a warning is shown again by every build instead of vanishing after one.
/// </summary>
public sealed class PatchAndVerifyTask : Microsoft.Build.Utilities.Task
{
    /// <summary>
    /// RetpolineLinkedOutput items: the file, and metadata `Kind` (Exe, Library, Module, StaticLibrary), `Patch`
    /// (false: verify only), `Objects` (a static library's objects, verified one by one), `LinkerMap` (the link's map:
    /// each finding names the object or archive member it came from) and `Stamp`.
    /// </summary>
    [Required] public ITaskItem[] Outputs { get; set; } = [];
    public string Vendor { get; set; } = "Generic";
    public string CallSites { get; set; } = "Thunk";
    public string Policy { get; set; } = "Error";
    public bool Strict { get; set; }
    public bool HardenSls { get; set; }
    public ITaskItem[] Allow { get; set; } = [];
    public string ReportFile { get; set; } = "";
    /// <summary>RetpolineMaxFindings: errors listed per file (empty: 20, 0: all), as for every other kind of project.</summary>
    public string MaxFindings { get; set; } = "";
    int maxFindings;
    /// <summary>Messages name each file relative to this folder (`[bin/Release/libx.so]`), as the user sees it.</summary>
    public string ProjectDirectory { get; set; } = "";

    public override bool Execute()
    {
        // Runtime: the file keeps the Generic thunks (its start-up routine rewrites them in memory at load).
        bool runtime = Vendor.Equals("Runtime", StringComparison.OrdinalIgnoreCase);
        var vendor = Retpoline.Vendor.Generic;
        if (!runtime && (!Enum.TryParse(Vendor, ignoreCase: true, out vendor) || !Enum.IsDefined(vendor)))
            return Fail(Toolchain.ToolchainCodes.InvalidPropertyOrItem, $"RetpolineVendor must be Generic, Amd, None or Runtime, not '{Vendor}'");
        if (!Enum.TryParse<CallSiteMode>(CallSites, ignoreCase: true, out var callSites))
            return Fail(Toolchain.ToolchainCodes.InvalidPropertyOrItem, $"RetpolineCallSites must be Thunk or Inline, not '{CallSites}'");
        ProjectPolicy policy;
        try
        {
            policy = ProjectPolicy.From(Policy, Strict, HardenSls, DiagnosticLogging.WaiverItems(WaiverItem.Allow, Allow));
            maxFindings = FindingCap.Parse(MaxFindings);
        }
        catch (InvalidSettingException e) { return DiagnosticLogging.LogInvalidSetting(Log, e); }
        var projectOptions = policy.VerifyOptions;
        foreach (var output in Outputs) DeleteStamp(output);

        var reports = new List<VerifyReport>();
        foreach (var output in Outputs)
        {
            bool warned = false, failed = false;
            int first = reports.Count;
            try
            {
                string path = output.ItemSpec;
                var options = WithMap(projectOptions, output.GetMetadata("LinkerMap"));
                if (output.GetMetadata("Kind") == "StaticLibrary")
                {
                    foreach (var obj in output.GetMetadata("Objects").Split(';', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var clock = System.Diagnostics.Stopwatch.StartNew();
                        var report = Verifier.Verify(obj, options);
                        Log.LogMessage(MessageImportance.Normal, "Retpoline: verify {0} ms", DiagnosticLogging.Ms(clock.Elapsed));
                        warned |= Report(report, obj, policy.Mode);
                        reports.Add(report);
                    }
                }
                else if (!string.Equals(output.GetMetadata("Patch"), "false", StringComparison.OrdinalIgnoreCase))
                {
                    var (patched, verified, patchTime, verifyTime) = Patcher.PatchThenVerify(path, vendor, callSites, options);
                    // A patch warning (RPL0014 for Amd, a stripped file) stays visible on every build, like a verify warning.
                    foreach (var d in patched.Diagnostics) warned |= DiagnosticLogging.LogVerifyDiagnostic(Log, d, Shown(path), PolicyMode.Error); // RetpolinePolicy is for findings, not for patching
                    Log.LogMessage(MessageImportance.Normal, "Retpoline: patched {0} for {1}: {2} thunk(s) changed, {3} already in form{4}",
                        path, vendor, patched.Changes.Count, patched.Unchanged,
                        callSites == CallSiteMode.Inline ? $", {patched.SitesInlined} call site(s) inlined" : "");
                    Log.LogMessage(MessageImportance.Normal, "Retpoline: patch {0} ms, verify {1} ms", DiagnosticLogging.Ms(patchTime), DiagnosticLogging.Ms(verifyTime));
                    warned |= Report(verified, path, policy.Mode);
                    reports.Add(verified);
                    if (runtime && !verified.RuntimeRoutine)
                    {
                        Log.LogError(null, Toolchain.ToolchainCodes.RuntimeRoutineMissing, null, path, 0, 0, 0, 0,
                            "RetpolineVendor=Runtime, but {0} does not link the run-time routine (no '{1}' symbol): nothing would patch its thunks at load", Shown(path), Runtime.RuntimeRecord.Symbol);
                        failed = true;
                    }
                }
                else
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    var report = Verifier.Verify(path, options);
                    Log.LogMessage(MessageImportance.Normal, "Retpoline: verify {0} ms (not patched)", DiagnosticLogging.Ms(clock.Elapsed));
                    warned |= Report(report, path, policy.Mode);
                    reports.Add(report);
                }
            }
            catch (RetpolineException e)
            {
                Log.LogError(null, e.Code, null, e.FilePath, 0, 0, 0, 0, "{0}", e.Message);
                failed = true;
            }
            failed |= reports.Skip(first).Any(r => policy.Mode.Fails(r));
            if (!failed && !warned) WriteStamp(output, string.Join("\n", reports.Skip(first).Select(TextReport.Summary)));
        }

        // Never onto a binary it verified (RPL0111), never half-written: a new file renamed into place.
        if (ReportFile.Length > 0)
        {
            try { Retpoline.IO.ReportFile.Write(ReportFile, Outputs.Select(o => o.ItemSpec), f => SarifWriter.Write(f, reports), createDirectory: true); }
            catch (RetpolineException e) { Log.LogError(null, e.Code, null, e.FilePath, 0, 0, 0, 0, "{0}", e.Message); }
        }
        return !Log.HasLoggedErrors;
    }

    /// <summary>Logs a report's diagnostics by policy and its allowed findings; true when something was a warning.</summary>
    bool Report(VerifyReport report, string path, PolicyMode mode)
    {
        bool warned = false;
        var (listed, hidden) = FindingCap.Apply(report.Diagnostics, maxFindings);
        foreach (var d in listed) warned |= DiagnosticLogging.LogVerifyDiagnostic(Log, d, Shown(path), mode);
        if (hidden > 0) Log.LogMessage(MessageImportance.High, "{0}", FindingCap.More(Shown(path), hidden));
        DiagnosticLogging.LogWaived(Log, report);
        Log.LogMessage(MessageImportance.Normal, "{0}", TextReport.Summary(report));
        return warned;
    }

    /// <summary>The output's linker map, when its driver wrote one, with object paths relative to the project.</summary>
    VerifyOptions WithMap(VerifyOptions options, string map) => map.Length == 0 || !File.Exists(map) ? options
        : options with { Map = Elf.LinkerMap.Read(map, ProjectDirectory.Length > 0 ? ProjectDirectory : null) };

    string Shown(string path) => ProjectDirectory.Length > 0 ? Path.GetRelativePath(ProjectDirectory, Path.GetFullPath(path)) : path;

    static void DeleteStamp(ITaskItem output)
    {
        string stamp = output.GetMetadata("Stamp");
        if (stamp.Length > 0) File.Delete(stamp);
    }

    static void WriteStamp(ITaskItem output, string summary)
    {
        string stamp = output.GetMetadata("Stamp");
        if (stamp.Length == 0) return;
        Directory.CreateDirectory(Path.GetDirectoryName(stamp)!);
        File.WriteAllText(stamp, summary + "\n");
    }

    bool Fail(string code, string message)
    {
        Log.LogError(null, code, null, null, 0, 0, 0, 0, "{0}", message);
        return false;
    }
}
