using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace FairMedFM.Data;

public sealed record SplitFractions(double Train = 0.6, double Validation = 0.2, double Test = 0.2);

/// <summary>Sample indices (ascending) of each split, plus a fingerprint of how they were made.</summary>
public sealed class DataSplit
{
    public required int[] Train { get; init; }
    public required int[] Validation { get; init; }
    public required int[] Test { get; init; }
    /// <summary>sha256 (hex) of the seed, fractions, stratification, sample count and the three index lists.</summary>
    public required string SplitHash { get; init; }
    public required int Seed { get; init; }
    public required SplitFractions Fractions { get; init; }
    public string? StratifyAttribute { get; init; }
}

/// <summary>
/// Seeded patient-level split: every patient's images go to one split.
/// <para>Balance is measured on image counts in these dimensions: all images, label-1 images and, with
/// <c>stratifyAttribute</c>, images of each group and label-1 images of each group. The cost of an assignment is
/// Σ_split Σ_dim (count − fraction·total)² / total (a chi-square-like distance to the exact proportions).</para>
/// <para>Steps: patients (ordinal id order) are shuffled with the seed (own SplitMix64, so results do not depend on
/// the .NET version); each goes greedily to the split that lowers the cost most against the totals seen so far;
/// then single-patient moves and (up to 2,000 patients; O(P²) per pass) pairwise swaps between splits are applied while they lower
/// the cost. Different seeds start from different random orders and end in different, equally balanced splits.
/// A split with fraction 0 stays empty.</para>
/// </summary>
public static class PatientSplitter
{
    private const int MaxSwapPatients = 2000;
    private const int MaxPasses = 50;

