using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Build.Framework;
using Retpoline.Policy;
using Retpoline.Reporting;

namespace Retpoline.Tasks;

/// <summary>
/// The policy for a project that references the package: every x86-64 ELF among the files that land in its output
/// (or publish) folder is verified, never patched (native assets are not ours to change). Files that are not ELF are
/// skipped by their first bytes; `RetpolineExclude` items exempt third-party files by name or glob (with a Reason),
/// and every exemption is logged. Files that passed are remembered by content hash in <see cref="CacheFile"/>, so a
/// no-op build verifies nothing again; a file that failed is never remembered, so it fails the next build too. A file
/// remembered with findings (under RetpolinePolicy Warning or None, or a warning such as RPL0013) is remembered with
/// them, and they are reported again on every build: a policy's warnings do not disappear after one build. What
/// decides a verdict besides the bytes (policy, strict, SLS, allow-list, this task and the engine) is part of the
/// cache's key, so changing any of it verifies everything again.
/// Files named explicitly (<see cref="Binaries"/>, the RetpolineBinary items) are the user's request to verify them:
/// one that is missing or not an x86-64 ELF file is warning RPL0213, not skipped silently like implicit output files.
/// </summary>
public sealed class VerifyOutputTask : Microsoft.Build.Utilities.Task
{
    /// <summary>Files in the output folder (full paths); duplicates and files that do not exist are ignored.</summary>
    public ITaskItem[] Files { get; set; } = [];
    /// <summary>RetpolineBinary items (full paths): like <see cref="Files"/>, but one that is missing or not an
    /// x86-64 ELF file is warning RPL0213 instead of being skipped without a word.</summary>
    public ITaskItem[] Binaries { get; set; } = [];
    /// <summary>RetpolineExclude: Include (or Pattern metadata) = file name, output-relative path or glob; Reason required.</summary>
    public ITaskItem[] Exclude { get; set; } = [];
    public ITaskItem[] Allow { get; set; } = [];
    public string Policy { get; set; } = "Error";
    public bool Strict { get; set; }
    public bool HardenSls { get; set; }
    /// <summary>The folder the files land in; exclusion patterns with a `/` match the path relative to it.</summary>
    public string OutputDirectory { get; set; } = "";
    public string ProjectDirectory { get; set; } = "";
    public string CacheFile { get; set; } = "";
    /// <summary>RetpolineMaxFindings: errors listed per file (empty: 20, 0: all); an unmitigated third-party library can have thousands.</summary>
    public string MaxFindings { get; set; } = "";
    int maxFindings;

