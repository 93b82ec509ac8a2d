namespace FairMedFM.Metrics.Tests;

/// <summary>The remaining rows of shared/reference/metric-cases.md (T3, T4, T6, T10, T11, T15) and their kinds of fault.</summary>
public sealed class MetricCasesMoreTests
{
    [Fact] // T3: AP is a step sum over distinct thresholds
    public void T3_average_precision()
    {
        Assert.Equal(0.5, BinaryMetrics.AveragePrecision([0.7f, 0.8f, 0.5f, 0.9f, 0.1f], [0, 1, 0, 0, 0]).Value, 1e-15);
        // ties: one tie block holds a positive and a negative → precision ½ at recall 1
        Assert.Equal(0.5, BinaryMetrics.AveragePrecision([0.5f, 0.5f], [1, 0]).Value, 1e-15);
        // brute force against the definition on random data with ties
        var (p, y, _) = Sim.Binary(8, [200], [1.0], quantize: 10);
        double expected = 0, prevR = 0;
        int totalPos = y.Sum();
        foreach (var t in p.Distinct().OrderByDescending(v => v))
        {
            int tp = p.Where((v, i) => v >= t && y[i] == 1).Count(), pp = p.Count(v => v >= t);
            double r = (double)tp / totalPos;
            expected += (r - prevR) * tp / pp;
            prevR = r;
        }
        Assert.Equal(expected, BinaryMetrics.AveragePrecision(p, y).Value, 1e-12);
    }

    [Theory] // T4: a single positive sample: AP would be 1 whatever the score → typed undefined (no negatives)
    [InlineData(0f)]
    [InlineData(0.5f)]
    [InlineData(1f)]
    public void T4_single_sample_average_precision_is_undefined(float score)
    {
        var ap = BinaryMetrics.AveragePrecision([score], [1]);
        Assert.Equal(UndefinedReason.NoNegatives, ap.Reason);
        Assert.Equal(UndefinedReason.NoPositives, BinaryMetrics.AveragePrecision([0.1f, 0.2f], [0, 0]).Reason);
        Assert.Equal(UndefinedReason.EmptyGroup, BinaryMetrics.AveragePrecision([], []).Reason);
    }

    [Fact] // T6: the curve starts at (0, 0) with a +inf sentinel (sklearn ≥ 1.3), one vertex per distinct score
    public void T6_roc_curve_starts_at_origin_with_infinite_sentinel()
    {
        var roc = BinaryMetrics.RocCurve([0.89f, 0.61f, 0.83f, 0.62f, 0.90f], [0, 0, 1, 1, 1]);
        Assert.Equal(6, roc.Thresholds.Length);
        Assert.Equal(double.PositiveInfinity, roc.Thresholds[0]);
        Assert.Equal([0.9f, 0.89f, 0.83f, 0.62f, 0.61f], roc.Thresholds.Skip(1).Select(t => (float)t));
        Assert.Equal((0.0, 0.0), (roc.Fpr[0], roc.Tpr[0]));
        Assert.Equal((1.0, 1.0), (roc.Fpr[^1], roc.Tpr[^1]));
    }

    [Fact] // T10: raw scores > 1 are never squashed, so batching cannot change the AUC
    public void T10_auc_is_the_same_however_batched_and_raw_scores_are_not_transformed()
    {
        var c = new ScoreCollector();
        c.Add([1.2f], [1]); c.Add([0.9678f], [0]); c.Add([1.7f], [1]);
        Assert.Equal(1.0, c.Auc().Value);
        Assert.Equal(BinaryMetrics.RocAuc([1.2f, 0.9678f, 1.7f], [1, 0, 1]).Value, c.Auc().Value);
        // scores outside [0, 1] leave BCE/ECE typed undefined instead of silently transforming them
        var r = c.Evaluate(new MetricsOptions(), threshold: 1.0);
        Assert.Equal(UndefinedReason.UndefinedInput, r.Overall["bce"].Reason);
        Assert.Equal(UndefinedReason.UndefinedInput, r.Overall["ece"].Reason);
    }

    [Fact] // T11: one sample per batch
    public void T11_one_sample_per_batch()
    {
        var c = new ScoreCollector();
        for (int k = 0; k < 20; k++)
        {
            float v = (float)(-2 + 0.2 * k); // numpy arange(-2, 2, 0.2)
            c.Add([v], [v > 0 ? 1 : 0]);
        }
        Assert.Equal(20, c.Count);
        Assert.Equal(1.0, c.Auc().Value);
    }

