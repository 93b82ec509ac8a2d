namespace FairMedFM.Metrics.Tests;

/// <summary>Seeded synthetic data for property tests.</summary>
internal static class Sim
{
    /// <summary>Binary data set: group g has positives with score logit ~ N(shift[g], 1) and negatives ~ N(0, 1);
    /// probabilities are the sigmoid; <paramref name="quantize"/> &gt; 0 rounds probabilities to create ties.</summary>
    public static (float[] P, int[] Y, string[] G) Binary(int seed, int[] sizes, double[] shift, double prevalence = 0.5, int quantize = 0, string[]? names = null)
    {
        var rng = new Random(seed);
        var p = new List<float>(); var y = new List<int>(); var g = new List<string>();
        for (int k = 0; k < sizes.Length; k++)
            for (int i = 0; i < sizes[k]; i++)
            {
                int label = rng.NextDouble() < prevalence ? 1 : 0;
                double z = Gauss(rng) + (label == 1 ? shift[k] : 0);
                double prob = 1 / (1 + Math.Exp(-z));
                if (quantize > 0) prob = Math.Round(prob * quantize) / quantize;
                p.Add((float)prob); y.Add(label); g.Add(names?[k] ?? k.ToString());
            }
        return (p.ToArray(), y.ToArray(), g.ToArray());
    }

    public static double Gauss(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Repeats sample i w[i] times (what a weight vector stands for).</summary>
    public static (float[] P, int[] Y, string[] G) Materialise(float[] p, int[] y, string[] g, int[] w)
    {
        var P = new List<float>(); var Y = new List<int>(); var G = new List<string>();
        for (int i = 0; i < p.Length; i++)
            for (int k = 0; k < w[i]; k++) { P.Add(p[i]); Y.Add(y[i]); G.Add(g[i]); }
        return (P.ToArray(), Y.ToArray(), G.ToArray());
    }
}
