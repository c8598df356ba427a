namespace Retpoline.Toolchain;

/// <summary>What the SDK asks of a CMake or make build: the probed compilers and the mitigation they must compile with.</summary>
public sealed record ForeignBuildSettings
{
    /// <summary>CC and CXX as the user gave them (`gcc`, `ccache gcc`, `clang-14`): a command prefix, as make reads them.</summary>
    public string CC { get; init; } = "gcc";
    public string CXX { get; init; } = "g++";
    public CompilerFamily Family { get; init; } = CompilerFamily.Gcc;
    public string Configuration { get; init; } = "Debug";
    public bool RetpolineEnabled { get; init; } = true;
    public bool ReturnThunk { get; init; }
    public bool HardenSls { get; init; }
    public bool CsPrefix { get; init; }
    /// <summary>The package's thunk object, linked into every executable and shared library (none when disabled).</summary>
    public string ThunkObject { get; init; } = "";
    /// <summary>RetpolineVendor=Runtime: the start-up routine compiled for executables and for shared libraries/modules.</summary>
    public string RuntimeExeObject { get; init; } = "";
    public string RuntimeLibraryObject { get; init; } = "";

    /// <summary>The compile flags the mitigation needs, family- and option-correct (the native driver's own set).</summary>
    public IReadOnlyList<string> CompileFlags => FlagSet.Mitigation(
        new CompilerInfo(CC, Family, new Version(0, 0), "", true, ReturnThunk, CsPrefix, HardenSls),
        new NativeSettings { RetpolineEnabled = RetpolineEnabled, ReturnThunk = ReturnThunk, HardenSls = HardenSls, CsPrefix = CsPrefix });

    /// <summary>The link flags of a native project's link (-fno-plt is a compile flag and already in <see cref="CompileFlags"/>).</summary>
    public IReadOnlyList<string> LinkFlags => RetpolineEnabled ? ["-Wl,-z,now", "-Wl,-z,relro"] : [];
}

/// <summary>
/// A CMake configure with the mitigation injected where no CMakeLists.txt can drop it. CMake pastes
/// `CMAKE_&lt;LANG&gt;_COMPILER_ARG1` right after the compiler in every compile and link rule, before CMAKE_C_FLAGS
/// and the target's own options, so `set(CMAKE_C_FLAGS "-O2")` in a project keeps them (the `*_FLAGS_INIT`
/// variables only seed the cache and are lost that way). The thunk object and the link flags go in
/// `CMAKE_&lt;LANG&gt;_STANDARD_LIBRARIES`, which CMake appends to the link line of every executable, shared library
/// and module for the target's link language only: exactly once per link, never into a static library. A target
/// that adds a defeating flag of its own (`-mindirect-branch=keep` after ours) is what verify is there for.
/// </summary>
public static class CMakeProject
{
    static readonly string[] Languages = ["C", "CXX"];

    /// <summary>
    /// The toolchain file the configure names with CMAKE_TOOLCHAIN_FILE. ARG1 and STANDARD_LIBRARIES are pasted into
    /// the shell command of every rule as they are, so each word is quoted as the shell needs (a path with a space).
    /// </summary>
    public static string ToolchainFile(ForeignBuildSettings s)
    {
        var text = new System.Text.StringBuilder();
        text.Append("# Written by Retpoline.Sdk: the compilers it probed and the mitigation no CMakeLists.txt may drop.\n");
        foreach (var (lang, command) in new[] { ("C", s.CC), ("CXX", s.CXX) })
        {
            var (launcher, compiler, args) = Split(command);
            text.Append($"set(CMAKE_{lang}_COMPILER {Quote(compiler)})\n");
            if (launcher.Count > 0) text.Append($"set(CMAKE_{lang}_COMPILER_LAUNCHER {Quote(string.Join(';', launcher))})\n");
            var arg1 = args.Concat(s.CompileFlags).ToList();
            if (arg1.Count > 0) text.Append($"set(CMAKE_{lang}_COMPILER_ARG1 {Quote(string.Join(' ', arg1.Select(ProcessRunner.Quote)))})\n");
        }
        var libraries = new List<string>();
        if (s.RetpolineEnabled && s.ThunkObject.Length > 0) libraries.Add(ProcessRunner.Quote(s.ThunkObject));
        libraries.AddRange(s.LinkFlags);
        if (libraries.Count > 0)
            foreach (var lang in Languages)
                // Kept when a project appends to it; a normal variable, so it wins over any cache entry.
                text.Append($"set(CMAKE_{lang}_STANDARD_LIBRARIES {Quote(string.Join(' ', libraries))})\n");
        return text.ToString();
    }

