namespace Retpoline;

/// <summary>Entry point: read one ELF file, sweep its code, check its thunks, classify what escaped.</summary>
public static class Verifier
{
    /// <exception cref="RetpolineException">The file is unusable (RPL01xx).</exception>
    public static VerifyReport Verify(string path, VerifyOptions? options = null)
        => throw new NotImplementedException();
}
