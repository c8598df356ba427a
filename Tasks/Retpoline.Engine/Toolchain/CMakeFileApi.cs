using System.Text.Json;

namespace Retpoline.Toolchain;

/// <summary>One CMake target as the File API's codemodel-v2 describes it.</summary>
public sealed record CMakeTarget(
    string Name,
    /// <summary>EXECUTABLE, SHARED_LIBRARY, MODULE_LIBRARY, STATIC_LIBRARY, OBJECT_LIBRARY, INTERFACE_LIBRARY, UTILITY.</summary>
    string Type,
    /// <summary>Absolute paths of what it produces.</summary>
    IReadOnlyList<string> Artifacts,
    /// <summary>Absolute include directories of its compile groups.</summary>
    IReadOnlyList<string> Includes,
    /// <summary>Its compile command fragments, per compile group (the flags the target adds of its own).</summary>
    IReadOnlyList<string> CompileFragments,
    /// <summary>C, CXX…: the language it links with (empty for a static library: the languages it compiles).</summary>
    IReadOnlyList<string> Languages,
    /// <summary>Where the target was defined (absolute file, line), from its backtrace.</summary>
    string? DefinedInFile,
    int DefinedAtLine)
{
    /// <summary>What the SDK calls this kind of output (RetpolineNativeOutput's Kind), or null for one that ships nothing.</summary>
    public string? Kind => Type switch
    {
        "EXECUTABLE" => "Exe",
        "SHARED_LIBRARY" => "Library",
        "MODULE_LIBRARY" => "Module",
        "STATIC_LIBRARY" => "StaticLibrary",
        _ => null,
    };

    public bool NeedsCxx => Languages.Contains("CXX");
}

/// <summary>
/// The CMake File API (cmake-file-api(7)): an empty query file `.cmake/api/v1/query/codemodel-v2` in the build tree
/// before configuring makes every configure (and every regeneration `cmake --build` runs) write a reply:
/// `reply/index-*.json` → the codemodel-v2 object → per configuration `targets[]` → one `target-*.json` each with
/// `type`, `artifacts[].path`, `compileGroups[]` and `backtraceGraph`. That is how the outputs are known without
/// globbing the build tree.
/// </summary>
public static class CMakeFileApi
{
    public static void WriteQuery(string build)
    {
        string query = Path.Combine(build, ".cmake", "api", "v1", "query", "codemodel-v2");
        Directory.CreateDirectory(Path.GetDirectoryName(query)!);
        if (!File.Exists(query)) File.WriteAllText(query, "");
    }

    static string ReplyDirectory(string build) => Path.Combine(build, ".cmake", "api", "v1", "reply");

    public static bool HasReply(string build) => LatestIndex(build) is not null;

    /// <summary>The newest index file: names sort by their timestamp, and CMake removes older ones.</summary>
    static string? LatestIndex(string build)
    {
        string dir = ReplyDirectory(build);
        if (!Directory.Exists(dir)) return null;
        return Directory.EnumerateFiles(dir, "index-*.json").Order(StringComparer.Ordinal).LastOrDefault();
    }

    /// <exception cref="ToolchainException">No reply, or one that cannot be read (RPL0233).</exception>
    public static IReadOnlyList<CMakeTarget> ReadTargets(string build)
    {
        string index = LatestIndex(build) ?? throw new ToolchainException(CMakeCodes.FileApiUnusable,
            $"CMake wrote no File API reply in {build} (.cmake/api/v1/reply/index-*.json); CMake 3.14 or newer is needed");
        try
        {
            string dir = ReplyDirectory(build);
            using var idx = JsonDocument.Parse(File.ReadAllBytes(index));
            string? codemodel = null;
            foreach (var o in idx.RootElement.GetProperty("objects").EnumerateArray())
                if (o.GetProperty("kind").GetString() == "codemodel" && o.GetProperty("version").GetProperty("major").GetInt32() == 2)
                    codemodel = o.GetProperty("jsonFile").GetString();
            if (codemodel is null) throw new ToolchainException(CMakeCodes.FileApiUnusable, $"{Path.GetFileName(index)} has no codemodel-v2 reply");
            using var model = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, codemodel)));
            string top = model.RootElement.GetProperty("paths").GetProperty("build").GetString()!;
            string sourceTop = model.RootElement.GetProperty("paths").GetProperty("source").GetString()!;
            var targets = new List<CMakeTarget>();
            // Single-configuration generators (Ninja, Unix Makefiles) have one configuration: the build type.
            var configuration = model.RootElement.GetProperty("configurations").EnumerateArray().First();
            foreach (var t in configuration.GetProperty("targets").EnumerateArray())
                targets.Add(ReadTarget(Path.Combine(dir, t.GetProperty("jsonFile").GetString()!), top, sourceTop));
            return targets;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            throw new ToolchainException(CMakeCodes.FileApiUnusable, $"cannot read CMake's File API reply in {build}: {e.Message}");
        }
    }

    static CMakeTarget ReadTarget(string file, string buildTop, string sourceTop)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
        var t = doc.RootElement;
        var artifacts = new List<string>();
        if (t.TryGetProperty("artifacts", out var a))
            foreach (var x in a.EnumerateArray()) artifacts.Add(Path.GetFullPath(x.GetProperty("path").GetString()!, buildTop));
        var includes = new List<string>();
        var fragments = new List<string>();
        var languages = new List<string>();
        if (t.TryGetProperty("compileGroups", out var groups))
            foreach (var g in groups.EnumerateArray())
            {
                if (g.TryGetProperty("includes", out var inc))
                    foreach (var i in inc.EnumerateArray()) includes.Add(Path.GetFullPath(i.GetProperty("path").GetString()!, sourceTop));
                if (g.TryGetProperty("compileCommandFragments", out var frs))
                    foreach (var f in frs.EnumerateArray()) fragments.Add(f.GetProperty("fragment").GetString()!);
                if (g.TryGetProperty("language", out var lang) && !languages.Contains(lang.GetString()!)) languages.Add(lang.GetString()!);
            }
        if (t.TryGetProperty("link", out var link) && link.TryGetProperty("language", out var ll)) languages = [ll.GetString()!];
        var (definedIn, line) = Definition(t, sourceTop);
        return new CMakeTarget(t.GetProperty("name").GetString()!, t.GetProperty("type").GetString()!, artifacts,
            includes.Distinct().ToList(), fragments, languages, definedIn, line);
    }

    /// <summary>The command that defined the target (add_library, add_executable): the node the target's backtrace names.</summary>
    static (string? file, int line) Definition(JsonElement t, string sourceTop)
    {
        if (!t.TryGetProperty("backtrace", out var bt) || !t.TryGetProperty("backtraceGraph", out var graph)) return (null, 0);
        var node = graph.GetProperty("nodes")[bt.GetInt32()];
        string file = graph.GetProperty("files")[node.GetProperty("file").GetInt32()].GetString()!;
        int line = node.TryGetProperty("line", out var l) ? l.GetInt32() : 0;
        return (Path.GetFullPath(file, sourceTop), line);
    }

    /// <summary>
    /// Flags in a target's own compile options that turn the injected mitigation off again (they come after ours on
    /// the command line, so they win): verify will find the branches; this names the cause.
    /// </summary>
    public static IEnumerable<string> DefeatingFlags(CMakeTarget t) => t.CompileFragments
        .SelectMany(FlagSet.SplitFlags)
        .Where(f => f is "-mindirect-branch=keep" or "-mno-indirect-branch-register" or "-mno-retpoline" or "-mno-retpoline-external-thunk" or "-fplt")
        .Distinct();
}
