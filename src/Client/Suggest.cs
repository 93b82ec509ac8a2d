namespace FairMedFM.Client;

/// <summary>"Did you mean" candidates for a mistyped name: edit-distance neighbours, and names that hold it as a part (dice → mean_dice).</summary>
public static class Suggest
{
    /// <summary>Best first; empty when nothing is close.</summary>
    public static IReadOnlyList<string> Near(string input, IEnumerable<string> candidates, int max = 3)
    {
        var x = input.Trim().ToLowerInvariant();
        if (x.Length == 0) return Array.Empty<string>();
        var scored = new List<(string Name, int Rank, int Distance)>();
        foreach (var c in candidates.Distinct(StringComparer.Ordinal))
        {
            var n = c.ToLowerInvariant();
            if (n == x) continue;
            int d = Distance(x.TrimStart('-'), n.TrimStart('-'));
            bool part = n.Split('_', '-', '.', ':').Contains(x.TrimStart('-'));
            // "dice" → "mean_dice" first: the plain mean is what a bare metric name usually means.
            if (n == "mean_" + x) scored.Add((c, 0, d));
            else if (d <= Math.Max(1, x.TrimStart('-').Length / 3)) scored.Add((c, 1, d));
            else if (part) scored.Add((c, 2, d));
        }
        return scored.OrderBy(s => s.Rank).ThenBy(s => s.Distance).ThenBy(s => s.Name, StringComparer.Ordinal).Take(max).Select(s => s.Name).ToList();
    }

    /// <summary>Edit distance with adjacent transpositions (optimal string alignment): grdi → grid is 1.</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        for (int j = 1; j <= b.Length; j++)
        {
            d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
        }
        return d[a.Length, b.Length];
    }
}
