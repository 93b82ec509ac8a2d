using System.Text.Json;

namespace FairMedFM.Metrics.Tests;

/// <summary>Where the legacy code raised: every group is evaluated and undefined values are typed (policy on Evaluate).</summary>
public sealed class GroupPolicyTests
{
    private static readonly MetricsOptions Reference = new(MetricsMode.Reference);

    private static (double Tpr, double Tnr, double Acc) Rates(JsonElement counts)
    {
        double tn = counts.GetProperty("tn").GetInt32(), fp = counts.GetProperty("fp").GetInt32();
        double fn = counts.GetProperty("fn").GetInt32(), tp = counts.GetProperty("tp").GetInt32();
        return (tp / (tp + fn), tn / (tn + fp), (tp + tn) / (tn + fp + fn + tp));
    }

    [Fact]
    public void Noncontiguous_codes_0_2_5_are_three_groups_with_full_summary()
    {
        var c = Golden.Cases.GetProperty("n50_noncontiguous_groups");
        Assert.True(c.TryGetProperty("legacy_error", out _)); // the legacy code crashed here
        var input = Golden.InputOf(c);
        var r = ClassificationMetrics.Evaluate(input.Prob, input.Label, input.Group, Reference);

        Assert.Equal(["0", "2", "5"], r.Groups.Select(g => g.Group));
        var aucs = c.GetProperty("roc_auc_by_group").EnumerateObject().Select(p => p.Value.GetDouble()).ToArray();
        Assert.Equal(aucs.Min(), r.Summary["worst-auc"].Value, 1e-12);
        Assert.Equal(aucs.Max() - aucs.Min(), r.Summary["auc-gap"].Value, 1e-12);
        Assert.Null(r.Summary["auc-gap"].Detail); // nothing left out

        var rates = c.GetProperty("counts_by_group_at_best_f1").EnumerateObject().Select(p => Rates(p.Value)).ToArray();
        double tprGap = rates.Max(x => x.Tpr) - rates.Min(x => x.Tpr);
        double tnrGap = rates.Max(x => x.Tnr) - rates.Min(x => x.Tnr);
        Assert.Equal(tprGap, r.Summary["eo"].Value, 1e-12);
        Assert.Equal(1 - (tprGap + tnrGap) / 2, r.Summary["eod"].Value, 1e-12);
        Assert.Equal(rates.Max(x => x.Acc) - rates.Min(x => x.Acc), r.Summary["acc-gap"].Value, 1e-12);
        Assert.All(ClassificationReport.SummaryKeys, k => Assert.True(r.Summary[k].IsDefined, k));
    }

