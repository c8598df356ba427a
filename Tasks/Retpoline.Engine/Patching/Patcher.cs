namespace Retpoline.Patching;

/// <summary>Rewrites every recognised thunk body for a vendor, atomically, idempotently.</summary>
public static class Patcher
{
    /// <exception cref="RetpolineException">Unusable input (RPL01xx) or a refused patch (RPL0016): the file is untouched.</exception>
    public static PatchResult Patch(string path, Vendor vendor, bool dryRun = false)
        => throw new NotImplementedException();
}
