using Microsoft.Win32.SafeHandles;
using Retpoline.IO;

namespace Retpoline.Patching;

/// <summary>
/// What a patch may do to a file beyond its bytes. Each is off by default: the file keeps its owner, group, mode
/// bits (setuid/setgid included), extended attributes (file capabilities, POSIX ACLs, SELinux labels, user.*) and
/// every hard link sees the same bytes, or the patch is refused with a coded error that names the switch.
/// </summary>
public sealed record ReplaceOptions
{
    public static readonly ReplaceOptions Default = new();
    /// <summary>A caller that cannot give the new file the original's owner/group (not root) may patch it anyway; the
    /// new file is the caller's, and setuid/setgid are dropped (as `cp -p` does when it cannot keep ownership).</summary>
    public bool AllowOwnerChange { get; init; }
    /// <summary>Patch a file without write permission (no write bit, or not writable by the caller).</summary>
    public bool AllowReadOnly { get; init; }
    /// <summary>Patch a file with more than one hard link: this name gets the patched file, the others keep the old one.</summary>
    public bool BreakHardLinks { get; init; }
}

/// <summary>
/// Replaces a file's contents all at once (<see cref="TempFile"/>: written beside it, renamed over it), keeping
/// everything else the file was. The order matters and is the kernel's: chown clears S_ISUID/S_ISGID and file
/// capabilities, a write clears them too, so the new file is chown-ed first, then written, then chmod-ed, then given
/// the original's extended attributes; then its mode and owner are checked against the original's. Anything that
/// cannot be kept refuses the patch before the rename, leaving the original exactly as it was.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// The file a path names after following symlinks (patch replaces the file a link points at, not the link).
    /// A dangling link is RPL0100 naming <paramref name="path"/> as the user typed it, and the link's target.
    /// </summary>
    public static string ResolveTarget(string path)
    {
        if (path.Length == 0) throw new RetpolineException(Codes.FileNotFound, path, "empty file name");
        if (Posix.LinkStat(path, out _) is null) return path; // missing: the loader says so
        if (Posix.RealPath(path) is { } real) return real;
        string? to = null;
        try { to = new FileInfo(path).LinkTarget; } catch (IOException) { }
        throw new RetpolineException(Codes.FileNotFound, path, to is null ? "cannot be resolved" : $"dangling symlink (to '{to}')");
    }

    /// <summary>
    /// The refusals that depend only on the file as it is (link count, write permission): checked before a patch is
    /// planned, so nothing is computed or written for a file that will not be replaced.
    /// </summary>
    public static void CheckReplaceable(string shown, FileStatus st, string target, ReplaceOptions options)
    {
        if (st.Links > 1 && !options.BreakHardLinks)
            throw new RetpolineException(Codes.HardLinks, shown,
                $"has {st.Links} hard links: the patched file would replace this name only and the other {st.Links - 1} would keep the unpatched bytes; " +
                "refusing (nothing was written; --break-hard-links patches this name alone)");
        if (options.AllowReadOnly) return;
        if ((st.Mode & 0x92) == 0) // no w bit for anyone (0222)
            throw new RetpolineException(Codes.ReadOnlyFile, shown, $"is read-only (mode {st.Octal}); refusing to replace it (nothing was written; --allow-read-only patches it anyway)");
        if (!Posix.CanWrite(target))
            throw new RetpolineException(Codes.ReadOnlyFile, shown,
                $"is not writable by uid {Posix.EffectiveUid} (owner {st.Uid}:{st.Gid}, mode {st.Octal}); refusing to replace it (nothing was written; --allow-read-only patches it anyway)");
    }

    /// <summary>
    /// Writes the new contents with <paramref name="write"/> into a temp file beside <paramref name="target"/> and
    /// renames it over the target, keeping <paramref name="original"/>'s owner, group, mode and the extended
    /// attributes read through <paramref name="source"/> (the original, open for reading).
    /// </summary>
    /// <param name="shown">The path as the user gave it, for messages.</param>
    /// <returns>Warnings for what an option allowed to change (owner, set-id bits, links).</returns>
    /// <exception cref="RetpolineException">Nothing was written: RPL0107 (I/O, a full disk, the file changed meanwhile),
    /// RPL0112 (owner or mode bits), RPL0115 (an extended attribute).</exception>
    public static IReadOnlyList<Diagnostic> Replace(string shown, string target, FileStatus original, SafeFileHandle source, Action<Stream> write, ReplaceOptions options)
    {
        var notes = new List<Diagnostic>();
        string dir = Path.GetDirectoryName(Path.GetFullPath(target))!;
        TempFile temp;
        try { temp = TempFile.Create(dir, 0x180 /* 0600: nobody else may read it, whatever the umask */); }
        catch (IOException e) { throw Io(shown, $"cannot create the new file beside it: {e.Message}"); }
        using (temp)
        {
            // 1. Owner first: chown on a file with set-id bits or capabilities would clear them, so none are set yet.
            uint mode = original.Mode;
            int rc = Posix.FChown(temp.Handle, original.Uid, original.Gid);
            if (rc != 0)
            {
                if (rc != Posix.EPERM) throw Io(shown, $"cannot set the owner of the new file: {Posix.Describe(rc)}");
                var mine = Posix.Stat(temp.Handle, out _);
                if (!options.AllowOwnerChange)
                    throw new RetpolineException(Codes.OwnerNotKept, shown,
                        $"is owned by {original.Uid}:{original.Gid} and uid {Posix.EffectiveUid} cannot give the new file that owner (it would be {mine?.Uid}:{mine?.Gid}); " +
                        "refusing (nothing was written; run as the owner or root, or --allow-owner-change)");
                mode &= ~FileStatus.SetIdBits;
                notes.Add(new Diagnostic(Codes.OwnerNotKept, Severity.Warning,
                    $"owner changed from {original.Uid}:{original.Gid} to {mine?.Uid}:{mine?.Gid} (--allow-owner-change)" +
                    ((original.Mode & FileStatus.SetIdBits) != 0 ? $"; setuid/setgid dropped (mode {original.Octal} -> {Convert.ToString(mode, 8).PadLeft(4, '0')})" : "")));
            }

            // 2. The bytes.
            try { write(temp.Stream); }
            catch (IOException e) { throw Io(shown, $"cannot write the patched file ({e.Message}); the original is unchanged"); }

            // 3. Mode, after the write (a write clears set-id bits), then every extended attribute (a write and a
            // chown clear security.capability; a POSIX ACL sets the group bits to its mask, which chmod set the same).
            rc = Posix.FChmod(temp.Handle, mode);
            if (rc != 0) throw Io(shown, $"cannot set the mode of the new file: {Posix.Describe(rc)}");
            CopyXattrs(shown, source, temp.Handle);

            // 4. Check: the kernel drops S_ISGID silently when the caller is not in the file's group.
            var now = Posix.Stat(temp.Handle, out rc) ?? throw Io(shown, $"cannot stat the new file: {Posix.Describe(rc)}");
            if (now.Mode != mode)
                throw new RetpolineException(Codes.OwnerNotKept, shown,
                    $"the new file would have mode {now.Octal}, not {Convert.ToString(mode, 8).PadLeft(4, '0')} (the kernel refused a bit for this caller); refusing (nothing was written)");
            if (!options.AllowOwnerChange && (now.Uid != original.Uid || now.Gid != original.Gid))
                throw new RetpolineException(Codes.OwnerNotKept, shown, $"the new file would be owned by {now.Uid}:{now.Gid}, not {original.Uid}:{original.Gid}; refusing (nothing was written)");

            // 5. Nobody replaced or rewrote the original while we read it.
            if (Posix.Stat(target, out _) is not { } current || !current.Unchanged(original))
                throw Io(shown, "changed while it was being patched; refusing to replace it (nothing was written)");
            try { temp.ReplaceAt(target); }
            catch (IOException e) { throw Io(shown, $"cannot replace the file: {e.Message}; the original is unchanged"); }
        }
        if (original.Links > 1)
            notes.Add(new Diagnostic(Codes.HardLinks, Severity.Warning, $"hard link broken: the other {original.Links - 1} name(s) keep the unpatched file (--break-hard-links)"));
        return notes;
    }

    /// <summary>Makes the new file's extended attributes exactly the original's: copies each, removes any the new
    /// file got by itself (a directory's default ACL is inherited and would grant access the original did not).</summary>
    static void CopyXattrs(string shown, SafeFileHandle from, SafeFileHandle to)
    {
        var names = Posix.ListXattrs(from, out int errno)
            ?? throw new RetpolineException(Codes.XattrNotCopied, shown, $"cannot list its extended attributes ({Posix.Describe(errno)}); refusing (nothing was written)");
        foreach (var name in names)
        {
            var value = Posix.GetXattr(from, name, out errno);
            if (value is null && errno == Posix.ENODATA) continue; // removed since it was listed
            if (value is null)
                throw new RetpolineException(Codes.XattrNotCopied, shown, $"cannot read extended attribute '{name}' ({Posix.Describe(errno)}); the patched file would lose it: refusing (nothing was written)");
            int rc = Posix.SetXattr(to, name, value);
            if (rc != 0)
                throw new RetpolineException(Codes.XattrNotCopied, shown,
                    $"cannot copy extended attribute '{name}' onto the new file ({Posix.Describe(rc)}); the patched file would lose it: refusing (nothing was written)");
        }
        var extra = (Posix.ListXattrs(to, out errno) ?? []).Except(names, StringComparer.Ordinal).ToList();
        foreach (var name in extra)
        {
            int rc = Posix.RemoveXattr(to, name);
            if (rc != 0 && rc != Posix.ENODATA)
                throw new RetpolineException(Codes.XattrNotCopied, shown,
                    $"the new file got extended attribute '{name}' the original does not have and it cannot be removed ({Posix.Describe(rc)}); refusing (nothing was written)");
        }
    }

    static RetpolineException Io(string shown, string message) => new(Codes.IoError, shown, message);
}
