namespace FairMedFM.Metrics.Tests;

public sealed class SignificanceTests
{
    /// <summary>DeLong from its definition: V10_i = mean_j ψ(X_i, Y_j), V01_j = mean_i ψ(X_i, Y_j), ψ = 1, ½, 0 — O(mn).</summary>
    private static (double Auc, double[] V10, double[] V01) BruteComponents(float[] s, int[] y)
    {
        var pos = s.Where((_, i) => y[i] == 1).ToArray();
        var neg = s.Where((_, i) => y[i] == 0).ToArray();
        double Psi(float a, float b) => a > b ? 1 : a == b ? 0.5 : 0;
        var v10 = pos.Select(x => neg.Average(z => Psi(x, z))).ToArray();
        var v01 = neg.Select(z => pos.Average(x => Psi(x, z))).ToArray();
        return (v10.Average(), v10, v01);
    }

    private static double Cov(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average();
        return a.Zip(b).Sum(t => (t.First - ma) * (t.Second - mb)) / (a.Length - 1);
    }

    [Fact]
    public void DeLong_equals_the_definition_with_ties()
    {
        var (pa, y, _) = Sim.Binary(21, [90], [1.2], quantize: 15);
        var (pbRaw, _, _) = Sim.Binary(22, [90], [0.6], quantize: 15);
        // correlated second model: average of A and noise
        var pb = pa.Zip(pbRaw).Select(t => (float)Math.Round((t.First + t.Second) / 2 * 15) / 15).ToArray();
        var r = Significance.DeLong(pa, pb, y);
        var (aa, a10, a01) = BruteComponents(pa, y);
        var (ab, b10, b01) = BruteComponents(pb, y);
        int m = a10.Length, n = a01.Length;
        double var = (Cov(a10, a10) + Cov(b10, b10) - 2 * Cov(a10, b10)) / m + (Cov(a01, a01) + Cov(b01, b01) - 2 * Cov(a01, b01)) / n;
        Assert.Equal(aa, r.AucA, 1e-12);
        Assert.Equal(ab, r.AucB, 1e-12);
        Assert.Equal(BinaryMetrics.RocAuc(pa, y).Value, r.AucA, 1e-12);
        Assert.Equal(Math.Sqrt(var), r.StandardError, 1e-12);
        double z = (aa - ab) / Math.Sqrt(var);
        Assert.Equal(z, r.Z, 1e-9);
        Assert.Equal(2 * MathNet.Numerics.Distributions.Normal.CDF(0, 1, -Math.Abs(z)), r.PValue, 1e-12);
        Assert.True(r.Lower < r.Difference && r.Difference < r.Upper);
    }

    [Fact]
    public void DeLong_same_model_is_p_one_and_one_class_is_an_error()
    {
        float[] s = [.1f, .4f, .35f, .8f, .7f];
        int[] y = [0, 0, 1, 1, 1];
        var r = Significance.DeLong(s, s, y);
        Assert.Equal(0, r.Difference);
        Assert.Equal(1, r.PValue);
        var ex = Assert.Throws<ArgumentException>(() => Significance.DeLong(s, s, [1, 1, 1, 1, 1]));
        Assert.Contains("both classes", ex.Message);
    }

    [Fact]
    public void Holm_and_benjamini_hochberg_adjust_as_defined()
    {
        double[] p = [0.01, 0.04, 0.03, 0.005];
        // Holm, sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, 1·0.04 with a running max
        Assert.Equal([0.03, 0.06, 0.06, 0.02], Significance.Holm(p).Select(x => Math.Round(x, 12)));
        // BH: m/rank · p = 0.02, 0.02, 0.04, 0.04 with a running min from the top
        Assert.Equal([0.02, 0.04, 0.04, 0.02], Significance.BenjaminiHochberg(p).Select(x => Math.Round(x, 12)));
        Assert.Equal([0.7], Significance.Holm([0.7])); // one test: nothing to adjust
        Assert.Equal([1.0, 1.0], Significance.Holm([0.6, 0.7])); // capped at 1
        Assert.Throws<ArgumentException>(() => Significance.BenjaminiHochberg([0.1, double.NaN]));
    }

    [Theory] // Demšar (2006), Table 5(a): critical values q_0.05 of the two-tailed Nemenyi test (already divided by √2)
    [InlineData(2, 1.960)]
    [InlineData(3, 2.343)]
    [InlineData(4, 2.569)]
    [InlineData(5, 2.728)]
    [InlineData(6, 2.850)]
    [InlineData(8, 3.031)]
    [InlineData(10, 3.164)]
    public void Studentized_range_quantiles_match_demsar_table(int k, double q)
    {
        Assert.Equal(q, StudentizedRange.Quantile(0.95, k) / Math.Sqrt(2), 2e-3);
    }

