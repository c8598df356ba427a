using System.Security.Cryptography;
using Retpoline.IO;
using Retpoline.Patching;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Tests;

/// <summary>
/// A patched file keeps everything it was: mode bits (setuid/setgid included), owner and group, every extended
/// attribute (file capabilities, POSIX ACLs, user.*), its hard links; a patch that cannot keep one is refused with
/// the original untouched. The new file is never readable by anyone else and never left behind: not on a full
/// disk, not after kill -9 at any point, not under a 255-byte name. Tests that need root say so and print why they
/// checked less when they run without it.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PatchRobustnessTests(FixtureSet fx, ITestOutputHelper output)
{
    const string AptLine = "apt-get install libcap2-bin acl attr";

    static string Tool(string name) => NativeToolchain.Which(name)
        ?? throw new NativeToolchainException($"'{name}' is not installed; the patch robustness tests need setcap/getcap, setfacl/getfacl and setfattr/getfattr: {AptLine}");

    static readonly HashSet<string> AttributeTools = ["setcap", "getcap", "setfacl", "getfacl", "setfattr", "getfattr"];

    static string Run(string tool, params string[] args)
        => NativeToolchain.Run(AttributeTools.Contains(tool) ? Tool(tool) : NativeToolchain.Require(tool, "coreutils"), args).EnsureSuccess().StdOut;

    /// <summary>`stat -c FORMAT`: mode in octal with the set-id bits, owner, group, link count.</summary>
    static string Stat(string path, string format = "%a %u:%g %h") => Run("stat", "-c", format, path).Trim();

    static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Everything a patch must keep besides the bytes, as one comparable string.</summary>
    static string Metadata(string path)
        => Stat(path) + "\n" + Run("getfattr", "--absolute-names", "-d", "-m", "-", "-e", "hex", path) + Run("getfacl", "--absolute-names", "-p", path);

    static string[] OtherEntries(string path) => Directory.GetFileSystemEntries(Path.GetDirectoryName(path)!).Where(e => e != path).Select(Path.GetFileName).ToArray()!;

    string Copy(string label) => fx.CopyOf(FixtureSet.GccExeNoPlt, label);

    [Theory]
    [InlineData("6755")]
    [InlineData("4755")]
    [InlineData("2711")]
    [InlineData("1755")]
    [InlineData("0700")]
    public void Patch_KeepsEveryModeBit_AndTheOwner(string mode)
    {
        string path = Copy($"mode-{mode}");
        if (ToolProcess.IsRoot) Run("chown", "1234:1234", path); // before chmod: chown clears S_ISUID/S_ISGID
        Run("chmod", mode, path);
        string before = Stat(path);
        Assert.StartsWith(mode.TrimStart('0'), before); // the premise

        var result = Patcher.Patch(path, Vendor.None);
        Assert.True(result.Written);
        Assert.Equal(before, Stat(path));
        Assert.Empty(result.Diagnostics);
        Assert.Empty(OtherEntries(path));
        if (!ToolProcess.IsRoot) output.WriteLine("not root: the owner 1234:1234 part was not checked (only root can give a file to another user)");
    }

    [Fact]
    public void Patch_KeepsCapabilitiesAclsAndUserAttributes()
    {
        Tool("getfattr"); Tool("getfacl"); Tool("getcap");
        string path = Copy("xattrs");
        // Up front: does this file system store extended attributes at all? (tmpfs, ext4, xfs, btrfs do.)
        var probe = NativeToolchain.Run(Tool("setfattr"), ["-n", "user.retpoline-probe", "-v", "1", path]);
        if (!probe.Succeeded && probe.StdErr.Contains("not supported", StringComparison.OrdinalIgnoreCase))
        {
            output.WriteLine($"skipped: the file system of {path} has no extended attributes ({probe.StdErr.Trim()})");
            return;
        }
        probe.EnsureSuccess();
        Run("setfattr", "-x", "user.retpoline-probe", path);

        Run("setfattr", "-n", "user.note", "-v", "kept by patch", path);
        Run("setfacl", "-m", "u:1234:r", path);
        if (ToolProcess.IsRoot) Run("setcap", "cap_net_raw+ep", path); // last: a chown or write would clear it
        else output.WriteLine("not root: security.capability was not set (setcap needs CAP_SETFCAP)");
        string before = Metadata(path);
        Assert.Contains("user.note", before);
        Assert.Contains("user:1234:r--", before);
        if (ToolProcess.IsRoot) Assert.Contains("security.capability", before);

        foreach (var vendor in new[] { Vendor.None, Vendor.Amd, Vendor.Generic })
        {
            Assert.True(Patcher.Patch(path, vendor).Written);
            Assert.Equal(before, Metadata(path));
        }
        if (ToolProcess.IsRoot) Assert.Equal($"{path} cap_net_raw=ep", Run("getcap", path).Trim());
        Assert.Equal(FixtureSet.ExpectedOutput[FixtureSet.GccExeNoPlt], FixtureSet.RunProgram(path));
        Assert.Empty(OtherEntries(path));
    }

    /// <summary>
    /// A directory's default ACL is inherited by every new file made in it, the patch's new file included; a file that
    /// had no ACL must not gain one (it would grant user 1234 access the original never gave).
    /// </summary>
    [Fact]
    public void Patch_DoesNotGiveTheFileTheDirectorysDefaultAcl()
    {
        string path = Copy("default-acl");
        string dir = Path.GetDirectoryName(path)!;
        var set = NativeToolchain.Run(Tool("setfacl"), ["-d", "-m", "u:1234:rwx", dir]);
        if (!set.Succeeded && set.StdErr.Contains("not supported", StringComparison.OrdinalIgnoreCase))
        {
            output.WriteLine($"skipped: no POSIX ACLs on this file system ({set.StdErr.Trim()})");
            return;
        }
        set.EnsureSuccess();
        string before = Metadata(path);
        Assert.DoesNotContain("user:1234", before); // the premise: the copy predates the default ACL

        Assert.True(Patcher.Patch(path, Vendor.None).Written);
        Assert.Equal(before, Metadata(path));
    }

    [Fact]
    public void Patch_RefusesAFileWithHardLinks_UnlessAskedToBreakThem()
    {
        string path = Copy("hard-links");
        string other = Path.Combine(Path.GetDirectoryName(path)!, "other-name");
        Run("ln", path, other);
        string original = Hash(path);

        var e = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, Vendor.None));
        Assert.Equal(Codes.HardLinks, e.Code);
        Assert.Contains("has 2 hard links", e.Message);
        Assert.Contains("--break-hard-links", e.Message);
        Assert.Equal(original, Hash(path));
        Assert.Equal("2", Stat(path, "%h"));
        Assert.False(Patcher.Patch(path, Vendor.Generic).Written); // nothing to write: no refusal

        var result = Patcher.Patch(path, Vendor.None, replace: new ReplaceOptions { BreakHardLinks = true });
        Assert.True(result.Written);
        Assert.Equal(Codes.HardLinks, Assert.Single(result.Diagnostics).Code);
        Assert.Equal(original, Hash(other)); // the other name keeps the unpatched file, as it was told
        Assert.NotEqual(original, Hash(path));
        Assert.Equal("1", Stat(path, "%h"));
    }

    [Theory]
    [InlineData("0444")]
    [InlineData("0555")]
    public void Patch_RefusesAReadOnlyFile_UnlessAsked(string mode)
    {
        string path = Copy($"read-only-{mode}");
        Run("chmod", mode, path);
        string original = Hash(path);
        var e = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, Vendor.None));
        Assert.Equal(Codes.ReadOnlyFile, e.Code);
        Assert.Equal($"is read-only (mode {mode}); refusing to replace it (nothing was written; --allow-read-only patches it anyway)", e.Message);
        Assert.Equal(original, Hash(path));

        Assert.True(Patcher.Patch(path, Vendor.None, replace: new ReplaceOptions { AllowReadOnly = true }).Written);
        Assert.Equal(mode.TrimStart('0'), Stat(path, "%a"));
    }

    /// <summary>
    /// An ordinary user who may write the directory must not silently take over someone else's file, nor replace a file
    /// it may not write, nor drop a capability it may not set. As root the test runs the real tool as user nobody.
    /// </summary>
    [Fact]
    public void AsAnotherUser_PatchRefusesToTakeOverChangeOrStripAFile()
    {
        if (!ToolProcess.IsRoot)
        {
            output.WriteLine("not root: cannot run the tool as another user; the refusals are checked by the root-owned cases above");
            return;
        }
        using var dir = new TempDirectory("retpoline-nobody-");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("777", 8)); // nobody may create files here
        string Put(string name, string owner, string mode)
        {
            string p = dir.Copy(fx.Get(FixtureSet.GccExeNoPlt), name);
            Run("chown", owner, p);
            Run("chmod", mode, p);
            return p;
        }
        string rootFile = Put("root-file", "0:0", "755"), mine = Put("mine", $"{ToolProcess.Nobody}:{ToolProcess.Nobody}", "755"),
            wrongGroup = Put("wrong-group", $"{ToolProcess.Nobody}:0", "775"), capped = Put("capped", $"{ToolProcess.Nobody}:{ToolProcess.Nobody}", "755");
        Run("setcap", "cap_net_raw+ep", capped);
        var hashes = new[] { rootFile, mine, wrongGroup, capped }.ToDictionary(p => p, Hash);

        ProcessResult Patch(params string[] args) => ToolProcess.Run(["patch", "--vendor", "None", .. args], dir.Path, asNobody: true);
        void Refused(ProcessResult r, string file, string code, string text)
        {
            Assert.True(r.ExitCode == 2, $"{r.CommandLine}: exit {r.ExitCode}: {r.All()}");
            Assert.Equal($"retpoline: error {code}: {file}: {text}", r.All());
            Assert.Equal(hashes[file], Hash(file));
        }

        Refused(Patch(rootFile), rootFile, Codes.ReadOnlyFile,
            $"is not writable by uid {ToolProcess.Nobody} (owner 0:0, mode 0755); refusing to replace it (nothing was written; --allow-read-only patches it anyway)");
        Refused(Patch("--allow-read-only", rootFile), rootFile, Codes.OwnerNotKept,
            $"is owned by 0:0 and uid {ToolProcess.Nobody} cannot give the new file that owner (it would be {ToolProcess.Nobody}:{ToolProcess.Nobody}); refusing (nothing was written; run as the owner or root, or --allow-owner-change)");
        Refused(Patch(wrongGroup), wrongGroup, Codes.OwnerNotKept,
            $"is owned by {ToolProcess.Nobody}:0 and uid {ToolProcess.Nobody} cannot give the new file that owner (it would be {ToolProcess.Nobody}:{ToolProcess.Nobody}); refusing (nothing was written; run as the owner or root, or --allow-owner-change)");
        Refused(Patch(capped), capped, Codes.XattrNotCopied,
            "cannot copy extended attribute 'security.capability' onto the new file (Operation not permitted); the patched file would lose it: refusing (nothing was written)");
        Assert.Equal($"{capped} cap_net_raw=ep", Run("getcap", capped).Trim());

        // Its own file: patched, everything kept.
        var ok = Patch(mine);
        Assert.True(ok.ExitCode == 0, ok.All());
        Assert.Equal($"755 {ToolProcess.Nobody}:{ToolProcess.Nobody} 1", Stat(mine));

        // Asked to take the file over: it does, says so, and keeps no set-id bit for the new owner.
        Run("chmod", "4755", rootFile);
        hashes[rootFile] = Hash(rootFile);
        var taken = Patch("--allow-read-only", "--allow-owner-change", rootFile);
        Assert.True(taken.ExitCode == 0, taken.All());
        Assert.Contains($"retpoline: warning {Codes.OwnerNotKept}: {rootFile}: owner changed from 0:0 to {ToolProcess.Nobody}:{ToolProcess.Nobody} (--allow-owner-change); setuid/setgid dropped (mode 4755 -> 0755)", taken.StdErr);
        Assert.Equal($"755 {ToolProcess.Nobody}:{ToolProcess.Nobody} 1", Stat(rootFile));
        Assert.Equal(["capped", "mine", "root-file", "wrong-group"], Directory.GetFileSystemEntries(dir.Path).Select(e => Path.GetFileName(e)).Order().ToArray());
    }

    /// <summary>NAME_MAX is 255 bytes: the temp name must not grow with the file's name.</summary>
    [Fact]
    public void Patch_OfA255ByteName_Works()
    {
        string dir = fx.NewDirectory("long-name");
        string path = Path.Combine(dir, new string('n', 251) + ".elf");
        Assert.Equal(255, Path.GetFileName(path).Length);
        File.Copy(fx.Get(FixtureSet.GccExeNoPlt), path);
        Assert.True(Patcher.Patch(path, Vendor.None).Written);
        Assert.True(Patcher.Patch(path, Vendor.Generic).Written);
        Assert.Equal(Hash(fx.Get(FixtureSet.GccExeNoPlt)), Hash(path));
        Assert.Empty(OtherEntries(path));
    }

    [Fact]
    public void Patch_RemovesTheTempFilesADeadProcessOfOursLeft()
    {
        string path = Copy("leftovers");
        string dir = Path.GetDirectoryName(path)!;
        int dead = DeadPid();
        string[] ours = [$".retpoline-{dead}-0123456789abcdef.tmp", $".{Path.GetFileName(path)}.{dead}.{new string('a', 32)}.rpl-tmp"];
        // Kept: a live process's (pid 1 always exists), and names that only look similar.
        string[] kept = [".retpoline-1-0123456789abcdef.tmp", $".retpoline-{dead}-short.tmp", "retpoline-notes.tmp"];
        foreach (var n in ours.Concat(kept)) File.WriteAllText(Path.Combine(dir, n), "partial");

        Assert.True(Patcher.Patch(path, Vendor.None).Written);
        Assert.Equal(kept.Order(StringComparer.Ordinal), OtherEntries(path).Order(StringComparer.Ordinal));
    }

    static int DeadPid()
    {
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        for (int pid = max - 1; pid > 1; pid--)
            if (!Directory.Exists($"/proc/{pid}")) return pid;
        throw new InvalidOperationException("no free pid");
    }

    /// <summary>Where a file system has no O_TMPFILE the temp file is a name created 0600 with O_EXCL, removed on failure.</summary>
    [Fact]
    public void TempFile_WithoutOTmpfile_IsPrivate_AndLeavesNothingOnFailure()
    {
        string dir = fx.NewDirectory("named-temp");
        using (var temp = TempFile.Create(dir, 0x180, useTmpfile: false))
        {
            var names = Directory.GetFiles(dir);
            string name = Assert.Single(names);
            Assert.Matches(@"/\.retpoline-\d+-[0-9a-f]{16}\.tmp$", name);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(name));
            temp.Stream.Write("half"u8);
        } // disposed before ReplaceAt: a failed patch
        Assert.Empty(Directory.GetFiles(dir));

        string target = Path.Combine(dir, "target");
        File.WriteAllText(target, "old");
        using (var temp = TempFile.Create(dir, 0x180, useTmpfile: false))
        {
            temp.Stream.Write("new"u8);
            temp.ReplaceAt(target);
        }
        Assert.Equal("new", File.ReadAllText(target));
        Assert.Equal([target], Directory.GetFiles(dir));
    }

    /// <summary>
    /// A full disk: the new file cannot be written, so patch is RPL0107, the original is byte for byte what it was and
    /// no temp file is left. Needs a small file system of our own: a tmpfs mounted for the test (root).
    /// </summary>
    [Fact]
    public void Patch_OnAFullDisk_IsRpl0107_AndChangesNothing()
    {
        using var dir = new TempDirectory("retpoline-full-");
        string mount = Directory.CreateDirectory(Path.Combine(dir.Path, "small")).FullName;
        long size = new FileInfo(fx.Get(FixtureSet.GccExeNoPlt)).Length;
        // Room for the file once, not twice (tmpfs counts 4 KiB pages).
        long room = (size + 4095) / 4096 * 4096 + 4096;
        var mounted = NativeToolchain.Run("mount", ["-t", "tmpfs", "-o", $"size={room}", "tmpfs", mount]);
        if (!mounted.Succeeded)
        {
            output.WriteLine($"skipped the full-disk patch: cannot mount a small tmpfs ({mounted.StdErr.Trim()}); standard output on /dev/full is checked by ReportRobustnessTests");
            return;
        }
        try
        {
            string path = Path.Combine(mount, "app");
            File.Copy(fx.Get(FixtureSet.GccExeNoPlt), path);
            string original = Hash(path);
            var e = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, Vendor.None));
            Assert.Equal(Codes.IoError, e.Code);
            Assert.Equal("cannot write the patched file (No space left on device); the original is unchanged", e.Message);
            Assert.Equal(original, Hash(path));
            Assert.Equal(["app"], Directory.GetFileSystemEntries(mount).Select(e => Path.GetFileName(e)));

            // The same through the tool, and a report that does not fit: one line each, nothing left behind.
            var r = ToolProcess.Run(["patch", "--vendor", "None", "app"], mount);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"retpoline: error {Codes.IoError}: app: cannot write the patched file (No space left on device); the original is unchanged", r.All());
            var sarif = ToolProcess.Run(["verify", "--sarif", Path.Combine(mount, "app.sarif"), path], mount);
            Assert.Equal(2, sarif.ExitCode);
            Assert.StartsWith($"retpoline: error {Codes.IoError}: {Path.Combine(mount, "app.sarif")}: cannot write the report: No space left on device", sarif.StdErr.Trim());
            Assert.Equal(original, Hash(path));
            Assert.Equal(["app"], Directory.GetFileSystemEntries(mount).Select(e => Path.GetFileName(e)));
        }
        finally
        {
            NativeToolchain.Run("umount", [mount]).EnsureSuccess();
        }
    }

    /// <summary>
    /// SIGKILL at random points of patching a 48 MB file through the real tool: afterwards the file is the original or
    /// the patched one, byte for byte, and no temp file remains once the next run has started (the unnamed O_TMPFILE
    /// vanishes with the process; only the instant between naming it and the rename can leave a complete file, which
    /// the next run removes).
    /// </summary>
    [Fact]
    public void KillDash9_AtRandomPoints_LeavesTheOriginalOrThePatchedFile()
    {
        const int Kills = 16;
        string dir = fx.NewDirectory("kill-9");
        string path = Path.Combine(dir, "large");
        string padding = Path.Combine(fx.NewDirectory("kill-9-padding"), "padding.bin");
        var rng = new Random(20260201);
        var bytes = new byte[48 << 20];
        rng.NextBytes(bytes);
        File.WriteAllBytes(padding, bytes);
        NativeToolchain.Run(NativeToolchain.Objcopy, ["--add-section", $".rpl_padding={padding}", fx.Get(FixtureSet.GccExeNoPlt), path]).EnsureSuccess();
        File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32("755", 8));

        // The two states: expected bytes of each, from uninterrupted runs.
        string generic = Hash(path);
        Assert.True(ToolProcess.Run(["patch", "--vendor", "None", path], dir).Succeeded);
        string none = Hash(path);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(ToolProcess.Run(["patch", "--vendor", "Generic", path], dir).Succeeded);
        var full = clock.Elapsed;
        Assert.Equal(generic, Hash(path));

        int asBefore = 0, asAfter = 0, leftovers = 0;
        string state = generic;
        for (int i = 0; i < Kills; i++)
        {
            string vendor = state == generic ? "None" : "Generic";
            var delay = TimeSpan.FromMilliseconds(rng.NextDouble() * full.TotalMilliseconds * 1.1);
            using var p = ToolProcess.Start(["patch", "--vendor", vendor, path], dir);
            Thread.Sleep(delay);
            try { p.Kill(); } catch (InvalidOperationException) { } // already done
            p.WaitForExit();

            string now = Hash(path);
            Assert.True(now == generic || now == none, $"kill {i} after {delay.TotalMilliseconds:0} ms left a file that is neither the original nor the patched one");
            if (now == state) asBefore++; else asAfter++;
            state = now;
            foreach (var left in OtherEntries(path))
            {
                // Only the instant between link and rename leaves a name: a complete file, named by the killed process.
                Assert.Matches($@"^\.retpoline-{p.Id}-[0-9a-f]{{16}}\.tmp$", left);
                leftovers++;
            }
        }
        // The next run removes whatever a killed one left.
        Assert.True(ToolProcess.Run(["patch", "--vendor", state == generic ? "None" : "Generic", path], dir).Succeeded);
        Assert.Empty(OtherEntries(path));
        output.WriteLine($"{Kills} kills within {full.TotalMilliseconds:0} ms runs: {asBefore} left the file as it was, {asAfter} after the rename; {leftovers} complete temp file(s) seen between link and rename, removed by the next run");
    }
}
