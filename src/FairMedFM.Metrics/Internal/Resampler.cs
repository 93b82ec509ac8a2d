namespace FairMedFM.Metrics.Internal;

/// <summary>
/// Stratified (and optionally clustered) bootstrap draws as integer weights (multiplicities) on the original samples.
/// A unit is a sample, or a cluster (patient) with all its samples. Each unit belongs to one stratum — its (group, label),
/// for a cluster the most frequent (group, label) among its samples, ties to the first seen — and every draw picks, within
/// each stratum, as many units as the stratum has, with replacement.
/// </summary>
internal sealed class Resampler
{
    private readonly int[] _memberStart;   // CSR: members of unit u are _members[_memberStart[u] .. _memberStart[u+1])
    private readonly int[] _members;
    private readonly int[][] _strata;       // stratum → unit ids
    public int Samples { get; }
    public int Units => _memberStart.Length - 1;
    public int Strata => _strata.Length;
    /// <summary>Strata with a single unit: they are the same in every draw, so the bootstrap cannot vary them.</summary>
    public int SingletonStrata => _strata.Count(s => s.Length == 1);
    public bool Clustered { get; }

    public Resampler(ReadOnlySpan<int> stratumKeyA, ReadOnlySpan<int> stratumKeyB, IReadOnlyList<string>? clusters)
    {
        int n = stratumKeyA.Length;
        Samples = n;
        int[] unitOf = new int[n];
        int units;
        if (clusters is null)
        {
            for (int i = 0; i < n; i++) unitOf[i] = i;
            units = n;
        }
        else
        {
            if (clusters.Count != n) throw new ArgumentException($"clusters has {clusters.Count} entries but there are {n} samples.", nameof(clusters));
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < n; i++)
            {
                var c = clusters[i];
                if (string.IsNullOrEmpty(c))
                    throw new ArgumentException($"clusters[{i}] (patient id) is missing (null or empty): row {i}.", nameof(clusters));
                if (!ids.TryGetValue(c, out int u)) { u = ids.Count; ids.Add(c, u); }
                unitOf[i] = u;
            }
            units = ids.Count;
            Clustered = true;
        }
        _memberStart = new int[units + 1];
        foreach (int u in unitOf) _memberStart[u + 1]++;
        for (int u = 0; u < units; u++) _memberStart[u + 1] += _memberStart[u];
        _members = new int[n];
        var fill = (int[])_memberStart.Clone();
        for (int i = 0; i < n; i++) _members[fill[unitOf[i]]++] = i;

        // stratum of each unit: its most frequent (a, b) key, ties to the first seen
        var strataIds = new Dictionary<(int, int), int>();
        var strata = new List<List<int>>();
        var counts = new Dictionary<(int, int), int>();
        for (int u = 0; u < units; u++)
        {
            counts.Clear();
            (int, int) best = default; int bestCount = 0;
            for (int k = _memberStart[u]; k < _memberStart[u + 1]; k++)
            {
                int i = _members[k];
                var key = (stratumKeyA[i], stratumKeyB[i]);
                int c = counts.TryGetValue(key, out var x) ? x + 1 : 1;
                counts[key] = c;
                if (c > bestCount) { bestCount = c; best = key; }
            }
            if (!strataIds.TryGetValue(best, out int s)) { s = strata.Count; strataIds.Add(best, s); strata.Add(new List<int>()); }
            strata[s].Add(u);
        }
        _strata = strata.Select(l => l.ToArray()).ToArray();
    }

    /// <summary>Fills <paramref name="w"/> with the multiplicities of one stratified draw.</summary>
    public void Draw(ref Rng rng, int[] w)
    {
        Array.Clear(w);
        foreach (var units in _strata)
        {
            int m = units.Length;
            for (int k = 0; k < m; k++)
            {
                int u = units[rng.NextInt(m)];
                for (int j = _memberStart[u]; j < _memberStart[u + 1]; j++) w[_members[j]]++;
            }
        }
    }

    /// <summary>Jackknife blocks: every unit alone when there are at most <paramref name="maxBlocks"/> units, else the units
    /// dealt at random (seeded) into <paramref name="maxBlocks"/> blocks of near-equal size.</summary>
    public int[][] JackknifeBlocks(int maxBlocks, long seed)
    {
        int units = Units;
        var perm = Enumerable.Range(0, units).ToArray();
        int blocks = Math.Min(units, Math.Max(2, maxBlocks));
        if (blocks < units)
        {
            var rng = new Rng(seed, -1);
            for (int i = units - 1; i > 0; i--) { int j = rng.NextInt(i + 1); (perm[i], perm[j]) = (perm[j], perm[i]); }
        }
        var lists = new List<int>[blocks];
        for (int b = 0; b < blocks; b++) lists[b] = new List<int>();
        for (int k = 0; k < units; k++)
        {
            int u = perm[k];
            for (int j = _memberStart[u]; j < _memberStart[u + 1]; j++) lists[k % blocks].Add(_members[j]);
        }
        return lists.Select(l => l.ToArray()).ToArray();
    }

    /// <summary>Members of unit u (for permutation tests that swap whole clusters).</summary>
    public ReadOnlySpan<int> Members(int u) => _members.AsSpan(_memberStart[u], _memberStart[u + 1] - _memberStart[u]);
}