    [Fact]
    public void Friedman_ranks_ties_and_statistic()
    {
        // 4 data sets × 3 models, higher is better; data set 2 has a tie between models 0 and 2
        double[,] s = { { 0.9, 0.8, 0.7 }, { 0.6, 0.7, 0.5 }, { 0.8, 0.7, 0.8 }, { 0.95, 0.9, 0.85 } };
        var r = Significance.Friedman(s, MetricDirection.HigherIsBetter, ["a", "b", "c"]);
        // ranks: [1,2,3], [2,1,3], [1.5,3,1.5], [1,2,3] → averages 1.375, 2, 2.625
        Assert.Equal([1.375, 2.0, 2.625], r.AverageRanks);
        // textbook form with rank sums R_j: 12/(N k (k+1)) Σ R_j² − 3 N (k+1)
        double[] sums = [5.5, 8, 10.5];
        double chi = 12.0 / (4 * 3 * 4) * sums.Sum(x => x * x) - 3 * 4 * 4;
        Assert.Equal(chi, r.ChiSquare, 1e-12);
        Assert.Equal(1 - MathNet.Numerics.Distributions.ChiSquared.CDF(2, chi), r.PValue, 1e-12);
        Assert.Equal(2.343 * Math.Sqrt(3 * 4 / (6.0 * 4)), r.CriticalDifference, 2e-3);
        Assert.Equal(1.0, r.NemenyiPValues[1, 1]);
        Assert.Equal(r.NemenyiPValues[0, 2], r.NemenyiPValues[2, 0]);
        Assert.True(r.NemenyiPValues[0, 2] < r.NemenyiPValues[0, 1]);
        // lower-is-better reverses the ranks
        var low = Significance.Friedman(s, MetricDirection.LowerIsBetter);
        Assert.Equal([2.625, 2.0, 1.375], low.AverageRanks);
        s[1, 2] = double.NaN;
        var ex = Assert.Throws<ArgumentException>(() => Significance.Friedman(s, MetricDirection.HigherIsBetter, ["a", "b", "c"]));
        Assert.Contains("scores[1, 2]", ex.Message);
        Assert.Contains("c", ex.Message);
    }

    [Fact]
    public void Nemenyi_pvalue_at_the_critical_difference_is_alpha()
    {
        double cdf = StudentizedRange.Cdf(StudentizedRange.Quantile(0.95, 5), 5);
        Assert.Equal(0.95, cdf, 1e-9);
    }

    [Fact]
    public void Paired_tests_find_a_real_gap_difference_and_not_a_null_one()
    {
        // model A: equal groups; model B: group 1 much worse → B's auc-gap is larger
        var (pa, y, g) = Sim.Binary(31, [300, 300], [1.5, 1.5]);
        var rng = new Random(5);
        var pb = pa.Select((p, i) => g[i] == "1" ? (float)Math.Clamp(p + (rng.NextDouble() - 0.5) * 0.9, 0, 1) : p).ToArray();
        var o = new MetricsOptions();
        var boot = Significance.PairedBootstrap(pa, pb, y, g, "auc-gap", o, new BootstrapOptions(400, Seed: 3), 0.5, 0.5);
        Assert.True(boot.Difference.Value < 0);
        Assert.True(boot.PValue < 0.05, $"p = {boot.PValue}");
        Assert.True(boot.Interval!.Upper < 0);
        var perm = Significance.PermutationTest(pa, pb, y, g, "auc-gap", o, 300, seed: 3, thresholdA: 0.5, thresholdB: 0.5);
        Assert.True(perm.PValue < 0.05, $"p = {perm.PValue}");
        // the same model twice: difference 0, p = 1 for both tests
        var same = Significance.PairedBootstrap(pa, pa, y, g, "auc-gap", o, new BootstrapOptions(100, Seed: 3), 0.5, 0.5);
        Assert.Equal(0, same.Difference.Value);
        Assert.Equal(1, same.PValue);
        var samePerm = Significance.PermutationTest(pa, pa, y, g, "eod", o, 50, thresholdA: 0.5, thresholdB: 0.5);
        Assert.Equal(1, samePerm.PValue);
        Assert.Throws<ArgumentException>(() => Significance.PairedBootstrap(pa, pb, y, g, "auc", o, new BootstrapOptions(10)));
    }

    [Fact]
    public void Permutation_p_values_are_roughly_uniform_under_the_null()
    {
        // two exchangeable models (independent noise around the same truth): p < 0.1 in about 10 % of data sets
        int rejections = 0, sets = 40;
        for (int d = 0; d < sets; d++)
        {
            var (pa, y, g) = Sim.Binary(500 + d, [60, 60], [1.2, 1.2]);
            var (pb, _, _) = Sim.Binary(500 + d, [60, 60], [1.2, 1.2]);
            var rng = new Random(d);
            var qb = pb.Select(p => (float)Math.Clamp(p + (rng.NextDouble() - 0.5) * 0.2, 0, 1)).ToArray();
            var qa = pa.Select(p => (float)Math.Clamp(p + (rng.NextDouble() - 0.5) * 0.2, 0, 1)).ToArray();
            var r = Significance.PermutationTest(qa, qb, y, g, "auc-gap", new MetricsOptions(), 99, seed: d, thresholdA: 0.5, thresholdB: 0.5);
            if (r.PValue < 0.1) rejections++;
        }
        Assert.InRange(rejections, 0, 10); // expected 4; binomial(40, 0.1) ≤ 10 with probability > 0.998
    }
}
