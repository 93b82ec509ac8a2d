using FairMedFM.Metrics.Internal;

namespace FairMedFM.Metrics.Tests;

/// <summary>The bootstrap's O(n) weighted kernel must report what Evaluate reports on the repeated samples.</summary>
public sealed class WeightedKernelTests
{
    public static TheoryData<MetricsMode, ThresholdRule, bool> Settings => new()
    {
        { MetricsMode.Default, ThresholdRule.BestF1, true },
        { MetricsMode.Default, ThresholdRule.BestF1, false },
        { MetricsMode.Default, ThresholdRule.Youden, false },
        { MetricsMode.Default, ThresholdRule.FixedSpecificity, false },
        { MetricsMode.Default, ThresholdRule.Fixed, false },
        { MetricsMode.Reference, ThresholdRule.BestF1, false },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void Weighted_report_equals_evaluate_on_materialised_draw(MetricsMode mode, ThresholdRule rule, bool frozen)
    {
        // quantised scores: many ties, values exactly 0.5, 0 and 1
        var (p, y, g) = Sim.Binary(7, [60, 45, 30], [1.5, 0.8, 2.0], quantize: 20, names: ["b", "a", "10"]);
        var options = new MetricsOptions(mode, rule, 10, 0.8);
        double? thr = frozen ? 0.45 : null;
        var kernel = new WeightedClassification(p, y, g, options, thr);
        var rng = new Random(3);
        for (int draw = 0; draw < 20; draw++)
        {
            var w = new int[p.Length];
            for (int i = 0; i < w.Length; i++) w[i] = rng.Next(0, 3);
            w[0] = 1; // every group keeps a member
            var (P, Y, G) = Sim.Materialise(p, y, g, w);
            if (G.Distinct().Count() != 3) continue;
            var expected = ClassificationMetrics.Evaluate(P, Y, G, options, thr);
            var actual = kernel.Evaluate(w);
            Assert.Equal(expected.Threshold, actual.Threshold);
            // Reference ECE: pandas' float32 bin means vs float64 here
            double tol = mode == MetricsMode.Reference ? 1e-6 : 1e-12;
            foreach (var k in ClassificationReport.SummaryKeys) Same(expected.Summary[k], actual.Summary[k], k, tol);
            Assert.Equal(expected.Groups.Select(x => x.Group), actual.Groups.Select(x => x.Group));
            foreach (var (e, a) in new[] { expected.Overall }.Concat(expected.Groups).Zip(new[] { actual.Overall }.Concat(actual.Groups)))
            {
                Assert.Equal(e.Counts, a.Counts);
                foreach (var k in GroupReport.Keys) Same(e.Values[k], a.Values[k], e.Group + ":" + k, tol);
            }
        }
    }

    private static void Same(MetricValue e, MetricValue a, string what, double tol)
    {
        Assert.True(e.Reason == a.Reason, $"{what}: {e} vs {a}");
        if (e.IsDefined) Assert.True(Math.Abs(e.Value - a.Value) <= tol, $"{what}: {e.Value} vs {a.Value}");
    }

    [Fact]
    public void Stratified_draws_keep_every_group_by_label_count_and_clusters_move_together()
    {
        var (p, y, g) = Sim.Binary(11, [40, 25], [1, 1]);
        var codes = g.Select(int.Parse).ToArray();
        var r = new Resampler(codes, y, null);
        var w = new int[p.Length];
        var rng = new Rng(5, 0);
        for (int t = 0; t < 10; t++)
        {
            r.Draw(ref rng, w);
            foreach (var gg in new[] { 0, 1 })
                foreach (var yy in new[] { 0, 1 })
                {
                    int expected = Enumerable.Range(0, p.Length).Count(i => codes[i] == gg && y[i] == yy);
                    Assert.Equal(expected, Enumerable.Range(0, p.Length).Where(i => codes[i] == gg && y[i] == yy).Sum(i => w[i]));
                }
        }
        // patients of 1-3 images: all images of a patient share its multiplicity
        var patients = Enumerable.Range(0, p.Length).Select(i => "p" + (i / 3)).ToArray();
        var rc = new Resampler(codes, y, patients);
        Assert.True(rc.Clustered);
        Assert.Equal((p.Length + 2) / 3, rc.Units);
        rc.Draw(ref rng, w);
        for (int i = 0; i < p.Length; i++) Assert.Equal(w[i / 3 * 3], w[i]);
        Assert.Contains(w, x => x == 0);
        Assert.Contains(w, x => x > 1);
    }

    [Fact]
    public void Missing_patient_id_names_the_row()
    {
        var ex = Assert.Throws<ArgumentException>(() => new Resampler([0, 0, 1], [0, 1, 0], ["a", "", "b"]));
        Assert.Contains("clusters[1]", ex.Message);
    }
}
