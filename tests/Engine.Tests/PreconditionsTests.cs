using Xunit;

namespace Retpoline.Tests;

/// <summary>
/// tests/tools.txt, the one list of what the suite needs from the machine (tests/run installs from it, the tests'
/// precondition checks read it), and the message a test fails with when something on it is missing.
/// </summary>
public sealed class PreconditionsTests
{
    [Fact]
    public void Every_tool_the_suite_needs_is_installed_or_one_install_line_says_what_is_missing()
    {
        // The whole list in one test: on a machine where tests/run was not used, this is the one failure that names
        // everything to install, in one apt-get line.
        var missing = Preconditions.Packages.SelectMany(p => p.Provides).Where(c => Preconditions.Find(c) is null).ToList();
        Assert.True(missing.Count == 0, missing.Count == 0 ? "" : Preconditions.MissingMessage(missing));
    }

    [Fact]
    public void A_missing_tool_fails_with_the_apt_get_line_of_its_packages()
    {
        Assert.Equal(
            "this test needs ld.lld-14, setcap, getcap, which are not installed: apt-get install -y --no-install-recommends lld-14 libcap2-bin (tests/run installs it when run as root)",
            Preconditions.MissingMessage(["ld.lld-14", "setcap", "getcap"]));
        Assert.Equal(
            "this test needs cmake, which is not installed: apt-get install -y --no-install-recommends cmake (the test machine's image is expected to bring it)",
            Preconditions.MissingMessage(["cmake"]));
        Assert.Equal("libgtest-dev", Preconditions.PackageOf("/usr/lib/x86_64-linux-gnu/libgtest.a").Name);
        Assert.Throws<InvalidOperationException>(() => Preconditions.PackageOf("no-such-tool"));
    }
}
