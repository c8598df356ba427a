using System.Text;
using Retpoline.Patching;
using Retpoline.X86;

namespace Retpoline.Tests;

/// <summary>
/// The generator of what native/ must share with the engine: the host vendor rules (<see cref="HostRules"/>), the
/// thunk list and every thunk's byte forms (<see cref="ThunkBody.Encode"/>, <see cref="Registers"/>), written as
/// native/retpoline_runtime_tables.h for the run-time routine, and the register list of native/retpoline_thunks.S.
/// <see cref="NativeTablesTests"/> regenerates both and compares them with the checked-in files;
/// `RETPOLINE_REGENERATE=1 dotnet test tests/Engine.Tests --filter NativeTables` rewrites them after a change here.
/// </summary>
public static class NativeTables
{
    public const string TablesFile = "native/retpoline_runtime_tables.h";
    public const string ThunksFile = "native/retpoline_thunks.S";
    /// <summary>The length of every thunk body in native/retpoline_thunks.S (GCC's generic layout).</summary>
    public const int BodyLength = ThunkBody.GccGenericLength;

    /// <summary>Every register thunk native/retpoline_thunks.S defines, in its order: each register, then its notrack twin.</summary>
    public static IEnumerable<(string Name, int Register, bool NoTrack)> Thunks()
        => Registers.ThunkRegisters.SelectMany(r => new[] { ("__x86_indirect_thunk_" + r, Registers.Number(r), false), ("__x86_indirect_thunk_nt_" + r, Registers.Number(r), true) });

    /// <summary>The one generated line of native/retpoline_thunks.S.</summary>
    public static string ThunksIrpLine() => ".irp reg, " + string.Join(", ", Registers.ThunkRegisters);

