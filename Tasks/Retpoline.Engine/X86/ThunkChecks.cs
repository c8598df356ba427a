using Retpoline.Elf;

namespace Retpoline.X86;

/// <summary>Problems with the thunks themselves (RPL001x): missing, unknown body, wrong register, exported, SHSTK.</summary>
public static class ThunkChecks
{
    public static IEnumerable<Diagnostic> Run(ElfFile elf, IReadOnlyList<LocatedThunk> thunks, bool shstk)
    {
        foreach (var t in thunks)
        {
            if (t.Body is not { } body)
            {
                int n = (int)Math.Min(24, t.Section.EndAddress - t.Address);
                string bytes = Convert.ToHexString(elf.Data, (int)t.FileOffset, n).ToLowerInvariant();
                yield return new Diagnostic(Codes.ThunkMalformed, Severity.Error,
                    $"thunk '{t.Name}' at 0x{t.Address:x} has a body that is not a known retpoline form: {Spaced(bytes)}", t.Address, t.Name);
                continue;
            }
            if (!FormFits(t.Parsed, body))
                yield return new Diagnostic(Codes.ThunkMalformed, Severity.Error,
                    $"thunk '{t.Name}' at 0x{t.Address:x} has a {body.Form} body, which is not a form this kind of thunk may have", t.Address, t.Name);
            else if (t.Parsed.HasRegister && body.Register >= 0 && body.Register != t.Parsed.Register)
                yield return new Diagnostic(Codes.ThunkWrongRegister, Severity.Error,
                    $"thunk '{t.Name}' at 0x{t.Address:x} branches through %{Registers.Name(body.Register)}, not %{t.Parsed.RegisterName}: every caller would jump to the wrong target", t.Address, t.Name);
            if (t.Exported)
                yield return new Diagnostic(Codes.ThunkExported, Severity.Warning,
                    $"thunk '{t.Name}' is exported with default visibility from a shared library, so another object can interpose it; define it hidden (native/retpoline_thunks.S does)", t.Address, t.Name);
        }

        // One line per file, not per thunk: the cause (the SHSTK marking) is one.
        var generic = thunks.Where(t => t.Body?.Form is ThunkForm.Generic or ThunkForm.GenericReturn).ToList();
        if (shstk && generic.Count > 0)
            yield return new Diagnostic(Codes.ShstkWithGeneric, Severity.Error,
                $"the binary is marked shadow-stack compatible (SHSTK) but {generic.Count} thunk(s) have the Generic body ({string.Join(", ", generic.Take(3).Select(t => t.Name))}{(generic.Count > 3 ? ", …" : "")}), whose 'mov %reg,(%rsp); ret' faults under CET shadow stacks; link without the SHSTK marking or patch the thunks for vendor None/Amd",
                generic[0].Address, generic[0].Name);

        if (elf.Kind == ElfKind.Relocatable) yield break; // an object leaves thunks to the final link
        var defined = new HashSet<string>(thunks.Select(t => t.Name), StringComparer.Ordinal);
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in elf.Symbols.Concat(elf.DynamicSymbols))
            if (!s.IsDefined && ThunkName.TryParse(s.Name, out _) && !defined.Contains(s.Name) && reported.Add(s.Name))
                yield return new Diagnostic(Codes.ThunkMissing, Severity.Error,
                    $"thunk '{s.Name}' is called but not defined in this file; link native/retpoline_thunks.S (the SDK does) or another definition of it", null, s.Name);
    }

    static bool FormFits(ThunkName name, RecognisedBody body) => name.Kind switch
    {
        ThunkKind.Register or ThunkKind.RegisterNoTrack or ThunkKind.LlvmRetpoline => body.Form is ThunkForm.Generic or ThunkForm.Amd or ThunkForm.None,
        ThunkKind.Memory => body.Form is ThunkForm.GenericReturn,
        ThunkKind.Return => body.Form is ThunkForm.Return or ThunkForm.GenericReturn,
        ThunkKind.LlvmLvi => body.Form is ThunkForm.Amd,
        _ => false,
    };

    static string Spaced(string hex) => string.Join(' ', Enumerable.Range(0, hex.Length / 2).Select(i => hex.Substring(i * 2, 2)));
}