    public static DataSplit Split(LoadedDataset data, int seed, SplitFractions? fractions = null, string? stratifyAttribute = null)
    {
        fractions ??= new SplitFractions();
        var f = new[] { fractions.Train, fractions.Validation, fractions.Test };
        if (f.Any(x => !double.IsFinite(x) || x < 0) || f.Sum() <= 0)
            throw new ArgumentException($"split fractions must be non-negative with a positive sum, got {fractions}");
        var sum = f.Sum();
        for (int i = 0; i < 3; i++) f[i] /= sum;

        if (stratifyAttribute is not null && !data.AttributeNames.Contains(stratifyAttribute))
            throw new ArgumentException($"unknown stratification attribute '{stratifyAttribute}' (have: {string.Join(", ", data.AttributeNames)})");
        int groups = stratifyAttribute is null ? 0 : data.GroupLabels(stratifyAttribute).Count;
        int dims = 2 + 2 * groups;

        // Patients in ordinal id order first, so CSV row order does not change the result.
        var patients = data.Samples.GroupBy(s => s.PatientId, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g =>
            {
                var v = new double[dims];
                foreach (var smp in g)
                {
                    v[0]++;
                    if (smp.Label == 1) v[1]++;
                    if (stratifyAttribute is not null)
                    {
                        int code = smp.GroupCodes[stratifyAttribute];
                        v[2 + code]++;
                        if (smp.Label == 1) v[2 + groups + code]++;
                    }
                }
                return new Patient(g.Key, g.Select(x => x.Index).ToArray(), v);
            })
            .ToArray();

        var rng = new SplitMix64((ulong)(uint)seed ^ 0x5F3A_9E37_79B9_7F4AUL);
        for (int i = patients.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (patients[i], patients[j]) = (patients[j], patients[i]);
        }

        var total = new double[dims];
        foreach (var p in patients) for (int d = 0; d < dims; d++) total[d] += p.Vector[d];
        var weight = total.Select(t => 1.0 / Math.Max(t, 1.0)).ToArray();
        var active = Enumerable.Range(0, 3).Where(s => f[s] > 0).ToArray();

        // Greedy pass against the running totals.
        var counts = new double[3][];
        for (int s = 0; s < 3; s++) counts[s] = new double[dims];
        var seen = new double[dims];
        var where = new int[patients.Length];
        for (int i = 0; i < patients.Length; i++)
        {
            var v = patients[i].Vector;
            for (int d = 0; d < dims; d++) seen[d] += v[d];
            int best = active[0];
            double bestCost = double.PositiveInfinity;
            foreach (int s in active)
            {
                double c = 0;
                for (int t = 0; t < 3; t++)
                    for (int d = 0; d < dims; d++)
                    {
                        double a = counts[t][d] + (t == s ? v[d] : 0) - f[t] * seen[d];
                        c += a * a * weight[d];
                    }
                if (c < bestCost - 1e-12) { bestCost = c; best = s; }
            }
            where[i] = best;
            for (int d = 0; d < dims; d++) counts[best][d] += v[d];
        }

        // Local search against the final totals: moves, then swaps.
        double Term(int s, int d, double delta)
        {
            double a = counts[s][d] + delta - f[s] * total[d];
            return a * a * weight[d];
        }
        double MoveDelta(double[] v, int from, int to)
        {
            double c = 0;
            for (int d = 0; d < dims; d++)
            {
                if (v[d] == 0) continue;
                c += Term(from, d, -v[d]) - Term(from, d, 0) + Term(to, d, v[d]) - Term(to, d, 0);
            }
            return c;
        }
        void Apply(double[] v, int from, int to)
        {
            for (int d = 0; d < dims; d++) { counts[from][d] -= v[d]; counts[to][d] += v[d]; }
        }
        var diff = new double[dims];
        for (int pass = 0; pass < MaxPasses; pass++)
        {
            bool improved = false;
            for (int i = 0; i < patients.Length; i++)
                foreach (int s in active)
                {
                    if (s == where[i]) continue;
                    if (MoveDelta(patients[i].Vector, where[i], s) < -1e-9)
                    {
                        Apply(patients[i].Vector, where[i], s);
                        where[i] = s;
                        improved = true;
                    }
                }
            if (patients.Length <= MaxSwapPatients)
                for (int i = 0; i < patients.Length; i++)
                    for (int j = i + 1; j < patients.Length; j++)
                    {
                        int a = where[i], b = where[j];
                        if (a == b) continue;
                        // Swapping i (in a) and j (in b) moves diff = v_i - v_j from a to b.
                        var vi = patients[i].Vector;
                        var vj = patients[j].Vector;
                        for (int d = 0; d < dims; d++) diff[d] = vi[d] - vj[d];
                        if (MoveDelta(diff, a, b) < -1e-9)
                        {
                            Apply(diff, a, b);
                            (where[i], where[j]) = (b, a);
                            improved = true;
                        }
                    }
            if (!improved) break;
        }

        var lists = new[] { new List<int>(), new List<int>(), new List<int>() };
        for (int i = 0; i < patients.Length; i++) lists[where[i]].AddRange(patients[i].Indices);
        var train = lists[0].Order().ToArray();
        var val = lists[1].Order().ToArray();
        var test = lists[2].Order().ToArray();

        var sb = new StringBuilder("fairmedfm.split.v1");
        sb.Append("\nn=").Append(data.Samples.Count);
        sb.Append("\nseed=").Append(seed.ToString(CultureInfo.InvariantCulture));
        sb.Append("\nfractions=").Append(string.Join(",", new[] { fractions.Train, fractions.Validation, fractions.Test }.Select(CsvNumbers.Format)));
        sb.Append("\nstratify=label").Append(stratifyAttribute is null ? "" : "+" + stratifyAttribute);
        sb.Append("\ntrain=").Append(string.Join(",", train));
        sb.Append("\nvalidation=").Append(string.Join(",", val));
        sb.Append("\ntest=").Append(string.Join(",", test));
        return new DataSplit
        {
            Train = train, Validation = val, Test = test, Seed = seed, Fractions = fractions,
            StratifyAttribute = stratifyAttribute,
            SplitHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()))),
        };
    }

    private sealed record Patient(string Id, int[] Indices, double[] Vector);

    /// <summary>SplitMix64 (Steele, Lea, Flood 2014): tiny, fixed, good enough for shuffling.</summary>
    private sealed class SplitMix64(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, n) by rejection (no modulo bias).</summary>
        public int NextInt(int n)
        {
            ulong un = (ulong)n;
            ulong limit = ulong.MaxValue - ulong.MaxValue % un;
            ulong v;
            do v = Next(); while (v >= limit);
            return (int)(v % un);
        }
    }
}
