using System.Text.RegularExpressions;

namespace FairMedFM.Client;

/// <summary>The run's output folder (--out): checked before any cell runs, and kept to this run's per-cell files when reused.</summary>
public static partial class OutputFolder
{
    /// <summary>Creates the folder and writes and deletes a probe file in it; null when that works, else the reason.</summary>
    public static string? CheckWritable(string dir)
    {
        try
        {
            Directory.CreateDirectory(dir);
            var probe = Path.Combine(dir, $".fairmedfm-write-check-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return Reason(e);
        }
    }

    /// <summary>Why a folder could not be made or written, in words (--out, --cache, synth-seg's --out): .NET says "Could not
    /// find file '/proc/x'" for a folder whose parent does not allow new entries.</summary>
    public static string Reason(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        DirectoryNotFoundException or FileNotFoundException => "the folder cannot be created there (its parent is missing or does not allow new folders)",
        _ => e.Message,
    };

    /// <summary>
    /// Deletes <c>cells/&lt;id&gt;.json</c> and <c>cells/&lt;id&gt;.predictions.csv</c> whose id is not one of
    /// <paramref name="cellIds"/> (files the result writer wrote in an earlier run into the same folder). Only those two
    /// kinds, named by a 16-hex-digit cell id, are touched; any other file is the user's and stays. Returns the files removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleCellFiles(string outDir, IEnumerable<string> cellIds)
    {
        var cells = Path.Combine(outDir, "cells");
        if (!Directory.Exists(cells)) return Array.Empty<string>();
        var keep = cellIds.ToHashSet(StringComparer.Ordinal);
        var removed = new List<string>();
        foreach (var f in Directory.EnumerateFiles(cells))
        {
            var m = CellFile().Match(Path.GetFileName(f));
            if (!m.Success || keep.Contains(m.Groups[1].Value)) continue;
            File.Delete(f);
            removed.Add(f);
        }
        return removed;
    }

    [GeneratedRegex(@"^([0-9a-f]{16})\.(json|predictions\.csv)$")]
    private static partial Regex CellFile();
}
