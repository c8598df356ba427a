using Sample;
using Xunit;

public class MathXTests
{
    [Theory]
    [InlineData(0, 42)]
    [InlineData(1, -1)]
    [InlineData(2, 42 * 42 - 1)]
    public void Calls_the_native_library_through_its_retpoline_thunks(int op, long expected)
    {
        long a = op == 2 ? 41 : 20, b = op == 2 ? 43 : op == 1 ? 21 : 22;
        Assert.Equal(expected, MathX.Apply(op, a, b));
    }
}
