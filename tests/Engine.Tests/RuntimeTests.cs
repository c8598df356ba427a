using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Retpoline.Patching;
using Retpoline.Runtime;
using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// RetpolineVendor=Runtime: native/retpoline_runtime.c compiled with the flags the SDK gives it
/// (<see cref="RuntimeRoutineFlags"/>), linked into real programs and libraries with gcc and clang-14, run. The tests'
/// own builds add a compile-time fixture root, so each program decides from a host fixture
/// (tests/Engine.Tests/Fixtures/host) and must end up with exactly the thunk bytes `patch --vendor Host` writes for
/// that fixture — read by the program from its own memory, and by `retpoline status` from outside.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RuntimeTests(RuntimeTests.Builds b) : IClassFixture<RuntimeTests.Builds>
{
    static string HostFixture(string name) => Path.Combine(NativeToolchain.RepoRoot, "tests", "Engine.Tests", "Fixtures", "host", name);
    public static readonly string[] HostFixtures =
        [.. Directory.GetDirectories(Path.Combine(NativeToolchain.RepoRoot, "tests", "Engine.Tests", "Fixtures", "host")).Select(Path.GetFileName).Order()!];
    public static TheoryData<string> EveryHostFixture() => new(HostFixtures);

    /// <summary>What `patch` writes into each thunk for a vendor, from DESIGN.md §3 (<see cref="PatchTests.Expected"/>).</summary>
    static byte[] Form(Vendor v, string thunk)
    {
        bool notrack = thunk.Contains("_nt_", StringComparison.Ordinal);
        return PatchTests.Expected(v, thunk[(thunk.LastIndexOf('_') + 1)..], notrack);
    }

    static void AssertThunks(Vendor expected, IReadOnlyDictionary<string, byte[]> thunks, string because)
    {
        Assert.Equal(30, thunks.Count);
        foreach (var (name, bytes) in thunks)
            Assert.True(Form(expected, name).AsSpan().SequenceEqual(bytes), $"{because}: {name} holds {Hex(bytes)}, not the {expected} form {Hex(Form(expected, name))}");
    }

    static string Hex(byte[] b) => string.Join(' ', b.Select(x => x.ToString("x2")));

    // ---- the rules: every host fixture, the live bytes equal what --vendor Host picks -------------------------------

    [Theory]
    [MemberData(nameof(EveryHostFixture))]
    public void Every_host_fixture_ends_with_the_bytes_vendor_Host_picks(string fixture)
    {
        var host = HostVendor.Detect(HostFixture(fixture), Vendor.None);
        // Where the kernel's line alone decides, the routine does not read cpuinfo: the same vendor, and the rule's
        // reason or "spectre-line" when several rules agree.
        string reason = host.Reason;
        if (HostRules.SpectreLineDecides(HostRules.Classify(HostFacts.Read(HostFixture(fixture))), out var lineVendor, out var lineReason))
        {
            Assert.Equal(host.RuleVendor, lineVendor);
            reason = lineReason;
        }
        string program = b.Probe($"pie-{fixture}", "gcc", Vendor.None, fixture);

        using var running = RunningProbe.Start(program);
        var own = running.Report;
        Assert.Equal("1", own.Record["state"]);
        Assert.Equal(((int)host.Vendor).ToString(), own.Record["chosen"]);
        Assert.Equal(((int)host.RuleVendor).ToString(), own.Record["host"]);
        Assert.Equal(reason, own.Record["reason"]);
        Assert.Equal("host", own.Record["decided_by"]);
        AssertThunks(host.Vendor, own.Thunks, $"{fixture}, the program's own memory");
        Assert.Equal("125", own.Dispatch);

        // From outside: the same forms in /proc/PID/mem, and the same record.
        var module = Assert.Single(ProcessStatus.Read(running.Pid), m => m.Path == program);
        Assert.True(module.Runtime);
        Assert.Null(module.Problem);
        Assert.Equal(host.Vendor, module.Record!.Chosen);
        Assert.Equal(reason, module.Record.Reason);
        Assert.Equal(own.Record["mechanism"], module.Record.Mechanism);
        Assert.Equal(int.Parse(own.Record["patched"]), module.Record.Patched);
        var register = module.Thunks.Where(t => t.Register is not null).ToList();
        Assert.Equal(30, register.Count);
        Assert.All(register, t => Assert.Equal(ToForm(host.Vendor), t.Form));
        var ret = Assert.Single(module.Thunks, t => t.Register is null);
        Assert.Equal(("__x86_return_thunk", ThunkForm.Return), (ret.Name, ret.Form));
        // The reason status gives is the one --explain gives (or says the line alone decided).
        if (reason == host.Reason) Assert.StartsWith(host.Explanation[^1][$"chose {host.Vendor}: ".Length..], module.Record.Explain());
        else Assert.StartsWith("the kernel's spectre_v2 line", module.Record.Explain());
    }

    static ThunkForm ToForm(Vendor v) => v switch { Vendor.Amd => ThunkForm.Amd, Vendor.None => ThunkForm.None, _ => ThunkForm.Generic };

    /// <summary>
    /// Inputs no real kernel prints, decided alike by the engine and by the routine: the two read the files the same
    /// way (the first processor block, the first of each line, words split on spaces, the same reading limit).
    /// </summary>
    [Theory]
    [InlineData("long-block", "cpu-unknown", "Mitigation: Enhanced IBRS; IBPB: conditional", "vendor_id\t: GenuineIntel\nmodel name\t: x\nflags\t\t: {long} ibrs_enhanced\n\n")]
    [InlineData("no-bugs-line", "not-affected", "Not affected", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu\n\nprocessor\t: 1\nbugs\t\t: spectre_v2\n")]
    [InlineData("crlf", "eibrs", "Mitigation: Enhanced IBRS\r\n", "vendor_id\t: GenuineIntel\r\nflags\t\t: fpu ibrs_enhanced\r\nbugs\t\t: spectre_v1\r\n\r\n")]
    [InlineData("unknown-addition", "eibrs-unknown-addition", "Mitigation: Enhanced IBRS + Foo; IBPB: conditional", "vendor_id\t: GenuineIntel\nflags\t\t: ibrs_enhanced\nbugs\t\t:\n\n")]
    [InlineData("empty-line", "unknown-text", "", "vendor_id\t: AuthenticAMD\n")]
    [InlineData("flags-before-vendor", "eibrs", "Mitigation: Automatic IBRS", "\n\nflags\t\t: autoibrs\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu\nbugs\t\t: spectre_v2\n")]
    [InlineData("no-end", "eibrs", "Mitigation: Enhanced / Automatic IBRS", "vendor_id : GenuineIntel\nflags : ibrs_enhanced")]
    [InlineData("tab-in-flags", "eibrs-no-flag", "Mitigation: Enhanced IBRS", "vendor_id\t: GenuineIntel\nflags\t\t: fpu\tibrs_enhanced\nbugs\t\t: \n\n")]
    public void The_engine_and_the_routine_read_odd_files_alike(string name, string reason, string spectre, string cpuinfo)
    {
        string root = Path.Combine(b.Dir, "odd-" + name);
        Directory.CreateDirectory(Path.Combine(root, "sys/devices/system/cpu/vulnerabilities"));
        Directory.CreateDirectory(Path.Combine(root, "proc"));
        File.WriteAllText(Path.Combine(root, HostVendor.Spectre2File), spectre);
        File.WriteAllText(Path.Combine(root, HostVendor.CpuInfoFile), cpuinfo.Replace("{long}", string.Join(' ', Enumerable.Range(0, 3000).Select(i => $"f{i}"))));
        var host = HostVendor.Detect(root, Vendor.None);
        Assert.Equal(reason, host.Reason);
        var r = ProbeOutput.Parse(b.Run(b.Probe("odd-" + name, "gcc", Vendor.None, root)));
        string expected = HostRules.SpectreLineDecides(HostRules.Classify(HostFacts.Read(root)), out _, out var line) ? line : host.Reason;
        Assert.Equal((((int)host.Vendor).ToString(), expected), (r.Record["chosen"], r.Record["reason"]));
    }

    [Theory]
    [InlineData("intel-eibrs", Vendor.Amd, Vendor.Amd, "minimum")]
    [InlineData("intel-eibrs", Vendor.None, Vendor.None, "host")]
    [InlineData("amd-lfence", Vendor.Amd, Vendor.Amd, "host")]
    [InlineData("not-affected", Vendor.Amd, Vendor.Amd, "minimum")]
    public void The_minimum_is_a_floor(string fixture, Vendor minimum, Vendor expected, string decidedBy)
    {
        Assert.Equal(expected, HostVendor.Detect(HostFixture(fixture), minimum).Vendor);
        var r = ProbeOutput.Parse(b.Run(b.Probe($"min{minimum}-{fixture}", "gcc", minimum, fixture)));
        Assert.Equal(((int)expected).ToString(), r.Record["chosen"]);
        Assert.Equal(((int)minimum).ToString(), r.Record["minimum"]);
        Assert.Equal(decidedBy, r.Record["decided_by"]);
        AssertThunks(expected, r.Thunks, $"{fixture} with minimum {minimum}");
    }

    /// <summary>The default minimum, Generic: nothing could change, so the routine is not even in the link — only the record.</summary>
    [Fact]
    public void Minimum_Generic_links_a_record_and_no_routine()
    {
        string obj = b.Routine("gcc", shared: false, Vendor.Generic, "intel-eibrs");
        var symbols = FixtureSet.Nm(obj);
        Assert.Contains(RuntimeRecord.Symbol, symbols.Keys);
        Assert.DoesNotContain("retpoline_runtime_start", symbols.Keys);
        Assert.Null(ElfBits.Read(obj)[".preinit_array"]);
        Assert.Empty(FixtureSet.UndefinedSymbols(obj));

        var r = ProbeOutput.Parse(b.Run(b.Probe("min-generic", "gcc", Vendor.Generic, "intel-eibrs")));
        Assert.Equal(("2", "0", "0", "minimum"), (r.Record["state"], r.Record["minimum"], r.Record["chosen"], r.Record["decided_by"]));
        AssertThunks(Vendor.Generic, r.Thunks, "minimum Generic");
    }

    // ---- the routine itself -------------------------------------------------------------------------------------------

    /// <summary>
    /// The routine calls nothing (no libc, no memcpy a compiler might invent), has no indirect branch, and a program
    /// with it verifies clean under the default policy and is reported as Runtime.
    /// </summary>
    [Theory]
    [InlineData("gcc", false)]
    [InlineData("gcc", true)]
    [InlineData("clang-14", false)]
    [InlineData("clang-14", true)]
    public void The_routine_calls_nothing_and_verifies_clean(string compiler, bool shared)
    {
        string obj = b.Routine(compiler, shared, Vendor.None, fixture: null);
        var undefined = FixtureSet.UndefinedSymbols(obj);
        Assert.NotEmpty(undefined);
        Assert.All(undefined, s => Assert.StartsWith("__x86_indirect_thunk_", s));
        Assert.Empty(FixtureSet.ObjdumpIndirect(obj));
        Assert.NotNull(ElfBits.Read(obj)[shared ? ".init_array.00000" : ".preinit_array"]);
        // IBT-marked, as the thunks are: an input without the marking would take it from a -fcf-protection link.
        Assert.Contains("x86 feature: IBT", NativeToolchain.Run(NativeToolchain.Readelf, ["-n", obj]).EnsureSuccess().StdOut);

        string file = shared ? b.Library($"verify-{compiler}", compiler, Vendor.None, null) : b.Probe($"verify-{compiler}", compiler, Vendor.None, null);
        var report = Verifier.Verify(file);
        Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.DoesNotContain(report.Findings, f => f.Class is FindingClass.UserCode or FindingClass.Plt);
        Assert.True(report.RuntimeRoutine);
        Assert.Equal("Runtime", report.Vendor);
        Assert.All(report.Thunks.Where(t => t.Register.Length > 0), t => Assert.Equal(ThunkForm.Generic, t.Form));

        using var json = new MemoryStream();
        Reporting.JsonReport.Write(json, [report]);
        Assert.Contains("\"vendor\": \"Runtime\"", System.Text.Encoding.UTF8.GetString(json.ToArray()));
        Assert.Contains("Runtime: patched in memory at load", Reporting.TextReport.Summary(report));
    }

    /// <summary>A file without the routine reports the form its thunks share.</summary>
    [Fact]
    public void Verify_reports_the_vendor_of_a_file_without_the_routine()
    {
        string plain = b.Plain();
        Assert.Equal("Generic", Verifier.Verify(plain).Vendor);
        string copy = Path.Combine(b.Dir, "plain-none");
        File.Copy(plain, copy, overwrite: true);
        Patcher.Patch(copy, Vendor.None);
        Assert.Equal("None", Verifier.Verify(copy).Vendor);
    }

    // ---- every kind of module, both compilers ---------------------------------------------------------------------------

    [Theory]
    [InlineData("pie", "gcc")]
    [InlineData("no-pie", "gcc")]
    [InlineData("static", "gcc")]
    [InlineData("static-pie", "gcc")]
    [InlineData("pie", "clang-14")]
    [InlineData("no-pie", "clang-14")]
    [InlineData("static", "clang-14")]
    [InlineData("cf-protection", "gcc")]
    public void Every_executable_kind_patches_itself(string kind, string compiler)
    {
        string program = b.Probe($"{kind}-{compiler}", compiler, Vendor.None, "intel-eibrs", kind);
        var r = ProbeOutput.Parse(b.Run(program));
        Assert.Equal(("2", "30", "host"), (r.Record["chosen"], r.Record["patched"], r.Record["decided_by"]));
        AssertThunks(Vendor.None, r.Thunks, $"{kind} {compiler}");
        Assert.Equal("125", r.Dispatch);
        // A PIE verifies clean. A static link carries the C library's own indirect branches (Debian builds it without
        // retpolines), and a non-PIE one links the PLT (GCC's -fno-plt calls need the memory thunk there): none of
        // those may be the routine's.
        var report = Verifier.Verify(program);
        if (kind is "pie" or "cf-protection") Assert.False(report.HasErrors, string.Join("\n", report.Diagnostics.Select(d => d.Message)));
        Assert.DoesNotContain(report.Findings, f => f.Function.StartsWith("rpl_", StringComparison.Ordinal) || f.Function.StartsWith("retpoline_runtime", StringComparison.Ordinal));
        Assert.Equal("Runtime", report.Vendor);
    }

    [Theory]
    [InlineData("gcc")]
    [InlineData("clang-14")]
    public void A_shared_library_patches_its_own_thunks_before_its_user_runs(string compiler)
    {
        string lib = b.Library($"lib-{compiler}", compiler, Vendor.None, "intel-eibrs");
        string host = b.LibraryHost(lib, compiler);
        var r = ProbeOutput.Parse(b.Run(host, Path.GetDirectoryName(lib)), "lib");
        Assert.Equal(("2", "30"), (r.Record["chosen"], r.Record["patched"]));
        AssertThunks(Vendor.None, r.Thunks, $"a {compiler} library");
        Assert.Equal("125", r.Dispatch);
    }

    /// <summary>
    /// `dlopen` from this process — .NET, many threads — through NativeLibrary.Load, while two threads keep calling
    /// through a Runtime library loaded earlier: the new library patches only its own thunks, the old one keeps
    /// working, and `retpoline status` of this very process sees both.
    /// </summary>
    [Fact]
    public void Dlopen_into_a_multithreaded_dotnet_process()
    {
        string first = b.Library("dl-eibrs", "gcc", Vendor.None, "intel-eibrs");
        string second = b.Library("dl-lfence", "gcc", Vendor.None, "amd-lfence");
        var one = NativeLibrary.Load(first);
        var dispatchOne = Marshal.GetDelegateForFunctionPointer<DispatchFn>(NativeLibrary.GetExport(one, "libprobe_dispatch"));
        Assert.Equal(125, dispatchOne(10));

        int wrong = 0;
        using var stop = new CancellationTokenSource();
        var callers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
                if (dispatchOne(10) != 125) Interlocked.Increment(ref wrong);
        })).ToArray();
        foreach (var t in callers) t.Start();
        Thread.Sleep(50);
        var two = NativeLibrary.Load(second);
        Thread.Sleep(50);
        stop.Cancel();
        foreach (var t in callers) t.Join();
        Assert.Equal(0, wrong);

        var copyTwo = Marshal.GetDelegateForFunctionPointer<CopyFn>(NativeLibrary.GetExport(two, "libprobe_copy"));
        var record = new byte[RuntimeRecord.Size];
        var bodies = new byte[30 * 17];
        Assert.Equal(30, copyTwo(record, bodies));
        var parsed = RuntimeRecord.Parse(record)!;
        Assert.Equal((Vendor.Amd, "kernel-lfence", 30), (parsed.Chosen, parsed.Reason, parsed.Patched));
        for (int i = 0; i < 30; i++)
        {
            var (name, reg, notrack) = NativeTables.Thunks().ElementAt(i);
            Assert.Equal(PatchTests.Expected(Vendor.Amd, X86.Registers.Name(reg), notrack), bodies[(17 * i)..(17 * i + 17)]);
        }
        Assert.Equal(125, Marshal.GetDelegateForFunctionPointer<DispatchFn>(NativeLibrary.GetExport(two, "libprobe_dispatch"))(10));

        var modules = ProcessStatus.Read(Environment.ProcessId);
        var a = Assert.Single(modules, m => m.Path == first);
        var c = Assert.Single(modules, m => m.Path == second);
        Assert.All(a.Thunks.Where(t => t.Register is not null), t => Assert.Equal(ThunkForm.None, t.Form));
        Assert.All(c.Thunks.Where(t => t.Register is not null), t => Assert.Equal(ThunkForm.Amd, t.Form));
        Assert.Equal((Vendor.None, Vendor.Amd), (a.Record!.Chosen, c.Record!.Chosen));
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int DispatchFn(int rounds);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int CopyFn(byte[] record, byte[] bodies);

    [Fact]
    public void Fork_keeps_the_patched_thunks_and_exec_patches_again()
    {
        string output = b.Run(b.Probe("fork", "gcc", Vendor.None, "intel-eibrs"), args: "fork");
        foreach (var who in new[] { "main", "fork", "exec" })
        {
            var r = ProbeOutput.Parse(output, who);
            Assert.Equal("2", r.Record["chosen"]);
            AssertThunks(Vendor.None, r.Thunks, who);
            Assert.Equal("125", r.Dispatch);
        }
    }

    // ---- the environment ----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("generic", "0", "environment", 0x2)]
    [InlineData("GENERIC", "0", "environment", 0x2)]
    [InlineData("none", "2", "host", 0x4)]       // nothing weaker can be asked for: the value is ignored
    [InlineData("", "2", "host", 0x4)]
    public void The_environment_can_only_keep_Generic(string value, string chosen, string decidedBy, int flag)
    {
        string program = b.Probe("environment", "gcc", Vendor.None, "intel-eibrs");
        var r = ProbeOutput.Parse(b.Run(program, environment: new() { ["RETPOLINE_RUNTIME"] = value }));
        Assert.Equal((chosen, decidedBy), (r.Record["chosen"], r.Record["decided_by"]));
        Assert.Equal(flag, Convert.ToInt32(r.Record["flags"], 16) & 0x6);
        AssertThunks(chosen == "0" ? Vendor.Generic : Vendor.None, r.Thunks, $"RETPOLINE_RUNTIME={value}");
    }

    /// <summary>A setuid copy run by another user: AT_SECURE, so RETPOLINE_RUNTIME is ignored entirely.</summary>
    [Fact]
    public void A_setuid_copy_ignores_the_environment()
    {
        Assert.True(Environment.UserName == "root", "this test makes a setuid-root copy and runs it as nobody: run the suite as root (CI does)");
        string dir = Path.Combine(b.Dir, "setuid");
        Directory.CreateDirectory(dir);
        string copy = Path.Combine(dir, "probe-setuid");
        File.Copy(b.Probe("setuid", "gcc", Vendor.None, "intel-eibrs"), copy, overwrite: true);
        // nobody must reach the copy: every folder on the way is traversable.
        for (var d = new DirectoryInfo(dir); d is not null && d.FullName != Path.GetTempPath().TrimEnd('/'); d = d.Parent)
            d.UnixFileMode |= UnixFileMode.OtherExecute | UnixFileMode.GroupExecute;
        File.SetUnixFileMode(copy, UnixFileMode.SetUser | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var env = new Dictionary<string, string?> { ["RETPOLINE_RUNTIME"] = "generic" };
        string[] asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];

        var setuid = NativeToolchain.Run("setpriv", [.. asNobody, copy], environment: env).EnsureSuccess();
        var r = ProbeOutput.Parse(setuid.StdOut);
        Assert.Equal(("2", "host"), (r.Record["chosen"], r.Record["decided_by"]));
        Assert.Equal(0x1, Convert.ToInt32(r.Record["flags"], 16) & 0x7); // AT_SECURE, the value neither honoured nor read as "other"
        AssertThunks(Vendor.None, r.Thunks, "setuid, RETPOLINE_RUNTIME=generic ignored");

        // The same program without the setuid bit, as the same user: the environment counts.
        File.SetUnixFileMode(copy, File.GetUnixFileMode(copy) & ~UnixFileMode.SetUser);
        var plain = ProbeOutput.Parse(NativeToolchain.Run("setpriv", [.. asNobody, copy], environment: env).EnsureSuccess().StdOut);
        Assert.Equal(("0", "environment"), (plain.Record["chosen"], plain.Record["decided_by"]));
    }

    // ---- when the write cannot happen -----------------------------------------------------------------------------------

    /// <summary>No /proc, a read-only /proc, a seccomp filter against pwrite64: Generic everywhere, and the program runs.</summary>
    [Theory]
    [InlineData("noproc", "no-proc", 2)]      // ENOENT
    [InlineData("roproc", "write-refused", 30)] // EROFS
    [InlineData("seccomp", "write-refused", 1)] // EPERM
    public void Where_the_write_is_impossible_everything_stays_Generic(string sandbox, string decidedBy, int errno)
    {
        if (sandbox != "seccomp") Assert.True(Environment.UserName == "root", "mount namespaces need root: run the suite as root (CI does)");
        string program = b.Probe("sandboxed", "gcc", Vendor.None, "intel-eibrs");
        var run = NativeToolchain.Run(b.Sandbox(), [sandbox, program]);
        Assert.True(run.ExitCode == 0, $"{run.CommandLine} exited {run.ExitCode}: {run.StdErr}");
        var r = ProbeOutput.Parse(run.StdOut);
        Assert.Equal(("0", "2", decidedBy, errno.ToString()), (r.Record["chosen"], r.Record["host"], r.Record["decided_by"], r.Record["error"]));
        AssertThunks(Vendor.Generic, r.Thunks, sandbox);
        Assert.Equal("125", r.Dispatch);
        Assert.Equal("rw", MountOptionsOfProc()); // the sandbox's mounts stayed in its own namespace
    }

    static string MountOptionsOfProc()
        => File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')).First(f => f[1] == "/proc")[3].Split(',')[0];

    /// <summary>Check before write: a thunk that holds anything but the Generic body linked in is left exactly as it is.</summary>
    [Fact]
    public void A_tampered_thunk_is_left_alone()
    {
        string program = Path.Combine(b.Dir, "tampered");
        File.Copy(b.Probe("to-tamper", "gcc", Vendor.None, "intel-eibrs"), program, overwrite: true);
        var elf = ElfBits.Read(program);
        var amdR15 = Form(Vendor.Amd, "__x86_indirect_thunk_r15");
        var junk = Enumerable.Repeat((byte)0xcc, 17).ToArray();
        var bytes = File.ReadAllBytes(program);
        foreach (var (name, body) in new[] { ("__x86_indirect_thunk_r15", amdR15), ("__x86_indirect_thunk_nt_r14", junk) })
        {
            var s = elf.SymbolNamed(name);
            body.CopyTo(bytes, elf.FileOffset(s.SectionIndex, s.Value));
        }
        File.WriteAllBytes(program, bytes);

        var r = ProbeOutput.Parse(b.Run(program));
        Assert.Equal(("2", "28", "2"), (r.Record["chosen"], r.Record["patched"], r.Record["left_alone"]));
        Assert.Equal(amdR15, r.Thunks["__x86_indirect_thunk_r15"]);
        Assert.Equal(junk, r.Thunks["__x86_indirect_thunk_nt_r14"]);
        foreach (var (name, body) in r.Thunks.Where(t => t.Key is not ("__x86_indirect_thunk_r15" or "__x86_indirect_thunk_nt_r14")))
            Assert.Equal(Form(Vendor.None, name), body);
    }

    // ---- retpoline status -----------------------------------------------------------------------------------------------

    [Fact]
    public void Status_json_has_the_documented_shape()
    {
        using var running = RunningProbe.Start(b.Probe("status-json", "gcc", Vendor.None, "intel-eibrs"));
        var (code, stdout, stderr) = ToolRun("status", running.Pid.ToString(), "--json");
        Assert.True(code == 0, stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal(running.Pid, doc.RootElement.GetProperty("pid").GetInt32());
        var module = doc.RootElement.GetProperty("modules").EnumerateArray().Single(m => m.GetProperty("path").GetString() == running.Program);
        Assert.True(module.GetProperty("runtime").GetBoolean());
        Assert.Equal("None", module.GetProperty("choice").GetString());
        Assert.Contains("enhanced/automatic IBRS", module.GetProperty("reason").GetString());
        Assert.Contains("TEST build", module.GetProperty("reason").GetString());
        var thunks = module.GetProperty("thunks").EnumerateArray().ToList();
        Assert.Equal(31, thunks.Count);
        var rax = thunks.Single(t => t.GetProperty("name").GetString() == "__x86_indirect_thunk_rax");
        Assert.Equal(("rax", "None"), (rax.GetProperty("register").GetString(), rax.GetProperty("form").GetString()));
        Assert.Matches("^0x[0-9a-f]+$", rax.GetProperty("address").GetString());
        var ret = thunks.Single(t => t.GetProperty("name").GetString() == "__x86_return_thunk");
        Assert.Equal(System.Text.Json.JsonValueKind.Null, ret.GetProperty("register").ValueKind);
        Assert.Equal("Return", ret.GetProperty("form").GetString());

        var (textCode, text, _) = ToolRun("status", running.Pid.ToString());
        Assert.Equal(0, textCode);
        Assert.Contains($"{running.Program}: Runtime (minimum None), chose None: ", text);
        Assert.Contains("thunks in memory: 30 None, 1 Return", text);
    }

    [Fact]
    public void Status_of_a_process_without_such_modules_lists_none_and_a_missing_process_is_RPL0109()
    {
        using var running = RunningProbe.Start(b.Plain(), waitForReady: false);
        var (code, stdout, _) = ToolRun("status", running.Pid.ToString(), "--json");
        Assert.Equal(0, code);
        using (var doc = System.Text.Json.JsonDocument.Parse(stdout))
        {
            // The plain program has thunks (built with the retpoline flags) but no routine: listed, not Runtime.
            var m = doc.RootElement.GetProperty("modules").EnumerateArray().Single();
            Assert.False(m.GetProperty("runtime").GetBoolean());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, m.GetProperty("choice").ValueKind);
        }
        var sleeping = Process.Start(new ProcessStartInfo("sleep", "30") { RedirectStandardInput = true })!;
        try
        {
            var (c2, o2, _) = ToolRun("status", sleeping.Id.ToString(), "--json");
            Assert.Equal(0, c2);
            using var doc = System.Text.Json.JsonDocument.Parse(o2);
            Assert.Empty(doc.RootElement.GetProperty("modules").EnumerateArray());
        }
        finally { sleeping.Kill(); sleeping.WaitForExit(); }

        var (c3, _, e3) = ToolRun("status", "4194303");
        Assert.Equal(2, c3);
        Assert.Equal("retpoline: error RPL0109: /proc/4194303: no such process", e3.Trim());
        Assert.Equal(2, ToolRun("status", "12abc").Code);
        Assert.Equal(2, ToolRun("status", "1", "--minimum", "None").Code);
    }

    [Fact]
    public void Status_without_a_pid_tells_what_a_Runtime_module_chooses_here()
    {
        var host = HostVendor.Detect("/", Vendor.None);
        var (code, text, _) = ToolRun("status");
        Assert.Equal(0, code);
        Assert.Contains($"host rules: {host.RuleVendor}: ", text);
        Assert.Contains($"a Runtime module here chooses {HostVendor.AtLeast(host.RuleVendor, Vendor.Generic)} with minimum Generic (the default)", text);
        var (c2, json, _) = ToolRun("status", "--json", "--minimum", "None");
        Assert.Equal(0, c2);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(host.Vendor.ToString(), doc.RootElement.GetProperty("host").GetProperty("choice").GetString());
        Assert.Equal(2, ToolRun("status", "--minimum", "Weak").Code);
    }

    [Fact]
    public void Patch_vendor_Host_takes_the_same_minimum()
    {
        string file = Path.Combine(b.Dir, "host-minimum");
        File.Copy(b.Plain(), file, overwrite: true);
        var (code, stdout, _) = ToolRun("patch", "--vendor", "Host", "--minimum", "None", "--explain", file);
        Assert.Equal(0, code);
        var host = HostVendor.Detect("/", Vendor.None);
        Assert.Contains($"host: vendor {host.Vendor}", stdout);
        var (c2, o2, _) = ToolRun("patch", "--vendor", "Host", file);
        Assert.Equal(0, c2);
        Assert.Contains($"host: vendor {HostVendor.AtLeast(host.RuleVendor, HostVendor.DefaultMinimum)}", o2);
        Assert.Equal(2, ToolRun("patch", "--vendor", "None", "--minimum", "None", file).Code);
        Assert.Equal(2, ToolRun("patch", "--vendor", "Host", "--minimum", "Weak", file).Code);
    }

    static (int Code, string Out, string Err) ToolRun(params string[] args) => ToolInProcess.Run(args);

    // ---- helpers --------------------------------------------------------------------------------------------------------

    /// <summary>What a probe program printed: its record's fields, its thunks' bytes, its dispatch result.</summary>
    public sealed record ProbeOutput(IReadOnlyDictionary<string, string> Record, IReadOnlyDictionary<string, byte[]> Thunks, string Dispatch)
    {
        public static ProbeOutput Parse(string stdout, string who = "main")
        {
            var record = new Dictionary<string, string>();
            var thunks = new Dictionary<string, byte[]>();
            string dispatch = "";
            foreach (var line in stdout.Split('\n').Where(l => l.StartsWith(who + " ", StringComparison.Ordinal)))
            {
                var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                switch (words[1])
                {
                    case "record":
                        // "mechanism=" runs to the end of the line (it has spaces); the other fields are single words.
                        int m = line.IndexOf(" mechanism=", StringComparison.Ordinal);
                        foreach (var f in line[..m].Split(' ').Skip(3)) { int eq = f.IndexOf('='); record[f[..eq]] = f[(eq + 1)..]; }
                        record["mechanism"] = line[(m + " mechanism=".Length)..];
                        break;
                    case "thunk": thunks[words[2]] = words[3..].Select(x => Convert.ToByte(x, 16)).ToArray(); break;
                    case "dispatch": dispatch = words[2]; break;
                }
            }
            Assert.True(record.Count > 0, $"no '{who} record' line in:\n{stdout}");
            return new ProbeOutput(record, thunks, dispatch);
        }
    }

    /// <summary>A probe started with `wait`: it has reported and waits on stdin until disposed.</summary>
    sealed class RunningProbe : IDisposable
    {
        readonly Process process;
        public string Program { get; }
        public int Pid => process.Id;
        public ProbeOutput Report { get; }

        RunningProbe(string program, bool waitForReady)
        {
            Program = program;
            process = Process.Start(new ProcessStartInfo(program, "wait") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false })!;
            var text = new System.Text.StringBuilder();
            if (waitForReady)
            {
                var ready = Task.Run(() =>
                {
                    string? line;
                    while ((line = process.StandardOutput.ReadLine()) is not null && line != "ready") text.Append(line).Append('\n');
                });
                Assert.True(ready.Wait(TimeSpan.FromSeconds(30)), $"{program} did not get ready");
                Report = ProbeOutput.Parse(text.ToString());
            }
            else
            {
                Thread.Sleep(200); // a plain program: nothing to wait for but its start
                Report = new ProbeOutput(new Dictionary<string, string>(), new Dictionary<string, byte[]>(), "");
            }
        }

        public static RunningProbe Start(string program, bool waitForReady = true) => new(program, waitForReady);

        public void Dispose()
        {
            process.StandardInput.Close();
            if (!process.WaitForExit(10_000)) process.Kill();
            process.Dispose();
        }
    }

    /// <summary>Every build the tests use, each made once on first use.</summary>
    public sealed class Builds : IDisposable
    {
        readonly TempDirectory dir = new("rpl-runtime-");
        readonly ConcurrentDictionary<string, Lazy<string>> made = new();
        readonly ConcurrentDictionary<string, Lazy<CompilerInfo>> compilers = new();
        public string Dir => dir.Path;
        static string Source(string name) => Path.Combine(FixtureSet.SourceDir, "runtime", name);
        static string RoutineSource => Path.Combine(NativeToolchain.RepoRoot, "native", RuntimeRoutineFlags.Source);

        static string[] ProgramFlags(string compiler) => compiler == "gcc"
            ? ["-O2", "-g", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fno-plt", "-Wl,-z,now"]
            : ["-O2", "-g", "-mretpoline-external-thunk", "-fno-plt", "-fuse-ld=lld", "-Wl,-z,now"];

        string Once(string key, Func<string> make) => made.GetOrAdd(key, _ => new Lazy<string>(make, LazyThreadSafetyMode.ExecutionAndPublication)).Value;

        CompilerInfo Compiler(string name) => compilers.GetOrAdd(name, _ => new Lazy<CompilerInfo>(
            () => CompilerProbe.Probe(NativeToolchain.Require(name, name == "gcc" ? "gcc" : "clang-14"), dir[$"probe-{name}"]))).Value;

        /// <summary>The routine as the SDK compiles it, plus (tests only) the fixture root it reads the machine files under.</summary>
        public string Routine(string compiler, bool shared, Vendor minimum, string? fixture) => Once($"routine-{compiler}-{shared}-{minimum}-{fixture}", () =>
        {
            string obj = dir[$"routine-{compiler}-{(shared ? "so" : "exe")}-{minimum}-{Path.GetFileName(fixture) ?? "host"}.o"];
            var settings = new NativeSettings { OutputType = shared ? "Library" : "Exe" };
            var flags = RuntimeRoutineFlags.Compile(Compiler(compiler), settings, minimum, RoutineSource, obj);
            string? root = fixture is null ? null : Path.IsPathRooted(fixture) ? fixture : HostFixture(fixture);
            if (root is not null) flags.Insert(flags.IndexOf("-c"), $"-DRETPOLINE_RUNTIME_FIXTURE_ROOT=\"{root}\"");
            NativeToolchain.Run(Compiler(compiler).Path, flags).EnsureSuccess();
            return obj;
        });

        /// <summary>probe.c linked with the routine and the thunks: kind pie | no-pie | static | static-pie | cf-protection.</summary>
        public string Probe(string name, string compiler, Vendor minimum, string? fixture, string kind = "pie") => Once($"probe-{name}-{compiler}-{kind}-{minimum}", () =>
        {
            string[] extra = kind switch
            {
                "no-pie" => ["-no-pie", "-fno-pie", "-fplt"],
                "static" => ["-static", "-no-pie", "-fno-pie", "-fplt"],
                "static-pie" => ["-static-pie", "-fPIE"],
                "cf-protection" => ["-fcf-protection=full"],
                _ => [],
            };
            return NativeToolchain.Link(Compiler(compiler).Path, [Source("probe.c"), Routine(compiler, false, minimum, fixture), NativeToolchain.ThunksSource],
                dir[$"probe-{name}-{compiler}-{kind}"], [.. ProgramFlags(compiler), .. extra]);
        });

        /// <summary>libprobe.c as a shared library with the routine (the shared flavour) and the thunks.</summary>
        public string Library(string name, string compiler, Vendor minimum, string? fixture) => Once($"lib-{name}", () =>
        {
            string lib = dir[$"libprobe-{name}.so"];
            return NativeToolchain.Link(Compiler(compiler).Path, [Source("libprobe.c"), Routine(compiler, true, minimum, fixture), NativeToolchain.ThunksSource],
                lib, [.. ProgramFlags(compiler), "-fPIC", "-shared", "-Wl,-soname," + Path.GetFileName(lib)]);
        });

        /// <summary>A plain program (no retpoline flags, no routine) linked against a probe library.</summary>
        public string LibraryHost(string lib, string compiler) => Once($"host-{lib}", () =>
            NativeToolchain.Link(Compiler(compiler).Path, [Source("probe_host.c"), lib], dir[$"host-{Path.GetFileName(lib)}"], ["-O2", "-Wl,-rpath," + Path.GetDirectoryName(lib)]));

        /// <summary>probe.c with the retpoline flags and the thunks but without the routine: what Generic builds.</summary>
        public string Plain() => Once("plain", () =>
        {
            return NativeToolchain.Link(Compiler("gcc").Path, [Source("probe.c"), NativeToolchain.ThunksSource], dir["plain"], [.. ProgramFlags("gcc"), "-DPROBE_NO_RECORD"]);
        });

        public string Sandbox() => Once("sandbox", () => NativeToolchain.Link(Compiler("gcc").Path, [Source("sandbox.c")], dir["sandbox"], ["-O2"]));

        /// <summary>Runs a built program; asserts exit 0; returns stdout.</summary>
        public string Run(string program, string? libraryPath = null, Dictionary<string, string?>? environment = null, string? args = null)
        {
            environment ??= [];
            if (libraryPath is not null) environment["LD_LIBRARY_PATH"] = libraryPath;
            var r = NativeToolchain.Run(program, args is null ? [] : [args], environment: environment, timeout: TimeSpan.FromSeconds(60));
            Assert.True(r.ExitCode == 0, $"{r.CommandLine} exited {r.ExitCode}\n{r.StdErr}");
            return r.StdOut;
        }

        public void Dispose() => dir.Dispose();
    }
}