    [Fact] // T15: multi-class labels are an explicit error in the binary API and evaluated one-vs-rest on request
    public void T15_multiclass_is_an_explicit_error_or_documented_one_vs_rest()
    {
        int[] yt = [0, 1, 2, 3, 1, 2, 1, 3, 2, 0, 0, 3, 1, 1, 2, 3, 1, 2];
        int[] yp = [1, 3, 1, 3, 2, 2, 3, 0, 0, 2, 1, 1, 2, 0, 3, 1, 2, 2];
        string[] sf = "b,b,a,b,b,a,a,a,a,a,b,a,b,b,a,b,a,a".Split(',');
        var ex = Assert.Throws<ArgumentException>(() =>
            ClassificationMetrics.Evaluate(yp.Select(v => v / 3f).ToArray(), yt, sf, new MetricsOptions()));
        Assert.Contains("labels[2] = 2", ex.Message);
        // one-vs-rest with one-hot scores of the predicted class
        var scores = yp.Select(c => Enumerable.Range(0, 4).Select(k => k == c ? 1f : 0f).ToArray()).ToArray();
        var ovr = MulticlassMetrics.OneVsRest(scores, yt, sf, new MetricsOptions(), [0.5, 0.5, 0.5, 0.5]);
        Assert.Equal(4, ovr.Count);
        for (int c = 0; c < 4; c++)
        {
            int tp = yt.Where((t, i) => t == c && yp[i] == c).Count(), pos = yt.Count(t => t == c);
            Assert.Equal((double)tp / pos, ovr[c].Overall["tpr"].Value, 1e-15);
            Assert.Equal(["a", "b"], ovr[c].Groups.Select(g => g.Group));
        }
        Assert.Contains("labels[0] = 5", Assert.Throws<ArgumentException>(() => MulticlassMetrics.OneVsRest(scores, yt.Select((v, i) => i == 0 ? 5 : v).ToArray(), sf, new MetricsOptions())).Message);
    }

    [Fact] // T13/T14 kind: a missing attribute value is an error naming the attribute and row unless mapped to a group
    public void Missing_attribute_values_error_or_map_to_an_explicit_group()
    {
        string?[] sf = ["a", "a", "a", "a", "b", "b", null];
        var ex = Assert.Throws<ArgumentException>(() => Grouping.Resolve(sf, "site"));
        Assert.Contains("'site' is missing at row 6", ex.Message);
        Assert.Equal("unknown", Grouping.Resolve(sf, "site", "unknown")[6]);
        float[] p = [.1f, .9f, .8f, .7f, .2f, .3f, .6f];
        int[] y = [0, 1, 0, 1, 0, 1, 1];
        var reports = Grouping.EvaluateAttributes(p, y, new Dictionary<string, IReadOnlyList<string?>>
        {
            ["site"] = sf, ["sex"] = ["F", "M", "F", "M", "F", "M", "F"],
        }, new MetricsOptions(), 0.5, intersections: true, missingLabel: "unknown");
        Assert.Equal(["site", "sex", "site×sex"], reports.Keys);
        Assert.Equal(["a", "b", "unknown"], reports["site"].Groups.Select(g => g.Group));
        Assert.Equal(["a|F", "a|M", "b|F", "b|M", "unknown|F"], reports["site×sex"].Groups.Select(g => g.Group));
        // every group value carries n, positives and negatives; their sums are the overall counts
        Assert.Equal(7, reports["site×sex"].Groups.Sum(g => g.Counts.N));
        Assert.Equal(4, reports["site×sex"].Groups.Sum(g => g.Counts.Positives));
    }

    [Fact] // ECE bins at exactly 0 and 1, both modes, with the weighted kernel agreeing
    public void Ece_bins_at_exactly_zero_and_one()
    {
        float[] p = [0f, 0f, 1f, 1f, 0.15f, 0.95f];
        int[] y = [0, 1, 1, 1, 0, 1];
        // Default: both 0s in bin 0 [0, 0.1); 0.15 in [0.1, 0.2); 0.95, 1, 1 in the closed last bin [0.9, 1]
        double expected = (Math.Abs(0 - 1.0) + Math.Abs(0.15f - 0.0) + Math.Abs(1 + 1 + 0.95f - 3.0)) / 6.0;
        Assert.Equal(expected, BinaryMetrics.Ece(p, y, 10, MetricsMode.Default).Value, 1e-7);
        var r = Bootstrap.Classification(p, y, ["g", "g", "g", "g", "g", "g"], new MetricsOptions(), new BootstrapOptions(5), 0.5);
        Assert.Equal(r.Estimate.Overall["ece"].Value, expected, 1e-7);
    }
}
