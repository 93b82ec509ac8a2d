namespace FairMedFM.Metrics.Tests;

/// <summary>The summaries beyond FairMedFM's, from their definitions, plus the property tests of the issue.</summary>
public sealed class SummaryMetricsTests
{
    private static readonly MetricsOptions Default = new();

    [Fact]
    public void New_summaries_equal_their_definitions_over_group_values()
    {
        var (p, y, g) = Sim.Binary(12, [120, 80, 60], [1.4, 0.6, 1.0], names: ["F", "M", "X"]);
        var r = ClassificationMetrics.Evaluate(p, y, g, Default, 0.5);
        double[] V(string k) => r.Groups.Select(x => x.Values[k].Value).ToArray();
        double Gap(string k) => V(k).Max() - V(k).Min();
        double Ratio(string k) => V(k).Min() / V(k).Max();
        // per-group rates from raw counts
        foreach (var grp in r.Groups)
        {
            var idx = Enumerable.Range(0, p.Length).Where(i => g[i] == grp.Group).ToArray();
            int predPos = idx.Count(i => p[i] > 0.5), tp = idx.Count(i => p[i] > 0.5 && y[i] == 1);
            Assert.Equal((double)predPos / idx.Length, grp["selection-rate"].Value, 1e-15);
            Assert.Equal((double)tp / predPos, grp["ppv"].Value, 1e-15);
            Assert.Equal((idx.Length, idx.Count(i => y[i] == 1), idx.Count(i => y[i] == 0)), (grp.Counts.N, grp.Counts.Positives, grp.Counts.Negatives));
        }
        var s = r.Summary;
        Assert.Equal(Gap("selection-rate"), s["dp-diff"].Value, 1e-15);
        Assert.Equal(Ratio("selection-rate"), s["dp-ratio"].Value, 1e-15);
        Assert.Equal(Math.Max(Gap("tpr"), Gap("fpr")), s["eqodds-diff"].Value, 1e-15);
        Assert.Equal((Gap("tpr") + Gap("fpr")) / 2, s["eqodds-diff-mean"].Value, 1e-15);
        Assert.Equal(1 - s["eqodds-diff-mean"].Value, s["eod"].Value, 1e-12); // FairMedFM's score is 1 − the mean form
        Assert.Equal(Math.Min(Ratio("tpr"), Ratio("fpr")), s["eqodds-ratio"].Value, 1e-15);
        Assert.Equal((Ratio("tpr") + Ratio("fpr")) / 2, s["eqodds-ratio-mean"].Value, 1e-15);
        Assert.Equal(Gap("tpr"), s["eopp-diff"].Value, 1e-15);
        Assert.Equal(V("acc").Min(), s["worst-acc"].Value, 1e-15);
        double auc = r.Overall["auc"].Value, acc = r.Overall["acc"].Value;
        double Std(double[] v) { double m = v.Average(); return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / v.Length); }
        Assert.Equal(auc / (1 + Std(V("auc"))), s["auc-es"].Value, 1e-12);
        Assert.Equal(auc / (1 + V("auc").Sum(x => Math.Abs(auc - x))), s["auc-es-fairclip"].Value, 1e-12);
        Assert.Equal(acc / (1 + Std(V("acc"))), s["acc-es"].Value, 1e-12);
        Assert.Equal(acc / (1 + V("acc").Sum(x => Math.Abs(acc - x))), s["acc-es-fairclip"].Value, 1e-12);
    }

    [Fact]
    public void Two_groups_std_and_sum_forms_of_auc_es_differ_as_the_spec_says()
    {
        var (p, y, g) = Sim.Binary(13, [100, 100], [2.0, 0.8]);
        var r = ClassificationMetrics.Evaluate(p, y, g, Default, 0.5);
        double a0 = r.Groups[0]["auc"].Value, a1 = r.Groups[1]["auc"].Value, auc = r.Overall["auc"].Value;
        Assert.Equal(auc / (1 + Math.Abs(a0 - a1) / 2), r.Summary["auc-es"].Value, 1e-12);
        Assert.NotEqual(r.Summary["auc-es"].Value, r.Summary["auc-es-fairclip"].Value, 1e-6);
    }

    [Fact]
    public void Ratios_with_zero_denominators_are_typed()
    {
        // nothing predicted positive anywhere: selection rates 0/0 → dp-ratio undefined, dp-diff 0
        float[] p = [.1f, .2f, .3f, .4f]; int[] y = [0, 1, 0, 1]; string[] g = ["a", "a", "b", "b"];
        var r = ClassificationMetrics.Evaluate(p, y, g, Default, 0.9);
        Assert.Equal(0, r.Summary["dp-diff"].Value);
        Assert.Equal(UndefinedReason.ZeroDenominator, r.Summary["dp-ratio"].Reason);
        Assert.Equal(UndefinedReason.ZeroDenominator, r.Summary["eqodds-ratio"].Reason);
        Assert.Equal(UndefinedReason.NoPredictedPositives, r.Groups[0]["ppv"].Reason);
    }

    [Fact]
    public void Property_relabelling_groups_does_not_change_summaries()
    {
        for (int seed = 0; seed < 5; seed++)
        {
            var (p, y, g) = Sim.Binary(40 + seed, [50, 70, 40], [1.0, 1.5, 0.5], quantize: seed % 2 == 0 ? 0 : 25);
            var map = new Dictionary<string, string> { ["0"] = "zeta", ["1"] = "17", ["2"] = "alpha" };
            foreach (var mode in new[] { MetricsMode.Default, MetricsMode.Reference })
            {
                var o = new MetricsOptions(mode);
                var a = ClassificationMetrics.Evaluate(p, y, g, o);
                var b = ClassificationMetrics.Evaluate(p, y, g.Select(x => map[x]).ToArray(), o);
                foreach (var k in ClassificationReport.SummaryKeys) Assert.Equal(a.Summary[k].Value, b.Summary[k].Value);
                foreach (var grp in a.Groups) Assert.Equal(grp["auc"], b.Group(map[grp.Group])!["auc"]);
            }
        }
    }

    [Fact]
    public void Property_identical_groups_have_zero_gaps_unit_ratios_and_unscaled_es()
    {
        var (p1, y1, _) = Sim.Binary(50, [90], [1.2]);
        var p = p1.Concat(p1).Concat(p1).ToArray();
        var y = y1.Concat(y1).Concat(y1).ToArray();
        var g = Enumerable.Repeat("a", 90).Concat(Enumerable.Repeat("b", 90)).Concat(Enumerable.Repeat("c", 90)).ToArray();
        foreach (var mode in new[] { MetricsMode.Default, MetricsMode.Reference })
        {
            var r = ClassificationMetrics.Evaluate(p, y, g, new MetricsOptions(mode));
            foreach (var k in ClassificationReport.SummaryKeys)
            {
                var info = MetricCatalog.Get(k)!;
                if (info.Kind == MetricKind.Gap) Assert.Equal(0.0, r.Summary[k].Value);
                if (info.Kind == MetricKind.Ratio) Assert.Equal(1.0, r.Summary[k].Value);
            }
            Assert.Equal(1.0, r.Summary["eod"].Value);
            Assert.Equal(r.Summary["overall-auc"].Value, r.Summary["auc-es"].Value, 1e-15);
            Assert.Equal(r.Summary["overall-auc"].Value, r.Summary["auc-es-fairclip"].Value, 1e-15);
            Assert.Equal(r.Summary["overall-acc"].Value, r.Summary["acc-es"].Value, 1e-15);
        }
    }

    [Fact]
    public void Catalogue_covers_every_reported_key_with_direction_and_kind()
    {
        foreach (var k in ClassificationReport.SummaryKeys.Concat(GroupReport.Keys))
            Assert.True(MetricCatalog.Get(k) is not null, k);
        Assert.Equal(MetricDirection.LowerIsBetter, MetricCatalog.Get("auc-gap")!.Direction);
        Assert.Equal(MetricKind.Score, MetricCatalog.Get("eod")!.Kind);
        Assert.Equal(MetricDirection.HigherIsBetter, MetricCatalog.Get("eod")!.Direction);
        Assert.Equal(MetricKind.EquityScaled, MetricCatalog.Get("es_iou")!.Kind);
        Assert.Equal(MetricKind.Ratio, MetricCatalog.Get("dp-ratio")!.Kind);
        Assert.Equal(MetricKind.Count, MetricCatalog.Get("tp@0.5")!.Kind);
        Assert.Null(MetricCatalog.Get("es_hd95"));
        Assert.Null(MetricCatalog.Get("no-such-metric"));
        var seg = SegmentationMetrics.Summarize([0.5, 0.6, 0.7, 0.9], ["a", "a", "b", "b"], "dice-ref");
        Assert.All(seg.Summary.Keys, k => Assert.NotNull(MetricCatalog.Get(k)));
        Assert.Equal(MetricCatalog.All.Count, MetricCatalog.All.Select(m => m.Key).Distinct().Count());
    }

    [Fact]
    public void Fixed_specificity_threshold_is_the_most_sensitive_meeting_the_target()
    {
        var (p, y, g) = Sim.Binary(60, [300], [1.5]);
        var o = new MetricsOptions(Rule: ThresholdRule.FixedSpecificity, TargetSpecificity: 0.8);
        double t = ClassificationMetrics.ChooseThreshold(p, y, o);
        double Tnr(double thr) => (double)Enumerable.Range(0, p.Length).Count(i => y[i] == 0 && p[i] <= thr) / y.Count(v => v == 0);
        Assert.True(Tnr(t) >= 0.8);
        // the next lower distinct score misses the target
        var lower = p.Where(v => v < t).DefaultIfEmpty(float.NaN).Max();
        Assert.True(Tnr(lower) < 0.8);
        var r = ClassificationMetrics.Evaluate(p, y, g, o);
        Assert.Equal(t, r.Threshold);
        Assert.Equal(UndefinedReason.NoNegatives, ClassificationMetrics.ChooseThresholdOrUndefined([.2f], [1], ThresholdRule.FixedSpecificity, 0.9).Reason);
    }
}
