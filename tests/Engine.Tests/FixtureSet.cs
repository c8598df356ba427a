using System.Collections.Concurrent;
using System.Globalization;
using Xunit;

namespace Retpoline.Tests;

/// <summary>The engine tests that share <see cref="FixtureSet"/>: the native fixtures are built once per test run.</summary>
[CollectionDefinition(Name)]
public sealed class NativeFixturesCollection : ICollectionFixture<FixtureSet>
{
    public const string Name = "Native fixtures";
}

/// <summary>
/// Every fixture binary the engine tests use, compiled from the sources in tests/Engine.Tests/Fixtures/native (and
/// native/retpoline_thunks.S) with the machine's gcc 12, clang-14 and lld-14: each is built once, on first use, into
/// one temporary directory that is deleted when the run ends. Tests never modify a fixture: they patch
/// <see cref="CopyOf"/> copies.
/// </summary>
public sealed class FixtureSet : IDisposable
{
    // Fixture names (Get(name) builds on first use).
    /// <summary>gcc thunk-extern, PIE with the PLT: dispatch table + jump table + printf.</summary>
    public const string GccExe = "gcc-exe";
    /// <summary>The same with -fno-plt -Wl,-z,now.</summary>
    public const string GccExeNoPlt = "gcc-exe-noplt";
    /// <summary>gcc -fPIC -shared: exported functions calling each other go through the PLT.</summary>
    public const string GccLib = "libgcc-dispatch.so";
    public const string GccLibNoPlt = "libgcc-dispatch-noplt.so";
    /// <summary>g++ with a virtual call, with the PLT.</summary>
    public const string GxxVirtual = "gxx-virtual";
    public const string GxxVirtualNoPlt = "gxx-virtual-noplt";
    /// <summary>clang-14 -mretpoline-external-thunk, linked by lld-14 with -z retpolineplt.</summary>
    public const string ClangExe = "clang-exe";
    public const string ClangLib = "libclang-dispatch.so";
    /// <summary>handwritten.S (-g) + asm_main.c + the thunks, -fno-plt: exactly four UserCode findings.</summary>
    public const string Handwritten = "handwritten";
    /// <summary>`strip` of <see cref="Handwritten"/>.</summary>
    public const string HandwrittenStripped = "handwritten-stripped";
    /// <summary>handwritten.S assembled with -g to an ET_REL object.</summary>
    public const string HandwrittenObject = "handwritten.o";
    /// <summary>dispatch.c compiled with the retpoline flags to an ET_REL object (calls thunks it leaves to the link).</summary>
    public const string DispatchObject = "dispatch.o";
    /// <summary>Thunks named rax and rcx whose bodies branch through rbx.</summary>
    public const string WrongRegister = "wrong-register";
    /// <summary>A thunk named rdx whose body is `push %rdx; ret`.</summary>
    public const string MalformedThunk = "malformed-thunk";
    /// <summary>A shared library exporting __x86_indirect_thunk_rax with default visibility.</summary>
    public const string ExportedThunkLib = "libexported-thunk.so";
    /// <summary>libdispatch.c with the retpoline flags and no thunk definitions: the .so calls thunks it lacks.</summary>
    public const string MissingThunkLib = "libmissing-thunk.so";
    /// <summary>gcc -mindirect-branch=thunk -mfunction-return=thunk: COMDAT thunks with symbol size 0.</summary>
    public const string GccComdat = "gcc-comdat";
    /// <summary>clang-14 -mretpoline: Clang's own __llvm_retpoline_r11 (21-byte layout).</summary>
    public const string ClangRetpoline = "clang-retpoline";
    /// <summary>-ffunction-sections -Wl,--gc-sections: only the thunks the program calls survive.</summary>
    public const string GccGcSections = "gcc-gc-sections";
    /// <summary>-fcf-protection=full with thunk-extern: GCC also calls the _nt_ thunks (notrack jump tables).</summary>
    public const string GccCfProtection = "gcc-cf-protection";
    /// <summary><see cref="GccExeNoPlt"/> plus a 1.2 MB table: a file over 1 MiB, which verify reads in part.</summary>
    public const string GccLarge = "gcc-large";
    /// <summary>A 2-byte None-form thunk with a function right after it: too small for the Generic and Amd forms.</summary>
    public const string TooSmallThunk = "too-small-thunk";
    /// <summary>-fcf-protection=full linked with -z shstk -z ibt: forced shadow-stack marking over Generic thunks.</summary>
    public const string GccForcedShstk = "gcc-forced-shstk";
    /// <summary>native/retpoline_thunks.S assembled alone: an ET_REL whose 31 thunks each sit at address 0 of their own section.</summary>
    public const string ThunksObject = "retpoline_thunks.o";

