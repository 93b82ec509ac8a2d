using System.Globalization;
using System.Text.Json;

namespace FairMedFM.Metrics.Tests;

/// <summary>
/// Building blocks against scikit-learn 1.2.1 outputs stored in metrics_golden.json (all 9 cases, including those where
/// the legacy FairMedFM code raised). Exact to 1e-12, counts exact.
/// </summary>
public sealed class SklearnGoldenTests
{
    private const double Exact = 1e-12;

    public static TheoryData<string> Cases
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var n in Golden.CaseNames) data.Add(n);
            return data;
        }
    }

    [Fact]
    public void All_nine_cases_are_present()
    {
        Assert.Equal(9, Golden.CaseNames.Count());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Roc_auc_overall_and_by_group(string name)
    {
        var c = Golden.Cases.GetProperty(name);
        var input = Golden.InputOf(c);
        var overall = BinaryMetrics.RocAuc(input.Prob, input.Label);
        Assert.True(overall.IsDefined);
        Assert.Equal(c.GetProperty("roc_auc_overall").GetDouble(), overall.Value, Exact);

        // via Evaluate, in both modes (AUC does not depend on the mode)
        foreach (var mode in new[] { MetricsMode.Default, MetricsMode.Reference })
        {
            var report = ClassificationMetrics.Evaluate(input.Prob, input.Label, input.Group, new MetricsOptions(mode));
            var byGroup = c.GetProperty("roc_auc_by_group");
            Assert.Equal(byGroup.EnumerateObject().Count(), report.Groups.Count);
            foreach (var g in byGroup.EnumerateObject())
            {
                var ours = report.Group(g.Name)!.Values["auc"];
                if (g.Value.ValueKind == JsonValueKind.Object)
                {
                    // sklearn raised ("Only one class present"): ours is typed undefined instead
                    Assert.Contains("Only one class", g.Value.GetProperty("error").GetString());
                    Assert.False(ours.IsDefined);
                    Assert.True(ours.Reason is UndefinedReason.NoPositives or UndefinedReason.NoNegatives);
                }
                else
                {
                    Assert.True(ours.IsDefined, $"group {g.Name}: {ours}");
                    Assert.Equal(g.Value.GetDouble(), ours.Value, Exact);
                    // the building block on the group's samples alone agrees with the shared-sort path
                    var idx = Enumerable.Range(0, input.Prob.Length).Where(i => input.Group[i] == g.Name).ToArray();
                    var alone = BinaryMetrics.RocAuc(idx.Select(i => input.Prob[i]).ToArray(), idx.Select(i => input.Label[i]).ToArray());
                    Assert.Equal(ours.Value, alone.Value, 0.0);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Precision_recall_curve_f1_and_best_threshold(string name)
    {
        var c = Golden.Cases.GetProperty(name);
        var input = Golden.InputOf(c);
        var curve = BinaryMetrics.PrecisionRecall(input.Prob, input.Label);
        var pr = c.GetProperty("pr_curve");
        AssertArray(Golden.Doubles(pr.GetProperty("precision")), curve.Precision);
        AssertArray(Golden.Doubles(pr.GetProperty("recall")), curve.Recall);
        AssertArray(Golden.Doubles(pr.GetProperty("thresholds")), curve.Thresholds);
        AssertArray(Golden.Doubles(c.GetProperty("f1")), curve.F1);

        // the maxima of F1 are the same points (exact equality, as the legacy np.where(f1 == max(f1)))
        double max = curve.F1.Max();
        var maxima = Enumerable.Range(0, curve.F1.Length).Where(i => curve.F1[i] == max).ToArray();
        Assert.Equal(Golden.Ints(c.GetProperty("best_f1_indices")), maxima);
        Assert.Equal(c.GetProperty("best_f1_value").GetDouble(), max, Exact);

        double thr = ClassificationMetrics.ChooseThreshold(input.Prob, input.Label, ThresholdRule.BestF1);
        Assert.Equal(c.GetProperty("best_f1_threshold").GetDouble(), thr, 0.0);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Confusion_counts_at_half_and_at_best_threshold_overall_and_by_group(string name)
    {
        var c = Golden.Cases.GetProperty(name);
        var input = Golden.InputOf(c);
        double best = c.GetProperty("best_f1_threshold").GetDouble();

        AssertCounts(c.GetProperty("counts_at_0.5"), BinaryMetrics.Confusion(input.Prob, input.Label, 0.5));
        AssertCounts(c.GetProperty("counts_at_best_f1"), BinaryMetrics.Confusion(input.Prob, input.Label, best));

        var report = ClassificationMetrics.Evaluate(input.Prob, input.Label, input.Group, new MetricsOptions(MetricsMode.Reference));
        Assert.Equal(best, report.Threshold, 0.0);
        AssertCounts(c.GetProperty("counts_at_best_f1"), report.Overall, "");
        AssertCounts(c.GetProperty("counts_at_0.5"), report.Overall, "@0.5");
        foreach (var g in c.GetProperty("counts_by_group_at_0.5").EnumerateObject())
            AssertCounts(g.Value, report.Group(g.Name)!, "@0.5");
        foreach (var g in c.GetProperty("counts_by_group_at_best_f1").EnumerateObject())
            AssertCounts(g.Value, report.Group(g.Name)!, "");

        // group counts add up to the overall ones and the group set is exactly the codes present
        Assert.Equal(Golden.Ints(c.GetProperty("group_codes")).Select(x => x.ToString(CultureInfo.InvariantCulture)),
            report.Groups.Select(g => g.Group));
        Assert.Equal(input.Prob.Length, report.Groups.Sum(g => g.Counts.N));
    }

    private static void AssertArray(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= Exact, $"[{i}] expected {expected[i]:R}, got {actual[i]:R}");
    }

    private static void AssertCounts(JsonElement e, ConfusionCounts c)
    {
        Assert.Equal(e.GetProperty("tn").GetInt32(), c.Tn);
        Assert.Equal(e.GetProperty("fp").GetInt32(), c.Fp);
        Assert.Equal(e.GetProperty("fn").GetInt32(), c.Fn);
        Assert.Equal(e.GetProperty("tp").GetInt32(), c.Tp);
    }

    private static void AssertCounts(JsonElement e, GroupReport r, string suffix)
    {
        foreach (var k in new[] { "tn", "fp", "fn", "tp" })
            Assert.Equal((double)e.GetProperty(k).GetInt32(), r.Values[k + suffix].Value);
        int tn = e.GetProperty("tn").GetInt32(), fp = e.GetProperty("fp").GetInt32(),
            fn = e.GetProperty("fn").GetInt32(), tp = e.GetProperty("tp").GetInt32();
        Assert.Equal(tn + fp + fn + tp, r.Counts.N);
        Assert.Equal(tp + fn, r.Counts.Positives);
        Assert.Equal(tn + fp, r.Counts.Negatives);
        Assert.Equal((double)(tp + tn) / (tn + fp + fn + tp), r.Values[suffix == "" ? "acc" : "acc@0.5"].Value, Exact);
    }
}