    public override bool Execute()
    {
        ProjectPolicy policy;
        try
        {
            policy = ProjectPolicy.From(Policy, Strict, HardenSls,
                DiagnosticLogging.WaiverItems(WaiverItem.Exclude, Exclude).Concat(DiagnosticLogging.WaiverItems(WaiverItem.Allow, Allow)));
            maxFindings = FindingCap.Parse(MaxFindings);
        }
        catch (InvalidSettingException e) { return DiagnosticLogging.LogInvalidSetting(Log, e); }

        // What decides a verdict besides the bytes: a change here forgets every remembered result. The assemblies'
        // module version ids stand for the verifier itself (a new package version may judge the same bytes anew).
        // RetpolineExclude is not part of it: exclusions are decided before the cache is consulted, on every build,
        // and an exempt file is never remembered.
        string settings = $"v3;{policy.VerdictFingerprint};max={maxFindings};" +
            $"tasks={typeof(VerifyOutputTask).Assembly.ManifestModule.ModuleVersionId};engine={typeof(Verifier).Assembly.ManifestModule.ModuleVersionId}";
        var cache = LoadCache(settings);
        var byHash = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        foreach (var entry in cache.Values) byHash.TryAdd(entry.Hash, entry);
        var newCache = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        var verified = new List<ITaskItem>();
        int exempt = 0, skipped = 0, fromCache = 0;
        bool ok = true;

        var named = Binaries.Select(f => Path.GetFullPath(f.ItemSpec)).ToHashSet(StringComparer.Ordinal);
        foreach (string path in Files.Select(f => Path.GetFullPath(f.ItemSpec)).Concat(named).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            string shown = ProjectDirectory.Length > 0 ? Path.GetRelativePath(ProjectDirectory, path) : path;
            var decision = ShippedBinaries.Decide(new ShippedFile(path, ShippedBinaries.RelativeTo(OutputDirectory, path), "", named.Contains(path)), policy.Waivers);
            switch (decision.Verdict)
            {
                case ShippedVerdict.Missing:
                    if (decision.NamedButNotVerifiable)
                        Log.LogWarning(null, Toolchain.ToolchainCodes.BinaryNotX86_64Elf, null, shown, 0, 0, 0, 0,
                            "RetpolineBinary '{0}' was not verified: it does not exist (name a file the build produces or copies, or remove the item)", shown);
                    continue;
                case ShippedVerdict.NotX86_64Elf:
                    // Implicit output files (None/Content, package assets) are mostly not ELF at all: skipped silently.
                    // A file the user named is a request to verify it; not being able to is worth a coded warning.
                    if (decision.NamedButNotVerifiable)
                        Log.LogWarning(null, Toolchain.ToolchainCodes.BinaryNotX86_64Elf, null, shown, 0, 0, 0, 0,
                            "RetpolineBinary '{0}' was not verified: it is {1}, and retpolines are verified in x86-64 ELF files only (remove the item, or exempt the file: RetpolineExclude Include=\"{2}\" Reason=\"...\")",
                            shown, decision.Sniff.Describe(), Path.GetFileName(path));
                    skipped++; continue;
                case ShippedVerdict.DotNetAppHost:
                    Log.LogMessage(MessageImportance.Normal, "Retpoline: {0} is the .NET application host of {1}.dll (Microsoft's executable), not verified", shown, Path.GetFileName(path));
                    skipped++; continue;
                case ShippedVerdict.Exempt:
                    exempt++;
                    Log.LogMessage(MessageImportance.High, "Retpoline: {0} is exempt from verification (RetpolineExclude '{1}': {2})", shown, decision.Exemption!.Name, decision.Exemption.Reason);
                    continue;
            }

            var info = new FileInfo(path);
            if (cache.TryGetValue(path, out var known) && known.Length == info.Length && known.Ticks == info.LastWriteTimeUtc.Ticks)
            {
                newCache[path] = known; fromCache++; Replay(known, shown, policy.Mode); verified.Add(new Microsoft.Build.Utilities.TaskItem(path)); continue;
            }
            string hash = Hash(path);
            if (byHash.TryGetValue(hash, out var same))
            {
                newCache[path] = same with { Length = info.Length, Ticks = info.LastWriteTimeUtc.Ticks };
                fromCache++; Replay(same, shown, policy.Mode); verified.Add(new Microsoft.Build.Utilities.TaskItem(path)); continue;
            }
            // The same bytes under the same settings, verified by another project of this build (a library copied into
            // every project that references it, or the bin copy of a file being published): its verdict is this file's.
            string sharedKey = settings + "|" + hash;
            if (BuildShared.Get<SharedVerdict>(BuildEngine, "verified", sharedKey) is { } shared)
            {
                var entry = shared.Entry with { Length = info.Length, Ticks = info.LastWriteTimeUtc.Ticks };
                newCache[path] = entry;
                byHash.TryAdd(hash, entry);
                LogRemembered(entry, shown, policy.Mode);
                Log.LogMessage(MessageImportance.Normal, "{0}: {1} (the same bytes were verified earlier in this build)", path, shared.Verdict);
                verified.Add(new Microsoft.Build.Utilities.TaskItem(path));
                continue;
            }

            if (VerifyOne(path, shown, policy) is ({ } result, var verdict))
            {
                var entry = result with { Hash = hash, Length = info.Length, Ticks = info.LastWriteTimeUtc.Ticks };
                newCache[path] = entry;
                byHash.TryAdd(hash, entry);
                BuildShared.Set(BuildEngine, "verified", sharedKey, new SharedVerdict(entry, verdict));
                verified.Add(new Microsoft.Build.Utilities.TaskItem(path));
            }
            else ok = false;
        }

        Log.LogMessage(MessageImportance.Normal, "Retpoline: output policy: {0} ELF file(s) pass ({1} verified now, {2} unchanged since verified), {3} exempt, {4} other file(s) skipped",
            verified.Count, verified.Count - fromCache, fromCache, exempt, skipped);
        SaveCache(settings, newCache);
        return ok && !Log.HasLoggedErrors;
    }

