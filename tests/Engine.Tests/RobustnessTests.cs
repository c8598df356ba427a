using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using Retpoline.Patching;
using Xunit;
using Xunit.Abstractions;

namespace Retpoline.Tests;

/// <summary>
/// Hostile input. Mutated copies of real fixtures go through Verifier.Verify, Patcher.Patch and
/// Patcher.PatchThenVerify (the build's post-link step): the only acceptable outcomes are a normal report, a RetpolineException with an RPL01xx code, or (patch) a refusal RPL0016; no other
/// exception escapes, nothing hangs, and a file patch rejects is byte-identical afterwards. Then each bad input the
/// issue names gets exactly one coded exception.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RobustnessTests(FixtureSet fx, ITestOutputHelper output)
{
    /// <summary>Fixed, so every run tries the same cases; RETPOLINE_FUZZ_SEED / RETPOLINE_FUZZ_CASES override it to explore or reproduce.</summary>
    const int DefaultSeed = 20260125;
    const int DefaultCases = 10_000;
    /// <summary>One case (verify + patch of a file of at most ~1.2 MB) taking this long is a hang.</summary>
    static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(30);

    sealed record Base(string Name, byte[] Data, ElfBits Elf);

    [Fact]
    public void MutatedFixtures_GiveOnlyCodedErrors_NeverHang_NeverWriteARejectedFile()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("RETPOLINE_FUZZ_SEED"), out int s) ? s : DefaultSeed;
        int cases = int.TryParse(Environment.GetEnvironmentVariable("RETPOLINE_FUZZ_CASES"), out int c) ? c : DefaultCases;
        var bases = new[]
        {
            FixtureSet.GccExeNoPlt, FixtureSet.GccExe, FixtureSet.Handwritten, FixtureSet.HandwrittenObject, FixtureSet.GccLib,
            FixtureSet.ClangRetpoline, FixtureSet.GccComdat, FixtureSet.ThunksObject, FixtureSet.ClangExe,
        }.Select(Load).ToArray();
        // Over 1 MiB: verify reads only the sections it needs (a different code path from small files).
        var large = Load(FixtureSet.GccLarge);

        var failures = new ConcurrentQueue<string>();
        var outcomes = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        int workers = 2;
        var current = new string?[workers];
        var started = new long[workers];
        var counts = new int[workers];
        var watch = Stopwatch.StartNew();
        var threads = Enumerable.Range(0, workers).Select(w => new Thread(() =>
        {
            string dir = fx.NewDirectory($"fuzz-{w}");
            string file = Path.Combine(dir, "case.elf");
            for (int i = w; i < cases && failures.Count < 50; i += workers)
            {
                var rng = new Random(unchecked(seed * 7919 + i));
                var b = i % 25 == 24 ? large : bases[rng.Next(bases.Length)];
                byte[] data = b.Data.ToArray();
                string what = Mutate(rng, b, ref data);
                string label = $"seed {seed}, case {i}, {b.Name}: {what}";
                Volatile.Write(ref current[w], label);
                Volatile.Write(ref started[w], Stopwatch.GetTimestamp());
                RunCase(label, file, data, (Vendor)(i % 3), failures, outcomes);
                counts[w]++;
            }
            Volatile.Write(ref current[w], null);
            // No temp file may survive: every write is a rename of a complete temp file, every failure removes it.
            foreach (var left in Directory.GetFiles(dir).Where(f => f != file))
                failures.Enqueue($"seed {seed}: patch left '{Path.GetFileName(left)}' behind in {dir}");
        }) { IsBackground = true, Name = $"fuzz-{w}" }).ToList();
        threads.ForEach(t => t.Start());

        // The watchdog: a worker stuck on one case longer than CaseTimeout fails the test with that case's recipe.
        while (threads.Any(t => t.IsAlive))
        {
            threads.First(t => t.IsAlive).Join(200);
            for (int w = 0; w < workers; w++)
                if (Volatile.Read(ref current[w]) is { } label && Stopwatch.GetElapsedTime(Volatile.Read(ref started[w])) > CaseTimeout)
                    Assert.Fail($"HANG: {label} did not finish within {CaseTimeout.TotalSeconds:0}s (reproduce with RETPOLINE_FUZZ_SEED={seed})");
        }
        watch.Stop();
        output.WriteLine($"{counts.Sum()} mutated files (seed {seed}) through verify and patch in {watch.Elapsed.TotalSeconds:0.0}s");
        output.WriteLine(string.Join("\n", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"  {o.Key}: {o.Value}")));
        Assert.True(failures.IsEmpty, $"{failures.Count} failure(s) (seed {seed}; set RETPOLINE_FUZZ_SEED to reproduce):\n" + string.Join("\n", failures.Take(20)));
        Assert.Equal(cases, counts.Sum());
    }

    Base Load(string fixture)
    {
        string path = fx.Get(fixture);
        var data = File.ReadAllBytes(path);
        return new Base(fixture, data, new ElfBits(data));
    }

    static void RunCase(string label, string file, byte[] data, Vendor vendor, ConcurrentQueue<string> failures, ConcurrentDictionary<string, int> outcomes)
    {
        void Count(string outcome) => outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        File.WriteAllBytes(file, data);
        string? unusable = null; // the RPL01xx verify gave, if any
        try
        {
            var report = Verifier.Verify(file, new VerifyOptions { Parallel = false });
            _ = report.Diagnostics.Count; // the message text is built lazily: build it too
            Count("verify: report");
        }
        catch (RetpolineException e) when (e.Code.StartsWith("RPL01", StringComparison.Ordinal)) { Count("verify: " + e.Code); unusable = e.Code; }
        catch (Exception e)
        {
            failures.Enqueue($"{label}: verify threw {Describe(e)}");
        }

        try
        {
            var result = Patcher.Patch(file, vendor);
            Count(result.Written ? "patch: written" : "patch: nothing to change");
            if (unusable is not null)
                failures.Enqueue($"{label}: verify said {unusable} but patch {vendor} accepted the file");
        }
        catch (RetpolineException e) when (e.Code.StartsWith("RPL01", StringComparison.Ordinal) || e.Code == Codes.PatchRefused)
        {
            Count("patch: " + e.Code);
            // Rejected: not one byte may have changed.
            if (!File.ReadAllBytes(file).AsSpan().SequenceEqual(data))
                failures.Enqueue($"{label}: patch {vendor} refused ({e.Code}) but changed the file");
            // The same bytes are usable for both or for neither (patch reads the whole file, verify may read part).
            if (e.Code.StartsWith("RPL01", StringComparison.Ordinal) && e.Code != unusable)
                failures.Enqueue($"{label}: verify said {unusable ?? "usable (a report)"} but patch {vendor} said {e.Code} ({e.Message})");
        }
        catch (Exception e)
        {
            failures.Enqueue($"{label}: patch {vendor} threw {Describe(e)}");
        }

        // The build's post-link step on the same bytes: a report, or a coded refusal that left the file alone.
        File.WriteAllBytes(file, data);
        try
        {
            var (_, report, _, _) = Patcher.PatchThenVerify(file, vendor, CallSiteMode.Thunk, new VerifyOptions { Parallel = false });
            _ = report.Diagnostics.Count;
            Count("patch+verify: report");
        }
        catch (RetpolineException e) when (e.Code.StartsWith("RPL01", StringComparison.Ordinal) || e.Code == Codes.PatchRefused)
        {
            Count("patch+verify: " + e.Code);
            if (!File.ReadAllBytes(file).AsSpan().SequenceEqual(data))
                failures.Enqueue($"{label}: patch+verify {vendor} refused ({e.Code}) but changed the file");
        }
        catch (Exception e)
        {
            failures.Enqueue($"{label}: patch+verify {vendor} threw {Describe(e)}");
        }
    }

    static string Describe(Exception e) => e is RetpolineException r
        ? $"RetpolineException {r.Code} ({r.Message})"
        : $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}";

    // ---- Mutations: each changes `data` (or replaces it, for truncation) and says exactly what it did. ----

    static readonly (string name, int offset, int size)[] HeaderFields =
    [
        ("e_shoff", 40, 8), ("e_shnum", 60, 2), ("e_shentsize", 58, 2), ("e_shstrndx", 62, 2),
        ("e_phoff", 32, 8), ("e_phnum", 56, 2), ("e_phentsize", 54, 2), ("e_type", 16, 2), ("e_machine", 18, 2),
        ("EI_CLASS", 4, 1), ("EI_DATA", 5, 1),
    ];

    static readonly (string name, int offset, int size)[] SectionFields =
    [
        ("sh_name", 0, 4), ("sh_type", 4, 4), ("sh_flags", 8, 8), ("sh_addr", 16, 8), ("sh_offset", 24, 8), ("sh_size", 32, 8),
        ("sh_link", 40, 4), ("sh_info", 44, 4), ("sh_addralign", 48, 8), ("sh_entsize", 56, 8),
    ];

    static readonly (string name, int offset, int size)[] SymbolFields =
        [("st_name", 0, 4), ("st_info", 4, 1), ("st_other", 5, 1), ("st_shndx", 6, 2), ("st_value", 8, 8), ("st_size", 16, 8)];

    static string Mutate(Random rng, Base b, ref byte[] data)
    {
        string what = MutateOnce(rng, b, ref data);
        // Sometimes two at once (the second aims by the original layout, so only while the length is unchanged).
        if (rng.Next(8) == 0 && data.Length == b.Data.Length) what += " + " + MutateOnce(rng, b, ref data);
        return what;
    }

    static string MutateOnce(Random rng, Base b, ref byte[] d)
    {
        var elf = b.Elf;
        switch (rng.Next(12))
        {
            case 0: // bit flips anywhere
            {
                int n = 1 + rng.Next(8);
                var at = new List<string>();
                for (int k = 0; k < n && d.Length > 0; k++)
                {
                    int o = rng.Next(d.Length), bit = rng.Next(8);
                    d[o] ^= (byte)(1 << bit);
                    at.Add($"0x{o:x}.{bit}");
                }
                return $"bit flips at {string.Join(",", at)}";
            }
            case 1: // bit flips in the structures a reader trusts
            {
                var regions = StructuralRegions(elf, d.Length);
                var (name, start, length) = regions[rng.Next(regions.Count)];
                int n = 1 + rng.Next(4);
                var at = new List<string>();
                for (int k = 0; k < n; k++)
                {
                    int o = start + rng.Next(length), bit = rng.Next(8);
                    if (o >= d.Length) continue;
                    d[o] ^= (byte)(1 << bit);
                    at.Add($"0x{o:x}.{bit}");
                }
                return $"bit flips in {name} at {string.Join(",", at)}";
            }
            case 2: // truncation
            {
                int length = rng.Next(4) switch
                {
                    0 => rng.Next(Math.Min(d.Length, 128)),
                    1 => (int)Math.Min(d.Length - 1, elf.SectionHeaderOffset + rng.Next(Math.Max(1, elf.Sections.Count * 64))),
                    _ => rng.Next(d.Length),
                };
                Array.Resize(ref d, Math.Max(0, length));
                return $"truncated to {length} bytes";
            }
            case 3: // an ELF header field
            {
                var (name, offset, size) = HeaderFields[rng.Next(HeaderFields.Length)];
                ulong value = Interesting(rng, size, d.Length);
                Write(d, offset, size, value);
                return $"{name} = 0x{value:x}";
            }
            case 4: // a section header field
            {
                int k = rng.Next(elf.Sections.Count);
                var (name, offset, size) = SectionFields[rng.Next(SectionFields.Length)];
                ulong value = rng.Next(3) == 0
                    ? Read(d, (int)elf.Sections[rng.Next(elf.Sections.Count)].HeaderOffset + offset, size) // another section's value
                    : Interesting(rng, size, d.Length);
                Write(d, (int)elf.Sections[k].HeaderOffset + offset, size, value);
                return $"section {k} ({elf.Sections[k].Name}) {name} = 0x{value:x}";
            }
            case 5: // random section tables
            {
                int shoff = (int)elf.SectionHeaderOffset, count = elf.Sections.Count;
                switch (rng.Next(3))
                {
                    case 0:
                        rng.NextBytes(d.AsSpan(shoff, Math.Min(count * 64, d.Length - shoff)));
                        return "whole section table random";
                    case 1:
                    {
                        int k = rng.Next(count);
                        rng.NextBytes(d.AsSpan(shoff + k * 64, 64));
                        return $"section header {k} random";
                    }
                    default:
                    {
                        int a = rng.Next(count), z = rng.Next(count);
                        var tmp = d.AsSpan(shoff + a * 64, 64).ToArray();
                        d.AsSpan(shoff + z * 64, 64).CopyTo(d.AsSpan(shoff + a * 64, 64));
                        tmp.CopyTo(d.AsSpan(shoff + z * 64, 64));
                        return $"section headers {a} and {z} swapped";
                    }
                }
            }
            case 6: // symbol table garbage
            {
                var tables = elf.Sections.Where(x => x.Type is 2 or 11 && x.Size >= 24).ToList();
                if (tables.Count == 0) goto case 0;
                var t = tables[rng.Next(tables.Count)];
                int count = (int)(t.Size / 24);
                if (rng.Next(4) == 0)
                {
                    int from = rng.Next(count), n = 1 + rng.Next(Math.Min(8, count - from));
                    rng.NextBytes(d.AsSpan((int)t.Offset + from * 24, n * 24));
                    return $"{t.Name} entries {from}..{from + n - 1} random";
                }
                int sym = rng.Next(count);
                var (name, offset, size) = SymbolFields[rng.Next(SymbolFields.Length)];
                ulong value = Interesting(rng, size, d.Length);
                Write(d, (int)t.Offset + sym * 24 + offset, size, value);
                return $"{t.Name}[{sym}] {name} = 0x{value:x}";
            }
            case 7: // string table garbage (names of sections and symbols)
            {
                var tables = elf.Sections.Where(x => x.Type == 3 && x.Size > 0).ToList();
                var t = tables[rng.Next(tables.Count)];
                int from = rng.Next((int)t.Size), n = 1 + rng.Next((int)Math.Min(16, t.Size - from));
                if (rng.Next(2) == 0) rng.NextBytes(d.AsSpan((int)t.Offset + from, n));
                else d.AsSpan((int)t.Offset + from, n).Fill((byte)'A'); // no terminating NUL
                return $"{t.Name} bytes {from}..{from + n - 1} overwritten";
            }
            case 8: // a thunk body
            {
                var thunks = elf.Symbols.Where(x => x.SectionIndex is > 0 and < 0xff00 && (x.Name.StartsWith("__x86_", StringComparison.Ordinal) || x.Name.StartsWith("__llvm_", StringComparison.Ordinal))).ToList();
                if (thunks.Count == 0) goto case 9;
                var t = thunks[rng.Next(thunks.Count)];
                long start = elf.FileOffset(t.SectionIndex, t.Value);
                int n = 1 + rng.Next(3);
                var at = new List<string>();
                for (int k = 0; k < n; k++)
                {
                    int o = (int)start + rng.Next(21);
                    if (o >= d.Length) continue;
                    d[o] = (byte)rng.Next(256);
                    at.Add($"+{o - start}=0x{d[o]:x2}");
                }
                return $"thunk {t.Name} bytes {string.Join(",", at)}";
            }
            case 9: // random code
            {
                var code = elf.Sections.Where(x => (x.Flags & 4) != 0 && x.Size > 0 && x.Type != 8).ToList();
                var t = code[rng.Next(code.Count)];
                int from = rng.Next((int)t.Size), n = 1 + rng.Next((int)Math.Min(64, t.Size - from));
                rng.NextBytes(d.AsSpan((int)t.Offset + from, n));
                return $"{t.Name} bytes {from}..{from + n - 1} random";
            }
            case 10: // overlapping or oversized sections
            {
                var withBytes = elf.Sections.Where(x => x.Index > 0 && x.Type != 8 && x.Size > 0).ToList();
                var a = withBytes[rng.Next(withBytes.Count)];
                var z = withBytes[rng.Next(withBytes.Count)];
                if (rng.Next(2) == 0)
                {
                    Write(d, (int)a.HeaderOffset + 24, 8, (ulong)z.Offset);
                    return $"section {a.Index} ({a.Name}) sh_offset = section {z.Index}'s 0x{z.Offset:x}";
                }
                ulong size = (ulong)(z.Offset + z.Size - a.Offset) + (ulong)rng.Next(4096);
                Write(d, (int)a.HeaderOffset + 32, 8, size);
                return $"section {a.Index} ({a.Name}) sh_size = 0x{size:x} (over {z.Name})";
            }
            default: // line table or program headers
            {
                if (elf[".debug_line"] is { Size: > 0 } line && rng.Next(2) == 0)
                {
                    int from = rng.Next((int)line.Size), n = 1 + rng.Next((int)Math.Min(32, line.Size - from));
                    rng.NextBytes(d.AsSpan((int)line.Offset + from, n));
                    return $".debug_line bytes {from}..{from + n - 1} random";
                }
                int phoff = (int)Read(d, 32, 8), phnum = (int)Read(d, 56, 2);
                if (phnum == 0 || phoff <= 0 || phoff + phnum * 56 > d.Length) goto case 3;
                int p = rng.Next(phnum), field = rng.Next(7) * 8;
                ulong value = Interesting(rng, 8, d.Length);
                Write(d, phoff + p * 56 + field, field == 0 ? 4 : 8, value);
                return $"program header {p} field +{field} = 0x{value:x}";
            }
        }
    }

    static List<(string name, int start, int length)> StructuralRegions(ElfBits elf, int fileLength)
    {
        var list = new List<(string, int, int)> { ("ELF header", 0, 64), ("section table", (int)elf.SectionHeaderOffset, elf.Sections.Count * 64) };
        foreach (var s in elf.Sections.Where(s => s.Type is 2 or 11 or 3 or 4 or 6 or 7 && s.Size > 0 && s.Offset + s.Size <= fileLength))
            list.Add((s.Name, (int)s.Offset, (int)s.Size));
        return list;
    }

    static ulong Interesting(Random rng, int size, int fileLength)
    {
        ulong v = rng.Next(19) switch
        {
            0 => 0, 1 => 1, 2 => 2, 3 => 0x7f, 4 => 0x80, 5 => 0xff, 6 => 0x100, 7 => 0xffff, 8 => 0x10000,
            9 => 0x7fffffff, 10 => 0x80000000, 11 => 0xffffffff, 12 => ulong.MaxValue, 13 => long.MaxValue,
            14 => (ulong)fileLength, 15 => (ulong)fileLength - 1, 16 => (ulong)fileLength + 1, 17 => (ulong)Math.Max(0, fileLength - 64),
            _ => (ulong)rng.NextInt64(),
        };
        return size == 8 ? v : v & ((1UL << (size * 8)) - 1);
    }

    static void Write(byte[] d, int offset, int size, ulong value)
    {
        if (offset < 0 || offset + size > d.Length) return;
        Span<byte> buffer = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
        buffer[..size].CopyTo(d.AsSpan(offset, size));
    }

    static ulong Read(byte[] d, int offset, int size)
    {
        if (offset < 0 || offset + size > d.Length) return 0;
        Span<byte> buffer = stackalloc byte[8];
        buffer.Clear();
        d.AsSpan(offset, size).CopyTo(buffer);
        return BinaryPrimitives.ReadUInt64LittleEndian(buffer);
    }

    /// <summary>
    /// A runnable executable whose PT_NOTE program header overstates its size (p_filesz 0x44 → 0x7f: the kernel and
    /// readelf do not care). The engine never needs program headers beyond PT_INTERP, so verify must still report on
    /// it and patch must still patch it, both the same way for small files and for files over 1 MiB.
    /// </summary>
    [Theory]
    [InlineData(FixtureSet.GccExeNoPlt)]
    [InlineData(FixtureSet.GccLarge)]
    public void OverstatedNoteSegment_StillVerifiesAndPatches(string fixture)
    {
        string path = fx.CopyOf(fixture, "bad-note");
        byte[] d = File.ReadAllBytes(path);
        int phoff = (int)Read(d, 32, 8), phnum = (int)Read(d, 56, 2);
        int note = Enumerable.Range(0, phnum).Last(i => Read(d, phoff + i * 56, 4) == 4); // PT_NOTE
        Write(d, phoff + note * 56 + 32, 8, Read(d, phoff + note * 56 + 32, 8) + 0x3b); // p_filesz
        File.WriteAllBytes(path, d);
        Assert.Equal(FixtureSet.ExpectedOutput[fixture], FixtureSet.RunProgram(path)); // the premise: it still runs

        var report = Verifier.Verify(path);
        Assert.Equal(Verifier.Verify(fx.Get(fixture)).Findings, report.Findings);
        Assert.True(Patcher.Patch(path, Vendor.None).Written);
        Assert.Equal(FixtureSet.ExpectedOutput[fixture], FixtureSet.RunProgram(path));
    }

    // ---- The bad inputs the issue names: exactly one coded exception each, from verify and from patch. ----

    public static TheoryData<string, string> BadInputs => new()
    {
        { "empty", Codes.NotElf },
        { "text", Codes.NotElf },
        { "truncated-header", Codes.Truncated },
        { "elf32-objcopy-x32", Codes.NotElf64 },
        { "elf32-objcopy-i386", Codes.NotElf64 },
        { "elf32-ei-class", Codes.NotElf64 },
        { "big-endian", Codes.NotX86_64 },
        { "aarch64-machine", Codes.NotX86_64 },
        { "core-dump-type", Codes.NotElf },
        { "no-section-headers", Codes.BadSectionTable },
        { "section-table-past-end", Codes.Truncated },
        { "section-past-end", Codes.Truncated },
        { "directory", Codes.FileNotFound },
        { "missing", Codes.FileNotFound },
    };

    string MakeBadInput(string kind)
    {
        string dir = fx.NewDirectory("bad-" + kind);
        string path = Path.Combine(dir, kind);
        byte[] exe = File.ReadAllBytes(fx.Get(FixtureSet.GccExeNoPlt));
        var elf = new ElfBits(exe);
        byte[] With(Action<byte[]> change) { var copy = exe.ToArray(); change(copy); return copy; }
        switch (kind)
        {
            case "empty": File.WriteAllBytes(path, []); break;
            case "text": File.WriteAllText(path, "#!/bin/sh\necho this is not an ELF file\n"); break;
            case "truncated-header": File.WriteAllBytes(path, exe.AsSpan(0, 40).ToArray()); break;
            // objcopy really converts: an ELF32 x32 (EM_X86_64) executable, and an ELF32 i386 object.
            case "elf32-objcopy-x32":
                NativeToolchain.Run(NativeToolchain.Objcopy, ["-O", "elf32-x86-64", fx.Get(FixtureSet.GccExeNoPlt), path]).EnsureSuccess();
                Assert.Equal(1, File.ReadAllBytes(path)[4]); // ELFCLASS32: the premise
                break;
            case "elf32-objcopy-i386":
                NativeToolchain.Run(NativeToolchain.Objcopy, ["-O", "elf32-i386", fx.Get(FixtureSet.ThunksObject), path]).EnsureSuccess();
                Assert.Equal(1, File.ReadAllBytes(path)[4]);
                break;
            case "elf32-ei-class": File.WriteAllBytes(path, With(d => d[4] = 1)); break;
            case "big-endian": File.WriteAllBytes(path, With(d => d[5] = 2)); break;
            case "aarch64-machine": File.WriteAllBytes(path, With(d => BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(18), 183))); break;
            case "core-dump-type": File.WriteAllBytes(path, With(d => BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(16), 4))); break;
            case "no-section-headers": File.WriteAllBytes(path, With(d => { Write(d, 40, 8, 0); Write(d, 60, 2, 0); Write(d, 62, 2, 0); })); break;
            case "section-table-past-end": File.WriteAllBytes(path, With(d => Write(d, 40, 8, (ulong)d.Length - 64))); break;
            case "section-past-end":
                File.WriteAllBytes(path, With(d => Write(d, (int)elf[".text"]!.HeaderOffset + 32, 8, (ulong)d.Length)));
                break;
            case "directory": Directory.CreateDirectory(path); break;
            case "missing": break;
            default: throw new ArgumentOutOfRangeException(nameof(kind));
        }
        return path;
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInput_IsExactlyOneCodedError(string kind, string code)
    {
        string path = MakeBadInput(kind);
        byte[]? before = File.Exists(path) ? File.ReadAllBytes(path) : null;

        var verify = Assert.Throws<RetpolineException>(() => Verifier.Verify(path));
        Assert.Equal(code, verify.Code);
        Assert.Equal(path, verify.FilePath);
        Assert.DoesNotContain('\n', verify.OneLine);
        Assert.Equal($"error {code}: {path}: {verify.Message}", verify.OneLine);

        foreach (var vendor in new[] { Vendor.Generic, Vendor.None })
        {
            var patch = Assert.Throws<RetpolineException>(() => Patcher.Patch(path, vendor));
            Assert.Equal(code, patch.Code);
            Assert.DoesNotContain('\n', patch.OneLine);
        }
        if (before is not null) Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(kind == "missing" ? 0 : 1, Directory.GetFileSystemEntries(Path.GetDirectoryName(path)!).Length);
    }

    /// <summary>
    /// An unreadable file is RPL0107. We usually run as root, and root reads a chmod 000 file anyway (CAP_DAC_OVERRIDE),
    /// so as root the check runs the `retpoline` tool (the same engine) as user nobody through setpriv, on a chmod 000
    /// file in a directory nobody can enter: one line, RPL0107, exit 2. As any other user it calls the engine directly.
    /// </summary>
    [Fact]
    public void UnreadableFile_IsRpl0107()
    {
        using var dir = new TempDirectory("retpoline-unreadable-");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101); // 0755: nobody may enter, not read the file
        string path = dir.Copy(fx.Get(FixtureSet.GccExeNoPlt), "unreadable");
        File.SetUnixFileMode(path, UnixFileMode.None);
        byte[] before = File.ReadAllBytes(path); // (root can)

        if (Environment.UserName != "root")
        {
            Assert.Equal(Codes.IoError, Assert.Throws<RetpolineException>(() => Verifier.Verify(path)).Code);
            Assert.Equal(Codes.IoError, Assert.Throws<RetpolineException>(() => Patcher.Patch(path, Vendor.None)).Code);
            return;
        }

        string setpriv = NativeToolchain.Require("setpriv", "util-linux");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : NativeToolchain.Require("dotnet", "dotnet-sdk-10.0");
        string tool = Path.Combine(AppContext.BaseDirectory, "retpoline.dll");
        Assert.True(File.Exists(tool), $"{tool} is missing: the test project references Tool/");
        var env = new Dictionary<string, string?> { ["HOME"] = dir.Path, ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" };
        foreach (var args in new[] { new[] { "verify", path }, new[] { "patch", "--vendor", "None", path } })
        {
            var r = NativeToolchain.Run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", dotnet, tool, .. args], environment: env, timeout: TimeSpan.FromMinutes(2));
            string all = (r.StdOut + r.StdErr).Trim();
            Assert.True(r.ExitCode == 2, $"{r.CommandLine} exited {r.ExitCode}: {all}");
            Assert.Equal($"retpoline: error {Codes.IoError}: {path}: permission denied", all);
        }
        Assert.Equal(before, File.ReadAllBytes(path));
    }
}
