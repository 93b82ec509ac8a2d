using YamlDotNet.Core;

namespace FairMedFM.Data;

/// <summary>Helpers that turn YamlDotNet's parse errors into positions a user can find in the file.</summary>
public static class YamlText
{
    /// <summary>
    /// For a YAML error about a tab (YamlDotNet reports "found invalid tab as indentation" at the start of the enclosing
    /// mapping, often line 1, column 1), the 1-based line and column of the first tab in the leading whitespace of a
    /// content line at or after that mapping; null for any other error or when no such tab exists.
    /// </summary>
    public static (int Line, int Column)? FirstIndentTab(string text, YamlException e)
    {
        if (!e.Message.Contains("tab", StringComparison.OrdinalIgnoreCase)) return null;
        var lines = text.Split('\n');
        int from = (int)Math.Clamp(e.Start.Line, 1, Math.Max(1, lines.Length));
        for (int pass = 0; pass < 2; pass++)
        {
            for (int i = pass == 0 ? from - 1 : 0; i < lines.Length; i++)
            {
                var line = lines[i].TrimEnd('\r');
                int indentEnd = 0;
                while (indentEnd < line.Length && line[indentEnd] is ' ' or '\t') indentEnd++;
                if (indentEnd == line.Length || line[indentEnd] == '#') continue; // blank or comment line
                int tab = line.IndexOf('\t', 0, indentEnd);
                if (tab >= 0) return (i + 1, tab + 1);
            }
        }
        return null;
    }
}
