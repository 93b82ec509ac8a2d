namespace FairMedFM.Metrics.Tests;

/// <summary>The binary AUC / ECE / threshold / group rows of shared/reference/metric-cases.md.</summary>
public sealed class MetricCasesTests
{
    private static readonly MetricsOptions Default = new();
    private static readonly MetricsOptions Reference = new(MetricsMode.Reference);

    [Fact] // T1: tiny scores must not be rounded into a tie
    public void T1_tiny_score_still_ranks_above_zero()
    {
        var auc = BinaryMetrics.RocAuc([1e-10f, 0f, 0f], [1, 0, 0]);
        Assert.Equal(1.0, auc.Value);
        Assert.True(auc.IsDefined);
    }

    [Fact] // T2: a tie block counts as a whole
    public void T2_ties_count_half_and_roc_vertices_cover_whole_tie_blocks()
    {
        float[] s = [9, 9, 5, 5];
        int[] y = [1, 0, 1, 0];
        Assert.Equal(0.5, BinaryMetrics.RocAuc(s, y).Value);
        var roc = BinaryMetrics.RocCurve(s, y);
        Assert.Equal([0.0, 0.5, 1.0], roc.Fpr);
        Assert.Equal([0.0, 0.5, 1.0], roc.Tpr);
        Assert.Equal([double.PositiveInfinity, 9.0, 5.0], roc.Thresholds);
    }

    [Fact] // T5: no positives is typed undefined, not NaN, not -0.0
    public void T5_auc_without_positives_is_undefined_no_positives()
    {
        var auc = BinaryMetrics.RocAuc([0.1f, 0.1f, 0.1f, 0.1f, 0.1f], [0, 0, 0, 0, 0]);
        Assert.False(auc.IsDefined);
        Assert.Equal(UndefinedReason.NoPositives, auc.Reason);
        Assert.Equal("undefined (no positives)", auc.ToString());

        Assert.Equal(UndefinedReason.NoNegatives, BinaryMetrics.RocAuc([0.2f, 0.7f], [1, 1]).Reason);
        Assert.Equal(UndefinedReason.EmptyGroup, BinaryMetrics.RocAuc(ReadOnlySpan<float>.Empty, ReadOnlySpan<int>.Empty).Reason);
    }

    [Fact] // T7: a confidence of 0 falls in the first bin (no index -1)
    public void T7_ece_two_bins_with_zero_and_one()
    {
        var ece = BinaryMetrics.Ece([1f, 1f, 1f, 1f, 0f], [0, 0, 1, 1, 1], 2, MetricsMode.Default);
        Assert.Equal(0.6, ece.Value, 1e-12);
    }

    [Fact] // T8
    public void T8_ece_perfect_predictions_fifteen_bins_is_zero()
    {
        var ece = BinaryMetrics.Ece([0f, 1f, 0f, 1f], [0, 1, 0, 1], 15, MetricsMode.Default);
        Assert.True(ece.IsDefined);
        Assert.Equal(0.0, ece.Value, 1e-15);
    }

    [Fact] // T9: 1.0 belongs to the last, closed bin [0.9, 1]
    public void T9_confidence_one_stays_in_last_closed_bin()
    {
        Assert.Equal(0.475, BinaryMetrics.Ece([0.95, 1.0], [1, 0], 10, MetricsMode.Default).Value, 1e-12);
        // float32 0.95 is 0.949999988..., hence the looser tolerance
        Assert.Equal(0.475, BinaryMetrics.Ece([0.95f, 1.0f], [1, 0], 10, MetricsMode.Default).Value, 1e-7);
        Assert.NotEqual(0.525, BinaryMetrics.Ece([0.95f, 1.0f], [1, 0], 10, MetricsMode.Default).Value, 1e-3);
    }

    [Fact] // T12: the positive-class score is column 1 of the softmax output
    public void T12_auc_uses_column_one_scores()
    {
        float[,] outs = { { .8f, .2f }, { .8f, .2f }, { .9f, .1f }, { .1f, .9f } };
        int[] y = [0, 0, 0, 1];
        float[] col1 = Enumerable.Range(0, 4).Select(i => outs[i, 1]).ToArray();
        float[] col0 = Enumerable.Range(0, 4).Select(i => outs[i, 0]).ToArray();
        Assert.Equal(1.0, BinaryMetrics.RocAuc(col1, y).Value);
        Assert.Equal(0.0, BinaryMetrics.RocAuc(col0, y).Value); // the wrong column is visibly wrong
    }

