using Retpoline.Toolchain;

namespace Retpoline.Tool;

/// <summary>
/// Which project files an audit covers: a solution's projects (.sln, .slnx), one project, or every project file under
/// a folder, recursively — also when the folder holds a solution, whose projects may be a subset of what is there
/// (to audit just a solution's projects, name the solution). Build output and tool folders (bin, obj, node_modules,
/// .git) below the folder are skipped.
/// </summary>
static class AuditInputs
{
    static readonly string[] SkippedFolders = ["bin", "obj", "node_modules", ".git"];

    public static List<string> ProjectsOf(string input)
    {
        if (Directory.Exists(input)) return ProjectsUnder(input);
        if (input.EndsWith(".sln", StringComparison.OrdinalIgnoreCase) || input.EndsWith(".slnx", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                return Microsoft.Build.Construction.SolutionFile.Parse(input).ProjectsInOrder
                    .Where(p => p.ProjectType == Microsoft.Build.Construction.SolutionProjectType.KnownToBeMSBuildFormat)
                    .Select(p => Path.GetFullPath(p.AbsolutePath)).ToList();
            }
            catch (Microsoft.Build.Exceptions.InvalidProjectFileException) when (input.EndsWith(".slnx", StringComparison.OrdinalIgnoreCase) && SlnxProjects(input) is { } listed)
            {
                // The solution parser rejects a project whose extension it does not know unless the entry names a
                // Type (`dotnet sln add` writes one for our SDK); the .slnx format itself is plain enough to read.
                return listed;
            }
            catch (Microsoft.Build.Exceptions.InvalidProjectFileException e)
            {
                throw new RetpolineException(ToolchainCodes.AuditUnusableProject, input, $"cannot read the solution: {e.Message.Split('\n')[0]}");
            }
        }
        return [input];
    }

    /// <summary>Every `*.*proj` below the folder, in ordinal order; only folders below it are judged by name.</summary>
    static List<string> ProjectsUnder(string folder)
    {
        var found = new List<string>();
        var pending = new Stack<string>([folder]);
        while (pending.TryPop(out var dir))
        {
            try
            {
                found.AddRange(Directory.EnumerateFiles(dir, "*.*proj").Select(Path.GetFullPath));
                foreach (var sub in Directory.EnumerateDirectories(dir))
                    if (!SkippedFolders.Contains(Path.GetFileName(sub)) && !new DirectoryInfo(sub).Attributes.HasFlag(FileAttributes.ReparsePoint))
                        pending.Push(sub);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException) { } // an unreadable folder holds nothing we can audit
        }
        return found.Order(StringComparer.Ordinal).ToList();
    }

    static List<string>? SlnxProjects(string slnx)
    {
        try
        {
            var doc = System.Xml.Linq.XDocument.Load(slnx);
            string dir = Path.GetDirectoryName(slnx)!;
            return doc.Descendants("Project").Select(p => (string?)p.Attribute("Path")).OfType<string>()
                .Select(p => Path.GetFullPath(Path.Combine(dir, p.Replace('\\', '/')))).ToList();
        }
        catch (System.Xml.XmlException) { return null; }
    }
}