    /// <summary>Verifies one file and reports its diagnostics by policy; the entry to remember (with the diagnostics
    /// it reported, to report again while the file is unchanged), or null when the file fails the policy; and the
    /// verdict, the summary line without the file's path.</summary>
    (CacheEntry? Entry, string Verdict) VerifyOne(string path, string shown, ProjectPolicy policy)
    {
        try
        {
            var report = Verifier.Verify(path, policy.VerifyOptions);
            var (listed, hidden) = FindingCap.Apply(report.Diagnostics, maxFindings);
            var reported = new List<CachedDiagnostic>();
            foreach (var d in listed)
            {
                DiagnosticLogging.LogVerifyDiagnostic(Log, d, shown, policy.Mode);
                reported.Add(new CachedDiagnostic(d.Code, d.Severity, d.Message, d.SourceFile, d.Line));
            }
            LogHidden(shown, hidden);
            DiagnosticLogging.LogWaived(Log, report);
            string summary = TextReport.Summary(report);
            Log.LogMessage(MessageImportance.Normal, "{0}", summary);
            string verdict = summary.StartsWith(report.Path + ": ", StringComparison.Ordinal) ? summary[(report.Path.Length + 2)..] : summary;
            return (policy.Mode.Fails(report) ? null : new CacheEntry("", 0, 0, reported, hidden), verdict);
        }
        catch (RetpolineException e)
        {
            Log.LogError(null, e.Code, null, shown, 0, 0, 0, 0, "{0}", e.Message);
            return (null, "");
        }
    }

    /// <summary>Errors past RetpolineMaxFindings: counted, not listed, and where to see them all.</summary>
    void LogHidden(string shown, int hidden)
    {
        if (hidden > 0) Log.LogMessage(MessageImportance.High, "{0}", FindingCap.More(shown, hidden));
    }

    /// <summary>A remembered file's diagnostics, reported again exactly as when it was verified (same policy: the
    /// policy is part of the cache key).</summary>
    void Replay(CacheEntry entry, string shown, PolicyMode mode)
    {
        if (!LogRemembered(entry, shown, mode)) return;
        Log.LogMessage(MessageImportance.Normal, "Retpoline: {0}: unchanged since verified; its {1} diagnostic(s) reported again", shown, entry.Diagnostics!.Count + entry.Hidden);
    }

    /// <summary>The diagnostics a remembered or shared verdict reported; false when there were none.</summary>
    bool LogRemembered(CacheEntry entry, string shown, PolicyMode mode)
    {
        if (entry.Diagnostics is not { Count: > 0 } diagnostics) return false;
        foreach (var d in diagnostics)
            DiagnosticLogging.LogVerifyDiagnostic(Log, new Diagnostic(d.Code, d.Severity, d.Message, SourceFile: d.SourceFile, Line: d.Line), shown, mode);
        LogHidden(shown, entry.Hidden);
        return true;
    }

    static string Hash(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }

    /// <summary>A diagnostic as reported, to report again while the file is unchanged.</summary>
    sealed record CachedDiagnostic(string Code, Severity Severity, string Message, string? SourceFile, int? Line);

    /// <summary>A file that did not fail the policy: its content hash, size and time (the fast check), and the
    /// diagnostics it reported (none for a clean pass), with the number of findings not shown.</summary>
    sealed record CacheEntry(string Hash, long Length, long Ticks, List<CachedDiagnostic>? Diagnostics = null, int Hidden = 0);

    /// <summary>A verdict shared with the other projects of this build: what to remember, and the summary line's
    /// verdict (without the path, which is each project's own).</summary>
    sealed record SharedVerdict(CacheEntry Entry, string Verdict);

    sealed record CacheDocument(string Settings, Dictionary<string, CacheEntry> Files);

    static readonly JsonSerializerOptions CacheJson = new() { WriteIndented = true };

    Dictionary<string, CacheEntry> LoadCache(string settings)
    {
        var result = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        if (CacheFile.Length == 0 || !File.Exists(CacheFile)) return result;
        try
        {
            // Anything unreadable (an older format, a truncated file) is an empty cache: everything is verified again.
            var doc = JsonSerializer.Deserialize<CacheDocument>(File.ReadAllText(CacheFile), CacheJson);
            if (doc?.Settings != settings || doc.Files is null) return result;
            foreach (var (path, entry) in doc.Files)
                if (entry?.Hash is { Length: > 0 }) result[path] = entry;
        }
        catch (IOException) { }
        catch (JsonException) { }
        return result;
    }

    void SaveCache(string settings, Dictionary<string, CacheEntry> entries)
    {
        if (CacheFile.Length == 0) return;
        var sorted = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        foreach (var (path, entry) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
            sorted[path] = entry.Diagnostics is { Count: 0 } ? entry with { Diagnostics = null } : entry;
        string text = JsonSerializer.Serialize(new CacheDocument(settings, sorted), CacheJson) + "\n";
        if (File.Exists(CacheFile) && File.ReadAllText(CacheFile) == text) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(CacheFile))!);
        File.WriteAllText(CacheFile, text);
    }
}
