namespace Retpoline.Tool;

public static class Program
{
    public static int Main(string[] args) => 2;
}
