using System.Text;

namespace FairMedFM.Data.Segmentation;

/// <summary>
/// Small fixed random generator (SplitMix64, Steele/Lea/Flood 2014) so prompts and synthetic data do not depend on
/// the .NET version's <see cref="Random"/>; plus the seed derivation that makes per-sample draws order-independent.
/// </summary>
public sealed class SegRandom
{
    private ulong _state;

    public SegRandom(ulong seed) => _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform integer in [0, n), by rejection (no modulo bias).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), "n must be positive");
        ulong un = (ulong)n;
        ulong limit = ulong.MaxValue - ulong.MaxValue % un;
        ulong v;
        do v = NextUInt64(); while (v >= limit);
        return (int)(v % un);
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform double in [lo, hi).</summary>
    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Standard normal (Box–Muller; one value per call, the second is discarded for simplicity).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// Seed of one named random stream of one sample: a hash of (run seed, stream name, sample id). The same triple
    /// always gives the same seed, whatever order samples are processed in or which other samples exist.
    /// </summary>
    public static ulong DeriveSeed(long runSeed, string stream, string sampleId)
    {
        // FNV-1a 64 over "stream\0sampleId", then mixed with the run seed through two SplitMix64 rounds.
        ulong h = 0xCBF29CE484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(stream + "\0" + sampleId))
        {
            h ^= b;
            h *= 0x100000001B3UL;
        }
        var r = new SegRandom(h ^ (ulong)runSeed);
        r.NextUInt64();
        return r.NextUInt64();
    }
}
