namespace FairMedFM.Client;

/// <summary>The run's output folder (--out): checked before any cell runs, and kept to this run's per-cell files when reused.</summary>
public static class OutputFolder
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
            return e.Message;
        }
    }
}