    public static string TablesHeader()
    {
        var h = new StringBuilder();
        h.Append("""
            /*
             * retpoline_runtime_tables.h — GENERATED, do not edit. The run-time routine's copy of what the engine decides
             * and writes: the `--vendor Host` rules (Tasks/Retpoline.Engine/Patching/HostRules.cs) and every thunk's byte
             * forms (X86/ThunkBody.cs, X86/Registers.cs), written by tests/Engine.Tests/NativeTables.cs. A test regenerates
             * this file and fails when it differs; after changing the engine, run
             *   RETPOLINE_REGENERATE=1 dotnet test tests/Engine.Tests --filter NativeTables
             */
            #ifndef RETPOLINE_RUNTIME_TABLES_H
            #define RETPOLINE_RUNTIME_TABLES_H

            /* Vendors, numbered as the engine's Vendor enum: a smaller number is a stronger form. */

            """);
        foreach (var v in Enum.GetValues<Vendor>()) h.Append($"#define RPL_VENDOR_{Upper(v)} {(int)v}\n");
        h.Append("#define RPL_VENDOR_COUNT ").Append(Enum.GetValues<Vendor>().Length).Append('\n');

        h.Append("\n/* Conditions (HostConditions); RPL_ANY in a rule matches every value. */\n#define RPL_ANY 0xff\n");
        foreach (var s in Enum.GetValues<SpectreState>()) h.Append($"#define RPL_SPECTRE_{Upper(s)} {(int)s}\n");
        foreach (var m in Enum.GetValues<KernelMechanism>()) h.Append($"#define RPL_MECHANISM_{Upper(m)} {(int)m}\n");
        foreach (var a in Enum.GetValues<KernelAddition>()) h.Append($"#define RPL_ADDITION_{Upper(a)} {(int)a}\n");

        h.Append("\n/* The strings that classify the kernel's spectre_v2 line and /proc/cpuinfo. */\n");
        h.Append($"#define RPL_NOT_AFFECTED {C(HostRules.NotAffected)}\n");
        h.Append($"#define RPL_VULNERABLE_PREFIX {C(HostRules.VulnerablePrefix)}\n");
        h.Append($"#define RPL_MITIGATION_PREFIX {C(HostRules.MitigationPrefix)}\n");
        h.Append($"#define RPL_FIELD_SEPARATORS {C(HostRules.FieldSeparators)}\n");
        h.Append($"#define RPL_ADDITION_SEPARATOR {C(HostRules.AdditionSeparator)}\n");
        h.Append($"#define RPL_SPECTRE_BUG_WORD {C(HostRules.SpectreBugWord)}\n");
        h.Append($"/* The reason when the spectre_v2 line alone decides and several rules agree (HostRules.SpectreLineDecides). */\n");
        h.Append($"#define RPL_SPECTRE_LINE_REASON {C(HostRules.SpectreLineReason, 24)}\n");
        h.Append($"/* How much of /proc/cpuinfo is read: a first processor block that does not end within it is not trusted. */\n");
        h.Append($"#define RPL_CPUINFO_LIMIT {HostFacts.CpuInfoLimit}\n");
        h.Append("\nstruct rpl_name { char text[32]; unsigned char value; };\n");
        h.Append("static const struct rpl_name rpl_mechanisms[] = {\n");
        foreach (var (text, m) in HostRules.Mechanisms) h.Append($"\t{{ {C(text, 32)}, RPL_MECHANISM_{Upper(m)} }},\n");
        h.Append("};\nstatic const struct rpl_name rpl_additions[] = {\n");
        foreach (var (text, a) in HostRules.Additions) h.Append($"\t{{ {C(text, 32)}, RPL_ADDITION_{Upper(a)} }},\n");
        h.Append("};\nstatic const char rpl_hardware_flag_words[][16] = { ").Append(string.Join(", ", HostRules.HardwareFlagWords.Select(w => C(w, 16)))).Append(" };\n");
        h.Append("static const char rpl_amd_family_vendors[][16] = { ").Append(string.Join(", ", HostRules.AmdFamilyVendors.Select(w => C(w, 16)))).Append(" };\n");

        h.Append("""

            /* The rules in order: the first whose every condition holds decides (HostRules.Table). */
            struct rpl_rule {
            	unsigned char spectre, cpu_known, spectre_bug, mechanism, addition, hardware_flag, amd_family, vendor;
            	char reason[24];
            };
            static const struct rpl_rule rpl_rules[] = {

            """);
        foreach (var r in HostRules.Table)
            h.Append("\t{ ").Append(string.Join(", ",
                r.Spectre is { } s ? $"RPL_SPECTRE_{Upper(s)}" : "RPL_ANY", Flag(r.CpuKnown), Flag(r.SpectreBug),
                r.Mechanism is { } m ? $"RPL_MECHANISM_{Upper(m)}" : "RPL_ANY", r.Addition is { } a ? $"RPL_ADDITION_{Upper(a)}" : "RPL_ANY",
                Flag(r.HardwareFlag), Flag(r.AmdFamily), $"RPL_VENDOR_{Upper(r.Vendor)}", C(r.Reason, 24))).Append(" },\n");
        h.Append("};\n");

        var thunks = Thunks().ToList();
        h.Append($"""

            /*
             * The register thunks of native/retpoline_thunks.S, in its order: X(symbol, register number, notrack).
             * rpl_thunk_forms[i][vendor] is the exact {BodyLength}-byte body `retpoline patch` writes into thunk i for that
             * vendor (RPL_VENDOR_GENERIC: the body as linked), int3-filled.
             */
            #define RPL_THUNK_COUNT {thunks.Count}
            #define RPL_THUNK_BODY {BodyLength}
            #define RPL_FOR_EACH_THUNK(X) \

            """);
        foreach (var (name, reg, notrack) in thunks) h.Append($"\tX({name}, {reg}, {(notrack ? 1 : 0)}) \\\n");
        h.Append("\t/* end */\n\nstatic const unsigned char rpl_thunk_forms[RPL_THUNK_COUNT][RPL_VENDOR_COUNT][RPL_THUNK_BODY] = {\n");
        foreach (var (name, reg, notrack) in thunks)
        {
            h.Append($"\t{{ /* {name} */\n");
            foreach (var v in Enum.GetValues<Vendor>())
                h.Append("\t\t{ ").Append(string.Join(", ", ThunkBody.Encode(v, reg, BodyLength, notrack).Select(b => $"0x{b:x2}"))).Append($" }}, /* {v} */\n");
            h.Append("\t},\n");
        }
        h.Append("};\n\n#endif /* RETPOLINE_RUNTIME_TABLES_H */\n");
        return h.ToString();
    }

    static string Flag(bool? b) => b is null ? "RPL_ANY" : b.Value ? "1" : "0";

    static string Upper<T>(T value) where T : struct, Enum
    {
        var s = new StringBuilder();
        foreach (char ch in value.ToString())
        {
            if (char.IsUpper(ch) && s.Length > 0) s.Append('_');
            s.Append(char.ToUpperInvariant(ch));
        }
        return s.ToString();
    }

    /// <summary>A C string literal; <paramref name="capacity"/>: it must fit a char[capacity] with its NUL.</summary>
    static string C(string text, int capacity = int.MaxValue)
    {
        if (text.Any(ch => ch is < ' ' or > '~' or '"' or '\\')) throw new ArgumentException($"not a plain ASCII string: {text}");
        if (text.Length >= capacity) throw new ArgumentException($"'{text}' does not fit char[{capacity}]");
        return $"\"{text}\"";
    }
}
