namespace Retpoline.Tests;

/// <summary>The `retpoline` tool run in this process with its own writers: exit code, stdout and stderr.</summary>
static class ToolInProcess
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Retpoline.Tool.Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
