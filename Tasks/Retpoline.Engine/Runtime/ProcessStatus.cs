using Microsoft.Win32.SafeHandles;
using Retpoline.Elf;
using Retpoline.X86;

namespace Retpoline.Runtime;

/// <summary>A thunk as it is in a process's memory now.</summary>
public sealed record LiveThunk(
    string Name,
    /// <summary>`rax` … `r15`; null for the return thunk and the memory thunk.</summary>
    string? Register,
    /// <summary>Generic, Amd, None, Return, …; null when the bytes in memory are no form we know.</summary>
    ThunkForm? Form,
    /// <summary>The run-time address.</summary>
    ulong Address);

/// <summary>A module of a process that has retpoline thunks.</summary>
public sealed record LiveModule(
    string Path,
    /// <summary>The load bias: run-time address minus the address in the file.</summary>
    ulong Bias,
    /// <summary>Built with RetpolineVendor=Runtime (the file defines the run-time routine's record).</summary>
    bool Runtime,
    /// <summary>The record as the process holds it; null when not Runtime or when it could not be read.</summary>
    RuntimeRecord? Record,
    IReadOnlyList<LiveThunk> Thunks,
    /// <summary>What could not be read, when something could not.</summary>
    string? Problem);

/// <summary>
/// `retpoline status PID`: for every module mapped in a process that has retpoline thunks, the form each thunk has in
/// memory now (/proc/PID/mem) and, for modules built with Runtime, the record their start-up routine wrote. The file of
/// each module gives the addresses (its symbol table, as verify reads it); the process gives the bytes.
/// </summary>
public static class ProcessStatus
{
    /// <exception cref="RetpolineException">RPL0109: no such process, or its maps or memory cannot be read.</exception>
    public static IReadOnlyList<LiveModule> Read(int pid)
    {
        string proc = $"/proc/{pid}";
        string mapsText;
        try { mapsText = File.ReadAllText($"{proc}/maps"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RetpolineException(Codes.ProcessUnreadable, proc,
                Directory.Exists(proc) ? $"cannot read {proc}/maps: {e.Message}" : "no such process");
        }
        SafeFileHandle memory;
        try { memory = File.OpenHandle($"{proc}/mem", FileMode.Open, FileAccess.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RetpolineException(Codes.ProcessUnreadable, proc,
                $"cannot read the memory of process {pid} ({e.Message}): run as the same user (with kernel.yama.ptrace_scope 0) or as root");
        }
        using (memory)
        {
            var maps = mapsText.Split('\n').Select(Mapping.Parse).OfType<Mapping>();
            var modules = new List<LiveModule>();
            foreach (var module in MappedModule.From(maps))
                if (ReadModule(proc, memory, module) is { } live) modules.Add(live);
            return modules;
        }
    }

    /// <summary>Null for a module without thunks (or that is not x86-64 ELF): nothing to report.</summary>
    static LiveModule? ReadModule(string proc, SafeFileHandle memory, MappedModule module)
    {
        // map_files names exactly the file that is mapped, even replaced or deleted since (it needs root); else the path.
        var first = module.Mappings[0];
        string exact = $"{proc}/map_files/{first.Start:x}-{first.End:x}";
        string path = module.Path.EndsWith(" (deleted)", StringComparison.Ordinal) ? module.Path[..^" (deleted)".Length] : module.Path;
        ElfFile? elf = TryLoad(exact) ?? TryLoad(path);
        if (elf is null) return null;
        var symbols = new SymbolIndex(elf);
        var thunks = ThunkScanner.Find(elf, symbols);
        bool runtime = RuntimeRecord.IsLinked(elf);
        if (thunks.Count == 0 && !runtime) return null;

        if (Bias(elf, module) is not { } bias)
            return new LiveModule(module.Path, 0, runtime, null, [], "its code is not mapped where the file says: the file on disk is not the one loaded");

        var live = new List<LiveThunk>();
        var buffer = new byte[64];
        string? problem = null;
        foreach (var t in thunks)
        {
            ThunkForm? form = null;
            if (ReadMemory(memory, t.Address + bias, buffer) && ThunkBody.TryRecognise(buffer, out var body)) form = body.Form;
            live.Add(new LiveThunk(t.Name, t.Parsed.HasRegister ? t.Parsed.RegisterName : null, form, t.Address + bias));
        }
        RuntimeRecord? record = null;
        if (runtime)
        {
            var symbol = elf.Symbols.First(s => s.IsDefined && s.Name == RuntimeRecord.Symbol);
            var bytes = new byte[RuntimeRecord.Size];
            record = ReadMemory(memory, symbol.Value + bias, bytes) ? RuntimeRecord.Parse(bytes) : null;
            if (record is null) problem = $"no run-time record at 0x{symbol.Value + bias:x}: the file on disk may not be the one loaded";
        }
        return new LiveModule(module.Path, bias, runtime, record, live, problem);
    }

    static ElfFile? TryLoad(string path)
    {
        try
        {
            if (!ElfSniff.Read(path).IsX86_64Elf) return null;
            return ElfFile.Load(path);
        }
        catch (Exception e) when (e is RetpolineException or IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// The load bias, from the executable mapping that holds the file's first code section: where that section's file
    /// offset lands in memory, minus its address in the file. Null when no mapping holds it.
    /// </summary>
    static ulong? Bias(ElfFile elf, MappedModule module)
    {
        var code = elf.Sections.FirstOrDefault(s => s.IsExecutable && s.HasFileBytes && (s.Flags & ElfSection.SHF_ALLOC) != 0);
        if (code is null) return null;
        ulong offset = (ulong)code.FileOffset;
        foreach (var m in module.Mappings)
            if (m.Executable && offset >= m.Offset && offset - m.Offset < m.End - m.Start)
                return unchecked(m.Start + (offset - m.Offset) - code.Address);
        return null;
    }

    static bool ReadMemory(SafeFileHandle memory, ulong address, byte[] buffer)
    {
        if (address > long.MaxValue) return false;
        try { return RandomAccess.Read(memory, buffer, (long)address) == buffer.Length; }
        catch (IOException) { return false; }
    }
}