    /// <summary>
    /// The file named by CMAKE_PROJECT_INCLUDE (read at the end of every project() call). It defers, to the end of the
    /// top-level directory, a walk over every target the project defines (BUILDSYSTEM_TARGETS of each directory) that
    /// gives each executable, shared library and module, as link options (which mix with either target_link_libraries
    /// signature):
    /// - a linker map beside the artifact (`$&lt;TARGET_FILE&gt;.map`), so each finding names the object or archive member
    ///   it came from, as in a native project's link (`-Xlinker`, not `-Wl,`, which would split a path at its commas);
    /// - with RetpolineVendor=Runtime, the start-up routine of the target's kind: an executable's `.preinit_array` one,
    ///   a shared library's or module's `.init_array` one (ld refuses `.preinit_array` in a shared object).
    /// Null when the mitigation is off.
    /// </summary>
    public static string? ProjectInclude(ForeignBuildSettings s)
    {
        if (!s.RetpolineEnabled) return null;
        bool runtime = s.RuntimeExeObject.Length > 0 && s.RuntimeLibraryObject.Length > 0;
        string routine = !runtime ? "" : $$"""

                  if(type STREQUAL "EXECUTABLE")
                    target_link_options(${t} PRIVATE {{Quote(s.RuntimeExeObject)}})
                  elseif(type STREQUAL "SHARED_LIBRARY" OR type STREQUAL "MODULE_LIBRARY")
                    target_link_options(${t} PRIVATE {{Quote(s.RuntimeLibraryObject)}})
                  endif()
            """;
        return $$"""
            # Written by Retpoline.Sdk: each linked target's linker map{{(runtime ? ", and the start-up routine of its kind (RetpolineVendor=Runtime)" : "")}}.
            if(NOT RETPOLINE_LINK_OPTIONS_SCHEDULED)
              set(RETPOLINE_LINK_OPTIONS_SCHEDULED TRUE)
              function(_retpoline_link_options dir)
                get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
                foreach(t IN LISTS targets)
                  get_target_property(type ${t} TYPE)
                  if(type STREQUAL "EXECUTABLE" OR type STREQUAL "SHARED_LIBRARY" OR type STREQUAL "MODULE_LIBRARY")
                    target_link_options(${t} PRIVATE "SHELL:-Xlinker \"-Map=$<TARGET_FILE:${t}>.map\"")
                  endif(){{routine}}
                endforeach()
                get_property(subdirectories DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
                foreach(d IN LISTS subdirectories)
                  _retpoline_link_options("${d}")
                endforeach()
              endfunction()
              cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _retpoline_link_options "${CMAKE_SOURCE_DIR}")
            endif()

            """;
    }

    /// <summary>`ccache gcc -m64` → launcher [ccache], compiler gcc, arguments [-m64]: the compiler is the last word that is not a flag.</summary>
    public static (IReadOnlyList<string> launcher, string compiler, IReadOnlyList<string> args) Split(string command)
    {
        var c = CompilerCommand.Parse(command);
        var words = c.Prefix.Prepend(c.Program).ToList();
        int last = words.FindLastIndex(w => !w.StartsWith('-'));
        if (last < 0) last = 0;
        return (words.Take(last).ToList(), words[last], words.Skip(last + 1).ToList());
    }

    /// <summary>The arguments of `cmake` that configure SOURCE into BUILD (no `--fresh`: <see cref="ConfigureArguments"/> adds it).</summary>
    public static List<string> ConfigureArguments(string source, string build, string toolchainFile, string generator, string configuration,
        IEnumerable<(string name, string value)> defines, string? projectInclude = null)
    {
        var a = new List<string> { "-S", source, "-B", build, "-G", generator, "-DCMAKE_TOOLCHAIN_FILE=" + toolchainFile,
            "-DCMAKE_BUILD_TYPE=" + configuration, "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON" };
        if (projectInclude is not null) a.Add("-DCMAKE_PROJECT_INCLUDE=" + projectInclude);
        foreach (var (name, value) in defines) a.Add($"-D{name}={value}");
        return a;
    }

    /// <summary>
    /// Whether our configure must run: never configured (no cache or no File API reply), or the injected settings
    /// (the configure command with the toolchain file's text) differ from the last successful configure's. Anything
    /// else — an edited CMakeLists.txt — is CMake's own regeneration check, which `cmake --build` runs.
    /// </summary>
    public static bool NeedsConfigure(string build, string recordFile, string record)
    {
        if (!File.Exists(Path.Combine(build, "CMakeCache.txt")) || !CMakeFileApi.HasReply(build)) return true;
        try { return File.ReadAllText(recordFile) != record; } catch (IOException) { return true; }
    }

    /// <summary>Ninja when it is on PATH (what CI installs), Unix Makefiles otherwise; a build tree keeps the generator it was made with.</summary>
    public static string Generator(string build, string? path = null)
    {
        string cache = Path.Combine(build, "CMakeCache.txt");
        if (File.Exists(cache))
            foreach (var line in File.ReadLines(cache))
                if (line.StartsWith("CMAKE_GENERATOR:INTERNAL=", StringComparison.Ordinal)) return line["CMAKE_GENERATOR:INTERNAL=".Length..];
        return OnPath("ninja", path) is not null ? "Ninja" : "Unix Makefiles";
    }

    public static string? OnPath(string program, string? path = null)
    {
        foreach (var dir in (path ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, program);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>A CMake argument in double quotes: backslashes, quotes and `$` escaped, so no value is read as CMake code.</summary>
    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("$", "\\$") + "\"";
}
