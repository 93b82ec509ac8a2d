using MathNet.Numerics.Distributions;

namespace FairMedFM.Metrics.Tests;

public sealed class BootstrapTests
{
    private static readonly MetricsOptions Default = new();

    [Fact]
    public void Same_seed_same_intervals_whatever_the_thread_count_and_another_seed_differs()
    {
        var (p, y, g) = Sim.Binary(1, [150, 100, 80], [1.2, 0.7, 1.6]);
        var a = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(300, Seed: 42), threshold: 0.5);
        var b = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(300, Seed: 42, MaxDegreeOfParallelism: 1), threshold: 0.5);
        var c = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(300, Seed: 43), threshold: 0.5);
        foreach (var k in ClassificationReport.SummaryKeys)
        {
            Assert.Equal(a.Summary[k], b.Summary[k]);
            Assert.Equal(a.Replicates(k), b.Replicates(k));
        }
        Assert.NotEqual(a.Summary["auc-gap"].Lower, c.Summary["auc-gap"].Lower);
        Assert.Equal(300, a.Summary["auc-gap"].Resamples);
        Assert.Equal(6, a.Strata);
        Assert.Equal(330, a.Units);
        // every per-group value and the overall values have intervals, counts do not
        Assert.Equal(["0", "1", "2"], a.Groups.Keys.Order());
        Assert.True(a.Groups["1"]["auc"].IsDefined);
        Assert.False(a.Groups["1"].ContainsKey("tp"));
        Assert.True(a.Overall["ece"].IsDefined);
        Assert.Equal(a.Estimate.Summary["eod"], ClassificationMetrics.Evaluate(p, y, g, Default, 0.5).Summary["eod"]);
    }

    [Fact]
    public void Interval_contains_the_quantiles_of_the_replicates()
    {
        var (p, y, g) = Sim.Binary(2, [120, 90], [1.0, 1.5]);
        var r = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(400, Seed: 1, Level: 0.9), threshold: 0.5);
        var reps = r.Replicates("auc-gap").Order().ToArray();
        // type-7 quantiles computed here independently
        double Q(double q) { double h = (reps.Length - 1) * q; int lo = (int)h; return reps[lo] + (h - lo) * (reps[lo + 1] - reps[lo]); }
        Assert.Equal(Q(0.05), r.Summary["auc-gap"].Lower, 1e-15);
        Assert.Equal(Q(0.95), r.Summary["auc-gap"].Upper, 1e-15);
        Assert.True(r.Summary["auc-gap"].Lower < r.Summary["auc-gap"].Upper);
    }

    [Fact]
    public void Frozen_threshold_stays_and_a_threshold_chosen_on_the_set_is_rechosen()
    {
        var (p, y, g) = Sim.Binary(3, [100, 100], [1.0, 1.0]);
        var frozen = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(100, Seed: 1), threshold: 0.5);
        var rechosen = Bootstrap.Classification(p, y, g, new MetricsOptions(MetricsMode.Reference), new BootstrapOptions(100, Seed: 1));
        // at a frozen threshold the overall acc replicates take few distinct values per count; with re-chosen best-F1 the
        // selection rate moves with the threshold as well
        Assert.True(frozen.Summary["overall-acc"].IsDefined && rechosen.Summary["overall-acc"].IsDefined);
        Assert.NotEqual(frozen.Replicates("overall-acc"), rechosen.Replicates("overall-acc"));
    }

    [Fact]
    public void Undefined_estimate_gives_undefined_interval_and_sometimes_undefined_resamples_are_counted()
    {
        // group "c" has a single positive: it stays (stratified), so AUC_c is always defined; group "d" has no positive
        float[] p = [.9f, .2f, .8f, .3f, .7f, .4f, .6f, .1f, .55f, .45f, .35f, .25f];
        int[] y = [1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0];
        string[] g = ["c", "c", "c", "c", "c", "c", "d", "d", "d", "d", "c", "d"];
        var r = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(50, Seed: 1), threshold: 0.5);
        Assert.Equal(UndefinedReason.NoPositives, r.Groups["d"]["auc"].Reason);
        Assert.False(r.Summary["auc-gap"].IsDefined);
        Assert.Contains("estimate itself is undefined", r.Summary["auc-gap"].Detail);
        Assert.True(r.Groups["c"]["auc"].IsDefined);
        Assert.Equal(50, r.Groups["c"]["auc"].DefinedResamples);
    }

    [Fact]
    public void Clustered_intervals_are_wider_when_patients_repeat_the_same_image()
    {
        // each patient contributes 5 identical images: the effective sample size is 1/5, the interval must widen
        var (p1, y1, g1) = Sim.Binary(4, [60, 60], [1.0, 1.8]);
        var p = p1.SelectMany(x => Enumerable.Repeat(x, 5)).ToArray();
        var y = y1.SelectMany(x => Enumerable.Repeat(x, 5)).ToArray();
        var g = g1.SelectMany(x => Enumerable.Repeat(x, 5)).ToArray();
        var patients = Enumerable.Range(0, p.Length).Select(i => "pt" + i / 5).ToArray();
        var o = new BootstrapOptions(400, Seed: 9);
        var naive = Bootstrap.Classification(p, y, g, Default, o, 0.5);
        var clustered = Bootstrap.Classification(p, y, g, Default, o, 0.5, patients);
        double W(ConfidenceInterval c) => c.Upper - c.Lower;
        Assert.True(clustered.Clustered);
        Assert.Equal(120, clustered.Units);
        Assert.True(W(clustered.Summary["auc-gap"]) > 1.6 * W(naive.Summary["auc-gap"]),
            $"{clustered.Summary["auc-gap"]} vs {naive.Summary["auc-gap"]}");
    }

    [Fact]
    public void Bca_shifts_the_interval_of_a_skewed_statistic_and_falls_back_with_a_note_when_degenerate()
    {
        var (p, y, g) = Sim.Binary(5, [80, 80], [2.5, 0.8]);
        var pct = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(500, Seed: 2), 0.5);
        var bca = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(500, Seed: 2, Method: CiMethod.Bca), 0.5);
        Assert.Equal(CiMethod.Bca, bca.Summary["auc-gap"].Method);
        Assert.NotEqual(pct.Summary["auc-gap"].Lower, bca.Summary["auc-gap"].Lower);
        // perfectly separated groups: every resample has AUC 1 = the estimate → a degenerate [1, 1]
        float[] ps = [.9f, .8f, .1f, .2f, .95f, .85f, .15f, .05f];
        int[] ys = [1, 1, 0, 0, 1, 1, 0, 0];
        string[] gs = ["a", "a", "a", "a", "b", "b", "b", "b"];
        var d = Bootstrap.Classification(ps, ys, gs, Default, new BootstrapOptions(50, Seed: 2, Method: CiMethod.Bca), 0.5);
        Assert.Equal((1.0, 1.0), (d.Summary["worst-auc"].Lower, d.Summary["worst-auc"].Upper));
        // every replicate above the estimate: z0 = +∞, so BCa falls back to percentile and says so
        var o = new BootstrapOptions(5, Method: CiMethod.Bca);
        var ci = Bootstrap.Interval(MetricValue.Of(0.1), 0.1, [0.2, 0.3, 0.4, 0.5, 0.6], [0.1, 0.2, 0.15], o);
        Assert.Equal(CiMethod.Percentile, ci.Method);
        Assert.Contains("BCa bias correction is infinite", ci.Detail);
    }

    /// <summary>Coverage on simulated data with a known AUC gap: AUC_g = Φ(μ_g/√2) for N(μ_g, 1) vs N(0, 1) logits.</summary>
    [Theory]
    [InlineData(CiMethod.Percentile, 100)]
    [InlineData(CiMethod.Bca, 60)]
    public void Intervals_cover_the_true_gap_and_group_auc_at_about_the_nominal_rate(CiMethod method, int datasets)
    {
        double mu0 = 1.0, mu1 = 2.2;
        double auc0 = Normal.CDF(0, 1, mu0 / Math.Sqrt(2)), auc1 = Normal.CDF(0, 1, mu1 / Math.Sqrt(2));
        double trueGap = auc1 - auc0;
        int coveredGap = 0, coveredAuc = 0;
        for (int d = 0; d < datasets; d++)
        {
            var (p, y, g) = Sim.Binary(1000 + d, [200, 200], [mu0, mu1]);
            var r = Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(120, Seed: d, Method: method, MaxJackknifeBlocks: 40), 0.5);
            var ci = r.Summary["auc-gap"];
            if (ci.Lower <= trueGap && trueGap <= ci.Upper) coveredGap++;
            var a0 = r.Groups["0"]["auc"];
            if (a0.Lower <= auc0 && auc0 <= a0.Upper) coveredAuc++;
        }
        double rateGap = (double)coveredGap / datasets, rateAuc = (double)coveredAuc / datasets;
        // nominal 0.95; binomial sd over 60–100 data sets ≈ 0.022–0.028, so [0.84, 1) is about a 4 sd band below; an
        // interval that is systematically too narrow (e.g. 80 % coverage) or useless (always covers) fails
        Assert.InRange(rateGap, 0.84, 0.999);
        Assert.InRange(rateAuc, 0.84, 0.999);
    }

    [Fact]
    public void Options_are_validated()
    {
        float[] p = [.2f, .8f]; int[] y = [0, 1]; string[] g = ["a", "a"];
        Assert.Throws<ArgumentOutOfRangeException>(() => Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bootstrap.Classification(p, y, g, Default, new BootstrapOptions(10, Level: 1)));
    }
}