    [Fact] // T13: a missing group value is an error naming the row
    public void T13_missing_group_label_throws_naming_the_row()
    {
        string[] sf = ["a", "a", "a", "a", "b", "b", null!];
        float[] p = [.1f, .2f, .3f, .4f, .5f, .6f, .7f];
        int[] y = [0, 1, 0, 1, 0, 1, 0];
        var ex = Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(p, y, sf, Default));
        Assert.Contains("groups[6]", ex.Message);
        Assert.Equal("groups", ex.ParamName);
    }

    [Theory] // T14: one policy — the first missing row is named; an empty string is missing too
    [InlineData(null)]
    [InlineData("")]
    public void T14_first_missing_group_is_named_in_both_modes(string? missing)
    {
        string[] sf = ["a", "a", "b", "b", missing!, missing!];
        float[] p = [.1f, .9f, .8f, .7f, .2f, .3f];
        int[] y = [0, 1, 0, 1, 0, 1];
        foreach (var o in new[] { Default, Reference })
        {
            var ex = Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate(p, y, sf, o));
            Assert.Contains("groups[4]", ex.Message);
            Assert.DoesNotContain("groups[5]", ex.Message);
        }
    }

    [Fact] // T16: per-group AUC of one-class groups is typed undefined, no crash
    public void T16_single_class_groups_get_typed_undefined_auc()
    {
        foreach (var o in new[] { Default, Reference })
        {
            var r = ClassificationMetrics.Evaluate([1f, 0f], [0, 1], ["0", "1"], o);
            Assert.Equal(0.0, r.Overall.Values["auc"].Value);
            Assert.Equal(UndefinedReason.NoPositives, r.Group("0")!.Values["auc"].Reason);
            Assert.Equal(UndefinedReason.NoNegatives, r.Group("1")!.Values["auc"].Reason);
            Assert.Equal(UndefinedReason.NoPositives, r.Group("0")!.Values["tpr"].Reason);
            Assert.Equal(UndefinedReason.NoNegatives, r.Group("1")!.Values["tnr"].Reason);
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary["worst-auc"].Reason);
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary["auc-gap"].Reason);
            Assert.Contains("'0' (no positives)", r.Summary["auc-gap"].Detail);
            Assert.Contains("'1' (no negatives)", r.Summary["auc-gap"].Detail);
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary["eo"].Reason);
            Assert.Equal(UndefinedReason.TooFewGroups, r.Summary["eod"].Reason);
            Assert.True(r.Summary["acc-gap"].IsDefined);
        }
    }

    [Fact] // T19: group codes {0, 2}: both evaluated, no phantom empty group 1
    public void T19_non_contiguous_codes_are_all_evaluated()
    {
        var r = ClassificationMetrics.Evaluate([.2f, .8f, .3f, .7f], [0, 1, 0, 1], ["0", "0", "2", "2"], Reference);
        Assert.Equal(["0", "2"], r.Groups.Select(g => g.Group));
        Assert.Equal(1.0, r.Group("0")!.Values["auc"].Value);
        Assert.Equal(1.0, r.Group("2")!.Values["auc"].Value);
        Assert.Equal(0.0, r.Summary["auc-gap"].Value);
        Assert.Equal(1.0, r.Summary["worst-auc"].Value);
    }

    [Fact] // T21: fixed [0, 1] bins (Default) versus bins over the data range (Reference)
    public void T21_fixed_unit_bins_versus_data_range_bins()
    {
        double[] pd = [0.50, 0.52, 0.54, 0.56, 0.58, 0.60];
        float[] pf = pd.Select(x => (float)x).ToArray();
        int[] y = [0, 0, 1, 0, 1, 1];

        // the verified value: float64 scores, all six in [0.5, 0.6000000000000001) (the linspace edge 6·0.1)
        Assert.Equal(0.05, BinaryMetrics.Ece(pd, y, 10, MetricsMode.Default).Value, 1e-12);
        // float32 0.6 is 0.60000002..., above that edge, so it sits alone in [0.6, 0.7):
        // (5/6)·|0.54 − 0.4| + (1/6)·|0.6 − 1| = 0.18333...
        Assert.Equal(0.55 / 3, BinaryMetrics.Ece(pf, y, 10, MetricsMode.Default).Value, 1e-7);

        // pandas.cut over [0.5, 0.6]: every sample in its own bin, ECE = mean |p − y|
        Assert.Equal(2.86 / 6, BinaryMetrics.Ece(pd, y, 10, MetricsMode.Reference).Value, 1e-12);
        Assert.Equal(2.86 / 6, BinaryMetrics.Ece(pf, y, 10, MetricsMode.Reference).Value, 1e-7);
        Assert.Equal("0.4767", BinaryMetrics.Ece(pf, y, 10, MetricsMode.Reference).ToString());
    }
}