    /// <summary>What the runnable fixtures print when run without arguments.</summary>
    public static readonly IReadOnlyDictionary<string, string> ExpectedOutput = new Dictionary<string, string>
    {
        [GccExe] = "dispatch 695\n",
        [GccExeNoPlt] = "dispatch 695\n",
        [GxxVirtual] = "virtual 34\n",
        [GxxVirtualNoPlt] = "virtual 34\n",
        [ClangExe] = "dispatch 695\n",
        [Handwritten] = "table 30\n",
        [HandwrittenStripped] = "table 30\n",
        [GccComdat] = "dispatch 695\n",
        [ClangRetpoline] = "llvm 61\n",
        [GccGcSections] = "dispatch 695\n",
        [GccCfProtection] = "dispatch 695\n",
        [GccLarge] = "dispatch 695\n",
        [GccForcedShstk] = "dispatch 695\n",
    };

    /// <summary>GCC's external-thunk flags as DESIGN.md §3 gives them.</summary>
    public static readonly string[] GccRetpolineFlags =
        ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-mfunction-return=thunk-extern"];
    public static readonly string[] NoPlt = ["-fno-plt", "-Wl,-z,now"];
    public static readonly string[] ClangRetpolineFlags =
        ["-O2", "-mretpoline-external-thunk", "-fuse-ld=lld", "-Wl,-z,retpolineplt"];

