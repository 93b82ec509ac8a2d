
namespace FairMedFM.Metrics.Tests;

public sealed class BuildingBlockTests
{
    [Fact]
    public void Metric_value_formats_and_refuses_nan()
    {
        Assert.Equal("0.7824", MetricValue.Of(0.7824249165739711).ToString());
        Assert.Equal("1.0000", MetricValue.Of(1).ToString());
        Assert.Equal("undefined (no negatives)", MetricValue.Undefined(UndefinedReason.NoNegatives, "x").ToString());
        Assert.Equal("undefined (too few groups)", MetricValue.Undefined(UndefinedReason.TooFewGroups).ToString());
        Assert.Throws<ArgumentException>(() => MetricValue.Of(double.NaN));
        var u = MetricValue.Undefined(UndefinedReason.EmptyGroup, "why");
        Assert.False(u.IsDefined);
        Assert.True(double.IsNaN(u.Value));
        Assert.Equal("why", u.Detail);
        Assert.True(MetricValue.Of(0).IsDefined);
    }

    [Fact]
    public void Auc_equals_brute_force_pair_counting_with_ties()
    {
        var rng = new Random(1234);
        for (int rep = 0; rep < 30; rep++)
        {
            int n = rng.Next(2, 300);
            var y = Enumerable.Range(0, n).Select(_ => rng.Next(2)).ToArray();
            // coarse quantisation forces many ties, including mixed-class tie blocks
            var p = Enumerable.Range(0, n).Select(_ => (float)(rng.Next(0, 12) / 11.0)).ToArray();
            double wins = 0; long pairs = 0;
            for (int i = 0; i < n; i++)
                if (y[i] == 1)
                    for (int j = 0; j < n; j++)
                        if (y[j] == 0) { pairs++; wins += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0; }
            var auc = BinaryMetrics.RocAuc(p, y);
            if (pairs == 0) { Assert.False(auc.IsDefined); continue; }
            Assert.Equal(wins / pairs, auc.Value, 1e-15);
            Assert.Equal(auc.Value, BinaryMetrics.RocAuc(p.Select(x => (double)x).ToArray(), y).Value);
        }
    }

    [Fact]
    public void Auc_with_nan_score_is_undefined_input()
    {
        var auc = BinaryMetrics.RocAuc([0.1f, float.NaN, 0.3f], [0, 1, 1]);
        Assert.Equal(UndefinedReason.UndefinedInput, auc.Reason);
        Assert.Contains("index 1", auc.Detail);
    }

    [Fact]
    public void Bce_clamps_log_at_minus_100_and_is_float32()
    {
        Assert.Equal(100.0, BinaryMetrics.Bce([0f], [1]).Value);
        Assert.Equal(100.0, BinaryMetrics.Bce([1f], [0]).Value);
        Assert.Equal(0.0, BinaryMetrics.Bce([1f, 0f], [1, 0]).Value);
        Assert.Equal((double)(float)Math.Log(2), BinaryMetrics.Bce([0.5f, 0.5f], [1, 0]).Value);
        Assert.Equal(50.0, BinaryMetrics.Bce([0f, 1f], [1, 1]).Value); // (100 + 0) / 2
        var v = BinaryMetrics.Bce([0.2f, 0.9f], [0, 1]).Value;
        Assert.Equal((double)(float)v, v); // a float32 value, like the legacy loss.item()
        Assert.Equal(-(Math.Log(0.8) + Math.Log(0.9)) / 2, v, 1e-7);
    }

    [Fact]
    public void Bce_and_default_ece_refuse_non_probabilities()
    {
        Assert.Equal(UndefinedReason.UndefinedInput, BinaryMetrics.Bce([1.5f, .2f], [1, 0]).Reason);
        Assert.Equal(UndefinedReason.UndefinedInput, BinaryMetrics.Bce([float.NaN], [1]).Reason);
        Assert.Equal(UndefinedReason.EmptyGroup, BinaryMetrics.Bce([], []).Reason);
        Assert.Equal(UndefinedReason.UndefinedInput, BinaryMetrics.Ece([1.2f, .2f], [1, 0], 10, MetricsMode.Default).Reason);
        Assert.Equal(UndefinedReason.UndefinedInput, BinaryMetrics.Ece([float.NaN, .2f], [1, 0], 10, MetricsMode.Reference).Reason);
        Assert.Equal(UndefinedReason.EmptyGroup, BinaryMetrics.Ece(ReadOnlySpan<float>.Empty, [], 10, MetricsMode.Default).Reason);
        // pandas.cut bins any real range, so Reference ECE of raw scores is defined
        Assert.True(BinaryMetrics.Ece([1.2f, .2f], [1, 0], 10, MetricsMode.Reference).IsDefined);
    }

