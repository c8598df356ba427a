namespace Retpoline.Toolchain;

/// <summary>Reads the make-style dependency file `-MMD -MF` writes: `obj.o: src.c a.h \` with `\ ` for spaces.</summary>
public static class DepFile
{
    public static List<string>? Read(string path)
    {
        string text;
        try { text = File.ReadAllText(path); } catch (IOException) { return null; } catch (UnauthorizedAccessException) { return null; }
        text = text.Replace("\\\r\n", " ").Replace("\\\n", " ");
        int colon = FindTargetColon(text);
        if (colon < 0) return null;
        var deps = new List<string>();
        var current = new System.Text.StringBuilder();
        for (int i = colon + 1; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\\' && i + 1 < text.Length && text[i + 1] == ' ') { current.Append(' '); i++; continue; }
            if (char.IsWhiteSpace(c))
            {
                if (current.Length > 0) { deps.Add(current.ToString()); current.Clear(); }
                if (c == '\n') break; // -MP phony targets follow on later lines
                continue;
            }
            current.Append(c);
        }
        if (current.Length > 0) deps.Add(current.ToString());
        return deps;
    }

    static int FindTargetColon(string text)
    {
        for (int i = 0; i < text.Length; i++)
            if (text[i] == ':' && (i + 1 == text.Length || char.IsWhiteSpace(text[i + 1]))) return i;
        return -1;
    }
}
