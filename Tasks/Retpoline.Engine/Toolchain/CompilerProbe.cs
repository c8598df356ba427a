using System.Text.RegularExpressions;

namespace Retpoline.Toolchain;

/// <summary>
/// Finds out what a compiler is (GCC or Clang, which version, which target) and which retpoline-related flags it
/// really accepts — by compiling an empty file with each flag and -Werror, not by guessing from version numbers.
/// </summary>
public static partial class CompilerProbe
{
    /// <exception cref="ToolchainException">The compiler cannot be run or is not GCC/Clang.</exception>
    /// <param name="cxx">Probe as a C++ compiler: clang++ warns about a .c input, which -Werror turns into a failure.</param>
    public static CompilerInfo Probe(string compiler, string scratchDirectory, bool cxx = false)
    {
        var command = CompilerCommand.Parse(compiler);
        var version = command.Run(["--version"]);
        if (version.ExitCode != 0)
            throw new ToolchainException(ToolchainCodes.CompilerNotFound,
                $"cannot run the C compiler '{compiler}' ({FirstLine(version.StandardError)}); install gcc (apt-get install gcc g++) or clang, or set CC/CXX");
        string text = version.StandardOutput;
        // `-v` names the compiler unambiguously ("gcc version 12.2.0", "clang version 14.0.6"); --version text alone
        // does not (coreutils' `true --version` also credits the Free Software Foundation).
        string verbose = command.Run(["-v"]).StandardError;
        var family = verbose.Contains("clang version", StringComparison.Ordinal) ? CompilerFamily.Clang
            : verbose.Contains("gcc version", StringComparison.Ordinal) ? CompilerFamily.Gcc
            : throw new ToolchainException(ToolchainCodes.CompilerUnsupported, $"'{compiler}' is neither GCC nor Clang ({FirstLine(text)}); retpolines need one of them (set CC/CXX to gcc/g++ or clang/clang++)");

        var dumped = command.Run([family == CompilerFamily.Gcc ? "-dumpfullversion" : "-dumpversion"]).StandardOutput.Trim();
        var v = ParseVersion(family == CompilerFamily.Clang ? ClangVersion().Match(text).Groups[1].Value : dumped) ?? ParseVersion(dumped) ?? new Version(0, 0);
        string target = command.Run(["-dumpmachine"]).StandardOutput.Trim();

        Directory.CreateDirectory(scratchDirectory);
        string source = Path.Combine(scratchDirectory, cxx ? "retpoline_probe.cpp" : "retpoline_probe.c");
        File.WriteAllText(source, "int retpoline_probe(int (*f)(void)) { return f(); }\n");
        bool Accepts(params string[] flags)
        {
            string obj = Path.Combine(scratchDirectory, cxx ? "retpoline_probe_cxx.o" : "retpoline_probe.o");
            var r = command.Run([.. flags, "-Werror", "-c", source, "-o", obj]);
            return r.ExitCode == 0;
        }
        string[] basic = family == CompilerFamily.Gcc
            ? ["-mindirect-branch=thunk-extern", "-mindirect-branch-register"]
            : ["-mretpoline-external-thunk"];
        bool retpoline = Accepts(basic);
        return new CompilerInfo(compiler, family, v, target, retpoline,
            retpoline && Accepts([.. basic, "-mfunction-return=thunk-extern"]),
            retpoline && Accepts([.. basic, "-mindirect-branch-cs-prefix"]),
            Accepts("-mharden-sls=all"))
        { VersionLine = VersionLineOf(verbose) };
    }

    /// <summary>The "gcc version …" / "clang version …" line of `-v`; '|' is the cache's separator, so never in it.</summary>
    static string VersionLineOf(string verbose)
    {
        foreach (var line in verbose.Split('\n'))
            if (line.Contains("gcc version ", StringComparison.Ordinal) || line.Contains("clang version ", StringComparison.Ordinal))
                return line.Trim().Replace('|', '/');
        return "";
    }

    static Version? ParseVersion(string s)
    {
        var m = Regex.Match(s, @"(\d+)(?:\.(\d+))?(?:\.(\d+))?");
        if (!m.Success) return null;
        return new Version(int.Parse(m.Groups[1].Value), m.Groups[2].Success ? int.Parse(m.Groups[2].Value) : 0, m.Groups[3].Success ? int.Parse(m.Groups[3].Value) : 0);
    }

    [GeneratedRegex(@"clang version (\d+(?:\.\d+)*)")]
    private static partial Regex ClangVersion();

    static string FirstLine(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "";
}

/// <summary>A toolchain problem the build cannot go past, with its code.</summary>
public sealed class ToolchainException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>Codes for the SDK's toolchain and build steps (RPL02xx).</summary>
public static class ToolchainCodes
{
    public const string CompilerNotFound = "RPL0200";
    public const string CompilerUnsupported = "RPL0201";
    public const string NoRetpolineSupport = "RPL0202";
    public const string NotX86_64Target = "RPL0203";
    public const string ReturnThunkUnsupported = "RPL0204";
    public const string HardenSlsUnsupported = "RPL0205";
    public const string CompileFailed = "RPL0206";
    public const string LinkFailed = "RPL0207";
    /// <summary>A property with a value it does not take, or an item without required metadata (a waiver's Reason).</summary>
    public const string InvalidPropertyOrItem = "RPL0208";
    // RPL0209 (not the .NET SDK's MSBuild) is raised by the targets before any task loads: no constant here.
    public const string CfProtectionConflict = "RPL0210";
    /// <summary>`retpoline audit`: no .NET SDK (and so no MSBuild) was found to evaluate projects with.</summary>
    public const string AuditNoMSBuild = "RPL0211";
    /// <summary>`retpoline audit`: a solution or project could not be read or evaluated.</summary>
    public const string AuditUnusableProject = "RPL0212";
    /// <summary>A file named as a RetpolineBinary item is missing or not an x86-64 ELF file, so nothing verified it (warning).</summary>
    public const string BinaryNotX86_64Elf = "RPL0213";
    /// <summary>RetpolineVendor=Runtime, but the linked file does not define the run-time routine's record: nothing would patch it at load.</summary>
    public const string RuntimeRoutineMissing = "RPL0214";
    /// <summary>
    /// The link needs GCC's `__x86_indirect_thunk`, the thunk for a branch through memory (target pushed on the stack),
    /// which GCC emits for `-fno-plt` calls in position-dependent code even under -mindirect-branch-register.
    /// </summary>
    public const string MemoryThunkNeeded = "RPL0215";

    // The dotnet verbs on native projects (RPL0250–RPL0269).
    // RPL0250 (dotnet run of a project that is not an Exe) and RPL0252 (IsTestProject on a project that is not an Exe)
    // are raised by the targets: no constant here.
    /// <summary>`dotnet test`: a native test case failed (a program's exit code, a GoogleTest assertion, a timeout).</summary>
    public const string NativeTestFailed = "RPL0251";
    /// <summary>`dotnet test --logger trx`: the TRX file cannot be written where the results directory says.</summary>
    public const string TestResultsUnwritable = "RPL0253";
    /// <summary>`dotnet test --filter` on a native test project: VSTest's filter language does not reach native programs (warning).</summary>
    public const string TestFilterIgnored = "RPL0254";
}
