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
/// Seeded patient-level split. Every patient's images go to one split. Patients are grouped into strata by their
/// majority label (and majority group of <c>stratifyAttribute</c> when given; ties → label 1 / first group code),
/// strata are laid end to end with the patients of each stratum shuffled (own SplitMix64 PRNG, so the result does
/// not depend on the .NET version), then each patient goes to the split whose image count lags its target the most
/// (target = fraction × images seen so far). Running allocation keeps every stratum, and the whole, within about
/// one patient's images of the requested fractions.
/// </summary>
public static class PatientSplitter
{
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

        // Patients in ordinal id order first, so CSV row order does not change the result.
        var patients = data.Samples.GroupBy(s => s.PatientId, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new Patient(g.Key, g.Select(s => s.Index).ToArray(), StratumKey(g.ToList(), stratifyAttribute)))
            .ToList();

        var rng = new SplitMix64((ulong)(uint)seed ^ 0x5F3A_9E37_79B9_7F4AUL);
        var ordered = new List<Patient>(patients.Count);
        foreach (var stratum in patients.GroupBy(p => p.Stratum, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var members = stratum.ToArray();
            for (int i = members.Length - 1; i > 0; i--)
            {
                int j = rng.NextInt(i + 1);
                (members[i], members[j]) = (members[j], members[i]);
            }
            ordered.AddRange(members);
        }

        var assigned = new long[3];
        long seen = 0;
        var lists = new[] { new List<int>(), new List<int>(), new List<int>() };
        foreach (var p in ordered)
        {
            seen += p.Indices.Length;
            int best = 0;
            double bestNeed = double.NegativeInfinity;
            for (int s = 0; s < 3; s++)
            {
                if (f[s] == 0) continue;
                double need = f[s] * seen - assigned[s];
                if (need > bestNeed) { bestNeed = need; best = s; }
            }
            assigned[best] += p.Indices.Length;
            lists[best].AddRange(p.Indices);
        }
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

    private static string StratumKey(List<Sample> samples, string? attribute)
    {
        int positives = samples.Count(s => s.Label == 1);
        int label = 2 * positives >= samples.Count ? 1 : 0;
        if (attribute is null) return $"y{label}";
        var group = samples.GroupBy(s => s.GroupCodes[attribute])
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        return $"y{label}|g{group:D6}";
    }

    private sealed record Patient(string Id, int[] Indices, string Stratum);

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
