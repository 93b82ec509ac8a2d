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
            int d = FairMedFM.Data.EditDistance.Between(x.TrimStart('-'), n.TrimStart('-'));
            bool part = n.Split('_', '-', '.', ':').Contains(x.TrimStart('-'));
            // "dice" → "mean_dice" first: the plain mean is what a bare metric name usually means.
            if (n == "mean_" + x) scored.Add((c, 0, d));
            else if (d <= Math.Max(1, x.TrimStart('-').Length / 3)) scored.Add((c, 1, d));
            else if (part) scored.Add((c, 2, d));
        }
        return scored.OrderBy(s => s.Rank).ThenBy(s => s.Distance).ThenBy(s => s.Name, StringComparer.Ordinal).Take(max).Select(s => s.Name).ToList();
    }
}
