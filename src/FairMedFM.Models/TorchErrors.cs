namespace FairMedFM.Models;

/// <summary>Makes libtorch's error messages fit a one-line failure reason.</summary>
public static class TorchErrors
{
    /// <summary>
    /// The message without the native C++ stack libtorch appends ("Exception raised from … (most recent call first):"
    /// and the "frame #N: …" lines that follow): what a researcher can act on is the first line.
    /// </summary>
    public static string Clean(string message)
    {
        if (string.IsNullOrEmpty(message)) return message;
        var lines = message.Split('\n');
        var kept = new List<string>();
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd('\r');
            var t = line.TrimStart();
            if (t.StartsWith("Exception raised from ", StringComparison.Ordinal)) break;
            if (t.StartsWith("frame #", StringComparison.Ordinal)) continue;
            kept.Add(line);
        }
        return string.Join("\n", kept).TrimEnd();
    }
}