    [Fact]
    public void Reference_ece_of_constant_scores_uses_the_widened_single_value_range()
    {
        // pandas.cut widens [0.3, 0.3] by 0.1 %: one bin holds everything, ECE = |0.3f − mean y|
        var ece = BinaryMetrics.Ece([0.3f, 0.3f, 0.3f, 0.3f], [1, 0, 1, 1], 10, MetricsMode.Reference);
        Assert.Equal(Math.Abs((double)0.3f - 0.75), ece.Value, 1e-15);
        var zero = BinaryMetrics.Ece([0f, 0f], [1, 0], 10, MetricsMode.Reference);
        Assert.Equal(0.5, zero.Value, 1e-15);
    }

    [Fact]
    public void Default_ece_bins_are_left_closed_with_the_last_bin_closed()
    {
        // 0.5 sits on an edge: with two bins it belongs to [0.5, 1], together with 1.0
        Assert.Equal(Math.Abs(0.75 - 0.5) * 2 / 3 + 0.25 / 3, BinaryMetrics.Ece([0.5f, 1f, 0.25f], [0, 1, 0], 2, MetricsMode.Default).Value, 1e-12);
        Assert.Equal(1.0, BinaryMetrics.Ece([0f], [1], 1, MetricsMode.Default).Value);
        Assert.Throws<ArgumentOutOfRangeException>(() => BinaryMetrics.Ece([0.5f], [1], 0, MetricsMode.Default));
    }

    [Fact]
    public void Confusion_is_strict_greater()
    {
        var c = BinaryMetrics.Confusion([0.5f, 0.5f, 0.6f, 0.4f], [1, 0, 1, 0], 0.5);
        Assert.Equal(new ConfusionCounts(Tp: 1, Fp: 0, Tn: 2, Fn: 1), c);
        Assert.Equal(0.75, c.Accuracy.Value);
        Assert.Equal(0.5, c.Tpr.Value);
        Assert.Equal(1.0, c.Tnr.Value);
        Assert.Equal(UndefinedReason.NoPositives, BinaryMetrics.Confusion([0.3f], [0], 0.5).Tpr.Reason);
    }

    [Fact]
    public void Precision_recall_curve_without_positives_has_recall_one_like_sklearn()
    {
        var pr = BinaryMetrics.PrecisionRecall([0.2f, 0.7f], [0, 0]);
        Assert.Equal([1.0, 1.0, 0.0], pr.Recall);
        Assert.Equal([0.0, 0.0, 1.0], pr.Precision);
        Assert.All(pr.F1, f => Assert.Equal(0.0, f));
    }

    [Fact]
    public void Evaluate_on_100k_samples_matches_the_building_blocks()
    {
        var rng = new Random(99);
        int n = 100_000;
        var y = new int[n];
        var p = new float[n];
        var g = new string[n];
        string[] names = ["F", "M", "U", "X"];
        for (int i = 0; i < n; i++)
        {
            y[i] = rng.Next(2);
            int k = rng.Next(4);
            g[i] = names[k];
            p[i] = (float)(1 / (1 + Math.Exp(-(1.2 * (y[i] - 0.5) + 0.3 * k + Normal(rng)))));
        }
        var options = new MetricsOptions();
        // Speed is measured by the benchmark (bench/FairMedFM.Bench), not asserted here.
        var r = ClassificationMetrics.Evaluate(p, y, g, options);
        Assert.Equal(BinaryMetrics.RocAuc(p, y), r.Summary["overall-auc"]);
        var fIdx = Enumerable.Range(0, n).Where(i => g[i] == "F").ToArray();
        Assert.Equal(BinaryMetrics.RocAuc(fIdx.Select(i => p[i]).ToArray(), fIdx.Select(i => y[i]).ToArray()), r.Group("F")!.Values["auc"]);
        Assert.Equal(["F", "M", "U", "X"], r.Groups.Select(x => x.Group));
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
