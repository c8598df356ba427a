namespace Retpoline.Toolchain;

/// <summary>
/// CC, CXX as make reads them: a command prefix, not only a program. `CC="ccache gcc"` (a compiler cache, the usual
/// way CI speeds C up) and `CC="gcc -m64"` work as they do with make, but the words are split here and started as an
/// argument list: no shell ever sees them. A path that exists as given is one program even with a space in it.
/// </summary>
public sealed record CompilerCommand(string Program, IReadOnlyList<string> Prefix)
{
    public static CompilerCommand Parse(string command)
    {
        if (!command.Any(char.IsWhiteSpace) || File.Exists(command)) return new(command, []);
        var words = FlagSet.SplitFlags(command);
        return words.Count == 0 ? new(command, []) : new(words[0], words.Skip(1).ToList());
    }

    /// <summary>The programs the command names (a launcher and the compiler it runs): what to watch for upgrades.</summary>
    public IEnumerable<string> Programs => Prefix.Where(w => !w.StartsWith('-')).Prepend(Program);

    public ProcessResult Run(IEnumerable<string> arguments, string? workingDirectory = null)
        => ProcessRunner.Run(Program, Prefix.Concat(arguments), workingDirectory);
}
