using System.Security.Cryptography;
using Microsoft.Build.Framework;
using Retpoline.Policy;
using Retpoline.Reporting;

namespace Retpoline.Tasks;

/// <summary>
/// The policy for a project that references the package: every x86-64 ELF among the files that land in its output
/// (or publish) folder is verified, never patched (native assets are not ours to change). Files that are not ELF are
/// skipped by their first bytes; `RetpolineExclude` items exempt third-party files by name or glob (with a Reason),
/// and every exemption is logged. Files that passed are remembered by content hash in <see cref="CacheFile"/>, so a
/// no-op build verifies nothing again; a file that failed is never remembered, so it fails the next build too.
/// </summary>
public sealed class VerifyOutputTask : Microsoft.Build.Utilities.Task
{
    /// <summary>Files in the output folder (full paths); duplicates and files that do not exist are ignored.</summary>
    public ITaskItem[] Files { get; set; } = [];
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
    /// <summary>Findings shown per file; an unmitigated third-party library can have thousands.</summary>
    public int MaxFindingsPerFile { get; set; } = 20;

    [Output] public ITaskItem[] Verified { get; set; } = [];

    const ushort MachineX86_64 = 0x3E;

    public override bool Execute()
    {
        if (Policy is not ("Error" or "Warning" or "None"))
            return Fail($"RetpolinePolicy must be Error, Warning or None, not '{Policy}'");
        var excludes = new List<(string Name, string Pattern, string Reason)>();
        foreach (var item in Exclude)
        {
            string reason = item.GetMetadata("Reason");
            if (string.IsNullOrWhiteSpace(reason))
                return Fail($"RetpolineExclude '{item.ItemSpec}' needs a Reason (why may this binary ship unverified?)");
            // MSBuild expands `*` in Include against files, so a glob is written escaped (%2A) or in Pattern.
            excludes.Add((item.ItemSpec, item.GetMetadata("Pattern") is { Length: > 0 } p ? p : item.ItemSpec, reason));
        }
        var rules = new List<AllowRule>();
        foreach (var item in Allow)
        {
            string reason = item.GetMetadata("Reason");
            if (string.IsNullOrWhiteSpace(reason))
                return Fail($"RetpolineAllow '{item.ItemSpec}' needs a Reason (why is this indirect branch acceptable?)");
            rules.Add(new AllowRule(item.GetMetadata("Pattern") is { Length: > 0 } p ? p : item.ItemSpec, reason));
        }

        // What decides a verdict besides the bytes: a change here forgets every remembered result.
        string settings = $"v1;policy={Policy};strict={Strict};sls={HardenSls};" + string.Join(";", rules.Select(r => $"allow={r.Pattern}"));
        var cache = LoadCache(settings);
        var newCache = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        var verified = new List<ITaskItem>();
        int exempt = 0, skipped = 0, fromCache = 0;
        bool ok = true;

        foreach (string path in Files.Select(f => Path.GetFullPath(f.ItemSpec)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            if (!File.Exists(path)) continue;
            string relative = OutputDirectory.Length > 0 ? Path.GetRelativePath(OutputDirectory, path).Replace('\\', '/') : Path.GetFileName(path);
            string shown = ProjectDirectory.Length > 0 ? Path.GetRelativePath(ProjectDirectory, path) : path;
            if (!IsX86_64Elf(path)) { skipped++; continue; }
            if (IsDotNetAppHost(path))
            {
                Log.LogMessage(MessageImportance.Normal, "Retpoline: {0} is the .NET application host of {1}.dll (Microsoft's executable), not verified", shown, Path.GetFileName(path));
                skipped++; continue;
            }

            var match = excludes.FirstOrDefault(e => Glob.IsMatch(e.Pattern, Path.GetFileName(path)) || Glob.IsMatch(e.Pattern, relative));
            if (match.Pattern is not null)
            {
                exempt++;
                Log.LogMessage(MessageImportance.High, "Retpoline: {0} is exempt from verification (RetpolineExclude '{1}': {2})", shown, match.Name, match.Reason);
                continue;
            }

            var info = new FileInfo(path);
            if (cache.TryGetValue(path, out var known) && known.Length == info.Length && known.Ticks == info.LastWriteTimeUtc.Ticks)
            {
                newCache[path] = known; fromCache++; verified.Add(new Microsoft.Build.Utilities.TaskItem(path)); continue;
            }
            string hash = Hash(path);
            if (cache.Values.Any(c => c.Hash == hash))
            {
                newCache[path] = new CacheEntry(hash, info.Length, info.LastWriteTimeUtc.Ticks); fromCache++; verified.Add(new Microsoft.Build.Utilities.TaskItem(path)); continue;
            }

            if (VerifyOne(path, shown, rules))
            {
                newCache[path] = new CacheEntry(hash, info.Length, info.LastWriteTimeUtc.Ticks);
                verified.Add(new Microsoft.Build.Utilities.TaskItem(path));
            }
            else ok = false;
        }

        Verified = verified.ToArray();
        Log.LogMessage(MessageImportance.Normal, "Retpoline: output policy: {0} ELF file(s) pass ({1} verified now, {2} unchanged since verified), {3} exempt, {4} other file(s) skipped",
            verified.Count, verified.Count - fromCache, fromCache, exempt, skipped);
        SaveCache(settings, newCache);
        return ok && !Log.HasLoggedErrors;
    }

    bool VerifyOne(string path, string shown, List<AllowRule> rules)
    {
        try
        {
            var report = Verifier.Verify(path, new VerifyOptions { Strict = Strict, HardenSls = HardenSls, Allow = rules });
            int shownCount = 0, hidden = 0;
            foreach (var d in report.Diagnostics)
            {
                if (d.Severity == Severity.Error && shownCount >= MaxFindingsPerFile) { hidden++; continue; }
                if (d.Severity == Severity.Error) shownCount++;
                DiagnosticLogging.Log(Log, d, shown, Policy);
            }
            if (hidden > 0)
                Log.LogMessage(MessageImportance.High, "Retpoline: {0}: {1} more finding(s) not shown; `retpoline verify {0}` lists them all", shown, hidden);
            Log.LogMessage(MessageImportance.Normal, "{0}", TextReport.Summary(report));
            bool failed = report.HasErrors && Policy == "Error";
            return !failed;
        }
        catch (RetpolineException e)
        {
            Log.LogError(null, e.Code, null, shown, 0, 0, 0, 0, "{0}", e.Message);
            return false;
        }
    }

    /// <summary>
    /// The .NET SDK's apphost for `name.dll` (this project's, or a referenced Exe's copied beside it): an executable
    /// `name` next to `name.dll` and `name.runtimeconfig.json`. It is Microsoft's binary, not this solution's code.
    /// </summary>
    static bool IsDotNetAppHost(string path)
        => Path.GetExtension(path).Length == 0 && File.Exists(path + ".dll") && File.Exists(path + ".runtimeconfig.json");

    /// <summary>ELF magic, 64-bit class, machine x86-64: the first 20 bytes, never the whole file.</summary>
    static bool IsX86_64Elf(string path)
    {
        Span<byte> head = stackalloc byte[20];
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            int n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            if (n < 4 || head[0] != 0x7F || head[1] != (byte)'E' || head[2] != (byte)'L' || head[3] != (byte)'F') return false;
            return n == head.Length && head[4] == 2 && (ushort)(head[18] | head[19] << 8) == MachineX86_64;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    static string Hash(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }

    sealed record CacheEntry(string Hash, long Length, long Ticks);

    Dictionary<string, CacheEntry> LoadCache(string settings)
    {
        var result = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        if (CacheFile.Length == 0 || !File.Exists(CacheFile)) return result;
        try
        {
            var lines = File.ReadAllLines(CacheFile);
            if (lines.Length == 0 || lines[0] != settings) return result;
            foreach (var line in lines.Skip(1))
            {
                var parts = line.Split('\t');
                if (parts.Length == 4 && long.TryParse(parts[1], out long len) && long.TryParse(parts[2], out long ticks))
                    result[parts[3]] = new CacheEntry(parts[0], len, ticks);
            }
        }
        catch (IOException) { }
        return result;
    }

    void SaveCache(string settings, Dictionary<string, CacheEntry> entries)
    {
        if (CacheFile.Length == 0) return;
        var lines = new List<string> { settings };
        lines.AddRange(entries.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Value.Hash}\t{e.Value.Length}\t{e.Value.Ticks}\t{e.Key}"));
        string text = string.Join("\n", lines) + "\n";
        if (File.Exists(CacheFile) && File.ReadAllText(CacheFile) == text) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(CacheFile))!);
        File.WriteAllText(CacheFile, text);
    }

    bool Fail(string message)
    {
        Log.LogError(null, Toolchain.ToolchainCodes.BadItem, null, null, 0, 0, 0, 0, "{0}", message);
        return false;
    }
}
