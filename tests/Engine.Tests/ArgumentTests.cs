using Retpoline.Tool;
using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// Option strictness: names only for enumerations (`--vendor 1` is not Amd), each option at most once except the
/// documented repeatable `--allow`, and every error quoting what the user typed — one RPL0108 line, exit 2, before any
/// file is read.
/// </summary>
[Collection(NativeFixturesCollection.Name)]
public sealed class ArgumentTests(FixtureSet fx)
{
    static (int Code, string Out, string Err) Run(params string[] args) => ToolInProcess.Run(args);

    [Theory]
    [InlineData("--vendor 1 F", "--vendor takes Generic, Amd, None or Host, not '1'")]
    [InlineData("--vendor=2 F", "--vendor takes Generic, Amd, None or Host, not '2'")]
    [InlineData("--vendor Amd F --vendor None", "option '--vendor' is given twice ('Amd' and 'None'); give it once")]
    [InlineData("--vendor None --call-sites 1 F", "--call-sites takes thunk or inline, not '1'")]
    [InlineData("--vendor None --dry-run --dry-run F", "option '--dry-run' is given twice")]
    [InlineData("--vendor None --dry-run=yes F", "option '--dry-run' takes no value (got '--dry-run=yes')")]
    [InlineData("--vendor= F", "option '--vendor' needs a non-empty value")]
    [InlineData("--vendor --dry-run F", "option '--vendor' needs a value, got the option '--dry-run' (write --vendor=--dry-run if that is the value)")]
    public void Patch_options_are_strict(string line, string message)
    {
        string file = fx.Get(FixtureSet.GccExeNoPlt);
        var before = File.ReadAllBytes(file);
        var r = Run(["patch", .. line.Split(' ').Select(a => a == "F" ? file : a)]);
        Assert.Equal((2, "", $"retpoline: error {Codes.Usage}: {message}\n"), r);
        Assert.Equal(before, File.ReadAllBytes(file));
    }

    [Theory]
    [InlineData("--sarif a.sarif --sarif b.sarif F", "option '--sarif' is given twice ('a.sarif' and 'b.sarif'); give it once")]
    [InlineData("--json --json F", "option '--json' is given twice")]
    [InlineData("--strict --strict F", "option '--strict' is given twice")]
    [InlineData("--sarif= F", "option '--sarif' needs a non-empty value")]
    [InlineData("F --Json", "unknown option '--Json'")]
    public void Verify_options_are_strict(string line, string message)
    {
        string file = fx.Get(FixtureSet.GccExeNoPlt);
        var r = Run(["verify", .. line.Split(' ').Select(a => a == "F" ? file : a)]);
        Assert.Equal((2, "", $"retpoline: error {Codes.Usage}: {message}\n"), r);
        Assert.False(File.Exists("a.sarif") || File.Exists("b.sarif"));
    }

    [Fact]
    public void An_empty_FILE_is_a_usage_error()
    {
        Assert.Equal((2, "", $"retpoline: error {Codes.Usage}: an empty FILE argument ('')\n"), Run("patch", "--vendor", "None", ""));
        Assert.Equal((2, "", $"retpoline: error {Codes.Usage}: an empty FILE argument ('')\n"), Run("verify", ""));
    }

    [Fact]
    public void Allow_is_the_one_repeatable_option_and_names_are_any_case()
    {
        string file = fx.Get(FixtureSet.GccExeNoPlt);
        var r = Run("verify", "--allow", "a*=reason a", "--allow", "b*=reason b", file);
        Assert.Equal(0, r.Code);
        var p = Run("patch", "--vendor", "generic", "--call-sites", "THUNK", "--dry-run", file);
        Assert.Equal(0, p.Code);
        Assert.Contains("vendor Generic", p.Out);
    }

    [Fact]
    public void Control_characters_in_what_was_typed_are_escaped()
    {
        var r = Run("patch", "--vendor", "N\none\u001b[1m", "x");
        Assert.Equal($"retpoline: error {Codes.Usage}: --vendor takes Generic, Amd, None or Host, not 'N\\none\\x1b[1m'\n", r.Err);
    }
}