    [Fact]
    public void Single_class_group_gets_typed_undefined_auc_and_tpr_and_gaps_need_two_defined_groups()
    {
        var c = Golden.Cases.GetProperty("n100_single_class_group");
        Assert.True(c.TryGetProperty("legacy_error", out _));
        var input = Golden.InputOf(c);
        var r = ClassificationMetrics.Evaluate(input.Prob, input.Label, input.Group, Reference);

        Assert.Equal(c.GetProperty("best_f1_threshold").GetDouble(), r.Threshold);
        var g0 = r.Group("0")!;
        var g1 = r.Group("1")!;
        Assert.Equal(c.GetProperty("roc_auc_by_group").GetProperty("0").GetDouble(), g0.Values["auc"].Value, 1e-12);
        Assert.Equal(0, g1.Counts.Positives);
        Assert.Equal(UndefinedReason.NoPositives, g1.Values["auc"].Reason);
        Assert.Equal(UndefinedReason.NoPositives, g1.Values["tpr"].Reason);
        Assert.Equal(UndefinedReason.NoPositives, g1.Values["fnr"].Reason);
        Assert.True(g1.Values["tnr"].IsDefined);
        Assert.True(g1.Values["bce"].IsDefined);
        Assert.True(g1.Values["ece"].IsDefined);

        foreach (var k in new[] { "worst-auc", "auc-gap", "eo", "eod" })
        {
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary[k].Reason);
            Assert.Contains("'1' (no positives)", r.Summary[k].Detail);
        }
        var rates = c.GetProperty("counts_by_group_at_best_f1").EnumerateObject().Select(p => Rates(p.Value)).ToArray();
        Assert.Equal(Math.Abs(rates[0].Acc - rates[1].Acc), r.Summary["acc-gap"].Value, 1e-12);
        Assert.Equal(Math.Abs(g0.Values["bce"].Value - g1.Values["bce"].Value), r.Summary["bce-gap"].Value, 0.0);
        Assert.Equal(c.GetProperty("roc_auc_overall").GetDouble(), r.Summary["overall-auc"].Value, 1e-12);
    }

    [Fact]
    public void With_three_groups_one_undefined_the_gap_is_over_the_other_two_and_says_so()
    {
        // groups a, b: both classes; group c: positives only
        float[] p = [.1f, .9f, .3f, .2f, .7f, .6f, .8f, .4f];
        int[] y = [0, 1, 1, 0, 1, 0, 1, 1];
        string[] g = ["a", "a", "a", "b", "b", "b", "c", "c"];
        var r = ClassificationMetrics.Evaluate(p, y, g, new MetricsOptions());
        double aucA = BinaryMetrics.RocAuc([.1f, .9f, .3f], [0, 1, 1]).Value;    // 1.0
        double aucB = BinaryMetrics.RocAuc([.2f, .7f, .6f], [0, 1, 0]).Value;    // 1.0
        Assert.Equal(UndefinedReason.NoNegatives, r.Group("c")!.Values["auc"].Reason);
        Assert.Equal(Math.Min(aucA, aucB), r.Summary["worst-auc"].Value);
        Assert.True(r.Summary["auc-gap"].IsDefined);
        Assert.Contains("left out 'c' (no negatives)", r.Summary["auc-gap"].Detail);
        // TNR is undefined for c, TPR is defined in all three: eo has no note, eod notes the TNR exclusion
        Assert.Null(r.Summary["eo"].Detail);
        Assert.Contains("tnr over 2 of 3 groups", r.Summary["eod"].Detail);
    }

    [Fact]
    public void A_single_group_gives_undefined_gaps_but_defined_overall_values()
    {
        var r = ClassificationMetrics.Evaluate([.2f, .8f, .6f, .3f], [0, 1, 1, 0], ["x", "x", "x", "x"], Reference);
        Assert.Single(r.Groups);
        Assert.Equal(1.0, r.Summary["overall-auc"].Value);
        foreach (var k in new[] { "worst-auc", "auc-gap", "acc-gap", "bce-gap", "ece-gap", "eod", "eo" })
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary[k].Reason);
        Assert.Contains("defined in 1 of 1", r.Summary["acc-gap"].Detail);
    }

    [Theory]
    [InlineData(new[] { "10", "2", "1", "2" }, new[] { "1", "2", "10" })]        // integers: numeric order
    [InlineData(new[] { "0", "-1", "5", "0" }, new[] { "-1", "0", "5" })]
    [InlineData(new[] { "b", "a", "B", "a" }, new[] { "B", "a", "b" })]           // strings: ordinal
    [InlineData(new[] { "10", "2", "x", "2" }, new[] { "10", "2", "x" })]         // one non-integer: ordinal
    [InlineData(new[] { "01", "1", "2", "1" }, new[] { "01", "1", "2" })]         // same number, different labels
    public void Groups_are_ordered_by_label(string[] labels, string[] expectedOrder)
    {
        float[] p = [.2f, .8f, .6f, .3f];
        int[] y = [0, 1, 1, 0];
        var r = ClassificationMetrics.Evaluate(p, y, labels, new MetricsOptions());
        Assert.Equal(expectedOrder, r.Groups.Select(g => g.Group));
        // each group really holds its own samples
        foreach (var g in r.Groups)
            Assert.Equal(labels.Count(l => l == g.Group), g.Counts.N);
    }
}