    /// <summary>The 15 registers a thunk can be named for, in encoding order (rsp, number 4, has none).</summary>
    public static readonly string[] Registers = ["rax", "rcx", "rdx", "rbx", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

    /// <summary>Encoding number of a register (rax 0 … r15 15).</summary>
    public static int RegisterNumber(string reg) => reg switch
    {
        "rax" => 0, "rcx" => 1, "rdx" => 2, "rbx" => 3, "rsp" => 4, "rbp" => 5, "rsi" => 6, "rdi" => 7,
        _ when reg.StartsWith('r') && int.TryParse(reg.AsSpan(1), out int n) && n is >= 8 and <= 15 => n,
        _ => throw new ArgumentOutOfRangeException(nameof(reg), reg, null),
    };

    readonly TempDirectory dir = new("retpoline-fixtures-");
    readonly ConcurrentDictionary<string, Lazy<string>> built = new();
    readonly Dictionary<string, Func<string>> recipes;
    int copies;

    public string Directory => dir.Path;
    public static string SourceDir => Path.Combine(NativeToolchain.RepoRoot, "tests", "Engine.Tests", "Fixtures", "native");
    public static string Source(string name) => Path.Combine(SourceDir, name);

    public FixtureSet()
    {
        string Out(string name) => dir[name];
        string thunks() => NativeToolchain.ThunksSource;
        recipes = new()
        {
            [GccExe] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), thunks()], Out(GccExe), GccRetpolineFlags),
            [GccExeNoPlt] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), thunks()], Out(GccExeNoPlt), [.. GccRetpolineFlags, .. NoPlt]),
            [GccLib] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("libdispatch.c"), thunks()], Out(GccLib), [.. GccRetpolineFlags, "-fPIC", "-shared"]),
            [GccLibNoPlt] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("libdispatch.c"), thunks()], Out(GccLibNoPlt), [.. GccRetpolineFlags, "-fPIC", "-shared", .. NoPlt]),
            [GxxVirtual] = () => NativeToolchain.Link(NativeToolchain.Gxx, [Source("virtual.cpp"), thunks()], Out(GxxVirtual), GccRetpolineFlags),
            [GxxVirtualNoPlt] = () => NativeToolchain.Link(NativeToolchain.Gxx, [Source("virtual.cpp"), thunks()], Out(GxxVirtualNoPlt), [.. GccRetpolineFlags, .. NoPlt]),
            [ClangExe] = () => { _ = NativeToolchain.Lld; return NativeToolchain.Link(NativeToolchain.Clang, [Source("dispatch.c"), thunks()], Out(ClangExe), ClangRetpolineFlags); },
            [ClangLib] = () => { _ = NativeToolchain.Lld; return NativeToolchain.Link(NativeToolchain.Clang, [Source("libdispatch.c"), thunks()], Out(ClangLib), [.. ClangRetpolineFlags, "-fPIC", "-shared"]); },
            [Handwritten] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("asm_main.c"), Source("handwritten.S"), thunks()], Out(Handwritten), [.. GccRetpolineFlags, .. NoPlt, "-g"]),
            [HandwrittenStripped] = () =>
            {
                NativeToolchain.Run(NativeToolchain.Strip, ["-o", Out(HandwrittenStripped), Get(Handwritten)]).EnsureSuccess();
                return Out(HandwrittenStripped);
            },
            [HandwrittenObject] = () => NativeToolchain.Compile(NativeToolchain.Gcc, Source("handwritten.S"), Out(HandwrittenObject), ["-g"]),
            [DispatchObject] = () => NativeToolchain.Compile(NativeToolchain.Gcc, Source("dispatch.c"), Out(DispatchObject), GccRetpolineFlags),
            // plain_main.c has no indirect branch, so it needs no thunks: the fixture's own .S defines the only ones.
            [WrongRegister] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("plain_main.c"), Source("wrong_register.S")], Out(WrongRegister), ["-O2", .. NoPlt]),
            [MalformedThunk] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("plain_main.c"), Source("malformed_thunk.S")], Out(MalformedThunk), ["-O2", .. NoPlt]),
            [ExportedThunkLib] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("exported_thunk.S")], Out(ExportedThunkLib), ["-shared"]),
            // A shared library may leave symbols undefined, so this links; its calls go to thunks nothing defines.
            [MissingThunkLib] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("libdispatch.c")], Out(MissingThunkLib), [.. GccRetpolineFlags, "-fPIC", "-shared"]),
            [GccComdat] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c")], Out(GccComdat),
                ["-O2", "-mindirect-branch=thunk", "-mindirect-branch-register", "-mfunction-return=thunk"]),
            [ClangRetpoline] = () => NativeToolchain.Link(NativeToolchain.Clang, [Source("llvm_main.c")], Out(ClangRetpoline), ["-O2", "-mretpoline"]),
            [GccGcSections] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), thunks()], Out(GccGcSections),
                [.. GccRetpolineFlags, .. NoPlt, "-ffunction-sections", "-Wl,--gc-sections"]),
            [GccCfProtection] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), thunks()], Out(GccCfProtection),
                ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fcf-protection=full", .. NoPlt]),
            [GccLarge] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), Source("big_table.c"), thunks()], Out(GccLarge), [.. GccRetpolineFlags, .. NoPlt]),
            [TooSmallThunk] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("plain_main.c"), Source("too_small_thunk.S")], Out(TooSmallThunk), ["-O2", .. NoPlt]),
            [GccForcedShstk] = () => NativeToolchain.Link(NativeToolchain.Gcc, [Source("dispatch.c"), thunks()], Out(GccForcedShstk),
                ["-O2", "-mindirect-branch=thunk-extern", "-mindirect-branch-register", "-fcf-protection=full", .. NoPlt, "-Wl,-z,shstk", "-Wl,-z,ibt"]),
            [ThunksObject] = () => NativeToolchain.Compile(NativeToolchain.Gcc, thunks(), Out(ThunksObject)),
        };
    }

    /// <summary>The built fixture (built now if this is its first use). Never modify it: patch a <see cref="CopyOf"/>.</summary>
    public string Get(string name)
    {
        if (!recipes.TryGetValue(name, out var recipe)) throw new ArgumentOutOfRangeException(nameof(name), name, "no such fixture");
        return built.GetOrAdd(name, _ => new Lazy<string>(recipe, LazyThreadSafetyMode.ExecutionAndPublication)).Value;
    }

    /// <summary>A fresh copy of a fixture (executable mode kept) under a unique name, for tests that write.</summary>
    public string CopyOf(string name, string? label = null)
    {
        string source = Get(name);
        string sub = dir.Subdirectory($"copy-{Interlocked.Increment(ref copies)}-{label ?? "x"}");
        string to = Path.Combine(sub, Path.GetFileName(source));
        File.Copy(source, to);
        return to;
    }

    /// <summary>A fresh, empty directory inside the run's temp directory.</summary>
    public string NewDirectory(string label) => dir.Subdirectory($"dir-{Interlocked.Increment(ref copies)}-{label}");

    /// <summary>Runs a program; asserts it exits 0 and returns its stdout.</summary>
    public static string RunProgram(string exe, string? libraryPath = null)
    {
        var env = libraryPath is null ? null : new Dictionary<string, string?> { ["LD_LIBRARY_PATH"] = libraryPath };
        var r = NativeToolchain.Run(exe, [], environment: env, timeout: TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, $"{r.CommandLine} exited {r.ExitCode}\n{r.StdErr}");
        return r.StdOut;
    }

    /// <summary>Defined symbols and their values, from `nm --defined-only` (the oracle for addresses).</summary>
    public static IReadOnlyDictionary<string, ulong> Nm(string file)
    {
        var r = NativeToolchain.Run(NativeToolchain.Nm, ["--defined-only", file]).EnsureSuccess();
        var map = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 3 && ulong.TryParse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v))
                map.TryAdd(parts[2], v);
        }
        return map;
    }

    /// <summary>Symbol sizes from `nm -S --defined-only` (to show what st_size GCC's COMDAT thunks really have).</summary>
    public static IReadOnlyDictionary<string, ulong> NmSizes(string file)
    {
        var r = NativeToolchain.Run(NativeToolchain.Nm, ["-S", "--defined-only", file]).EnsureSuccess();
        var map = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 4 && ulong.TryParse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var size)) map.TryAdd(parts[3], size);
            else if (parts.Length == 3) map.TryAdd(parts[2], 0);
        }
        return map;
    }

    /// <summary>
    /// The indirect calls and jumps objdump sees, as (address, containing symbol) in address order: the oracle the
    /// findings are compared with.
    /// </summary>
    public static IReadOnlyList<(ulong Address, string Function, string Text)> ObjdumpIndirect(string file)
    {
        var list = new List<(ulong, string, string)>();
        string function = "";
        NativeToolchain.RunLines(NativeToolchain.Objdump, ["-d", "--no-show-raw-insn", file], line =>
        {
            // "0000000000001169 <asm_call_rax>:" starts a symbol; "    1169:\tcall   *%rax" is an instruction.
            if (line.Length > 0 && line[0] != ' ' && line.EndsWith(">:", StringComparison.Ordinal))
            {
                int lt = line.IndexOf('<');
                function = line[(lt + 1)..^2];
                return;
            }
            if (!IndirectBranch.IsMatch(line)) return;
            int colon = line.IndexOf(':');
            if (colon > 0 && ulong.TryParse(line.AsSpan(0, colon).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var address))
                list.Add((address, function, line[(colon + 1)..].Trim()));
        });
        return list;
    }

    /// <summary>Undefined symbols (static and dynamic), from `nm -u` and `nm -D -u`.</summary>
    public static IReadOnlySet<string> UndefinedSymbols(string file)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var args in new[] { new[] { "-u", file }, new[] { "-D", "-u", file } })
        {
            var r = NativeToolchain.Run(NativeToolchain.Nm, args);
            if (!r.Succeeded) continue; // nm -D on an object, nm on a stripped file: "no symbols"
            foreach (var line in r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Last();
                int at = name.IndexOf('@');
                set.Add(at > 0 ? name[..at] : name);
            }
        }
        return set;
    }

    /// <summary>How many direct call/jmp/jcc instructions objdump shows into each symbol (`call 1240 &lt;name&gt;`).</summary>
    public static IReadOnlyDictionary<string, int> DirectReferences(string file)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var direct = new System.Text.RegularExpressions.Regex(@"^\s*[0-9a-f]+:\s+(?:(?:bnd|notrack|cs)\s+)?(?:call|jmp|j[a-z]{1,3})\s+[0-9a-f]+ <([^>+]+)>$",
            System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        NativeToolchain.RunLines(NativeToolchain.Objdump, ["-d", "--no-show-raw-insn", file], line =>
        {
            var m = direct.Match(line);
            if (m.Success) counts[m.Groups[1].Value] = counts.GetValueOrDefault(m.Groups[1].Value) + 1;
        });
        return counts;
    }

    /// <summary>DESIGN.md §3's cross-check regex: `objdump -d --no-show-raw-insn FILE | grep -cE '(call|jmp)\s+\*'`.</summary>
    public static readonly System.Text.RegularExpressions.Regex IndirectBranch =
        new(@"(call|jmp)\s+\*", System.Text.RegularExpressions.RegexOptions.Compiled | System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>The 1-based line of <paramref name="file"/> containing <paramref name="marker"/> (exactly one).</summary>
    public static int LineOf(string file, string marker)
    {
        var lines = File.ReadAllLines(file);
        var hits = Enumerable.Range(0, lines.Length).Where(i => lines[i].Contains(marker, StringComparison.Ordinal)).ToList();
        Assert.True(hits.Count == 1, $"expected one line with '{marker}' in {file}, found {hits.Count}");
        return hits[0] + 1;
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>
/// A minimal, independent reader of ELF64 section headers and symbols (not the engine's): the tests use it to find
/// the file offset of a thunk, and the robustness test to aim its mutations. Only for the well-formed fixtures.
/// </summary>
public sealed class ElfBits
{
    public sealed record Section(int Index, string Name, uint Type, ulong Flags, ulong Address, long Offset, long Size, uint Link, ulong EntrySize, long HeaderOffset);
    public sealed record Symbol(string Name, ulong Value, ulong Size, int SectionIndex, byte Info, long EntryOffset);

    public byte[] Data { get; }
    public ushort Type => U16(16);
    public long SectionHeaderOffset => (long)U64(40);
    public IReadOnlyList<Section> Sections { get; }
    public IReadOnlyList<Symbol> Symbols { get; }

    public ElfBits(byte[] data)
    {
        Data = data;
        long shoff = (long)U64(40);
        int shnum = U16(60), shstrndx = U16(62);
        var raw = new List<(uint name, uint type, ulong flags, ulong addr, long off, long size, uint link, ulong entsize, long at)>();
        for (int i = 0; i < shnum; i++)
        {
            long o = shoff + i * 64L;
            raw.Add((U32(o), U32(o + 4), U64(o + 8), U64(o + 16), (long)U64(o + 24), (long)U64(o + 32), U32(o + 40), U64(o + 56), o));
        }
        var names = raw[shstrndx];
        Sections = raw.Select((r, i) => new Section(i, i == 0 ? "" : CString(names.off + r.name), r.type, r.flags, r.addr, r.off, r.size, r.link, r.entsize, r.at)).ToList();
        var symtab = Sections.FirstOrDefault(s => s.Type == 2) ?? Sections.FirstOrDefault(s => s.Type == 11);
        var symbols = new List<Symbol>();
        if (symtab is not null)
        {
            var strtab = Sections[(int)symtab.Link];
            for (long o = symtab.Offset; o + 24 <= symtab.Offset + symtab.Size; o += 24)
                symbols.Add(new Symbol(CString(strtab.Offset + U32(o)), U64(o + 8), U64(o + 16), U16(o + 6), Data[o + 4], o));
        }
        Symbols = symbols;
    }

    public static ElfBits Read(string path) => new(File.ReadAllBytes(path));

    public Section? this[string name] => Sections.FirstOrDefault(s => s.Name == name);

    /// <summary>The file offset of a virtual address inside a section with file bytes.</summary>
    public long FileOffset(int section, ulong address) => Sections[section].Offset + (long)(address - Sections[section].Address);

    /// <summary>The defined symbol with this name (the first one).</summary>
    public Symbol SymbolNamed(string name) => Symbols.First(s => s.Name == name && s.SectionIndex != 0);

    /// <summary>The bytes at a defined symbol.</summary>
    public byte[] BytesAt(string symbol, int count)
    {
        var s = SymbolNamed(symbol);
        return Data.AsSpan((int)FileOffset(s.SectionIndex, s.Value), count).ToArray();
    }

    ushort U16(long o) => System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(Data.AsSpan((int)o));
    uint U32(long o) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(Data.AsSpan((int)o));
    ulong U64(long o) => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(Data.AsSpan((int)o));

    string CString(long o)
    {
        int end = Array.IndexOf(Data, (byte)0, (int)o);
        return System.Text.Encoding.UTF8.GetString(Data, (int)o, end - (int)o);
    }
}
