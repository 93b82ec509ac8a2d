namespace FairMedFM.Metrics.Tests;

public sealed class DefaultModeAndThresholdTests
{
    private static Golden.Input N5000 => Golden.InputOf(Golden.Cases.GetProperty("n5000_three_groups"));

    [Fact]
    public void Caller_threshold_is_used_as_is_for_every_group()
    {
        var d = N5000;
        var r = ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(), threshold: 0.62);
        Assert.Equal(0.62, r.Threshold);
        Assert.True(r.ThresholdFromCaller);
        var c = BinaryMetrics.Confusion(d.Prob, d.Label, 0.62);
        Assert.Equal((double)c.Tp, r.Overall.Values["tp"].Value);
        Assert.Equal(c.Tpr.Value, r.Overall.Values["tpr"].Value);
        Assert.Equal(c.Accuracy.Value, r.Summary["overall-acc"].Value);
        foreach (var g in r.Groups)
        {
            var idx = Enumerable.Range(0, d.Prob.Length).Where(i => d.Group[i] == g.Group).ToArray();
            var gc = BinaryMetrics.Confusion(idx.Select(i => d.Prob[i]).ToArray(), idx.Select(i => d.Label[i]).ToArray(), 0.62);
            Assert.Equal((double)gc.Fp, g.Values["fp"].Value);
            Assert.Equal(gc.Fpr.Value, g.Values["fpr"].Value);
            Assert.Equal(gc.Fnr.Value, g.Values["fnr"].Value);
        }
    }

    [Fact]
    public void Default_mode_chooses_best_f1_on_the_set_and_uses_unit_ece_bins()
    {
        var d = N5000;
        var def = ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions());
        var reference = ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(MetricsMode.Reference));
        Assert.Equal(0.4306698739528656, def.Threshold);
        Assert.False(def.ThresholdFromCaller);
        Assert.Equal(reference.Threshold, def.Threshold);
        Assert.Equal(reference.Summary["eod"], def.Summary["eod"]);
        Assert.Equal(BinaryMetrics.Ece(d.Prob, d.Label, 10, MetricsMode.Default), def.Summary["overall-ece"]);
        Assert.Equal(0.05956526235640049, reference.Summary["overall-ece"].Value, 1e-9);
        Assert.NotEqual(reference.Summary["overall-ece"].Value, def.Summary["overall-ece"].Value);
        Assert.Equal(ClassificationReport.SummaryKeys.OrderBy(k => k), def.Summary.Keys.OrderBy(k => k));
        Assert.Equal(GroupReport.Keys.OrderBy(k => k), def.Overall.Values.Keys.OrderBy(k => k));
    }

    [Fact]
    public void Ece_bins_option_is_honoured()
    {
        var d = N5000;
        var r = ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(EceBins: 15));
        Assert.Equal(BinaryMetrics.Ece(d.Prob, d.Label, 15, MetricsMode.Default).Value, r.Overall.Values["ece"].Value);
        Assert.NotEqual(BinaryMetrics.Ece(d.Prob, d.Label, 10, MetricsMode.Default).Value, r.Overall.Values["ece"].Value);
    }

    [Fact]
    public void Fixed_rule_is_one_half()
    {
        var d = N5000;
        Assert.Equal(0.5, ClassificationMetrics.ChooseThreshold(d.Prob, d.Label, ThresholdRule.Fixed));
        var r = ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(Rule: ThresholdRule.Fixed));
        Assert.Equal(r.Overall.Values["acc@0.5"], r.Overall.Values["acc"]);
        Assert.Equal(0.6632, r.Overall.Values["acc"].Value, 1e-12); // legacy acc at 0.5
    }

    [Fact]
    public void Youden_picks_the_lowest_threshold_among_maxima_under_strict_greater()
    {
        float[] p = [0.1f, 0.4f, 0.35f, 0.8f];
        int[] y = [0, 0, 1, 1];
        // p > 0.1: TPR 1, FPR .5 (J .5); p > 0.4: TPR .5, FPR 0 (J .5); others J 0
        Assert.Equal(0.1f, ClassificationMetrics.ChooseThreshold(p, y, ThresholdRule.Youden));
    }

    [Fact]
    public void Youden_threshold_maximises_j_of_the_counts_it_produces()
    {
        var rng = new Random(7);
        for (int rep = 0; rep < 20; rep++)
        {
            int n = 60;
            var y = Enumerable.Range(0, n).Select(_ => rng.Next(2)).ToArray();
            if (y.Distinct().Count() < 2) continue;
            var p = y.Select(l => (float)Math.Round(Math.Clamp(0.5 + 0.2 * (l - 0.5) + 0.25 * (rng.NextDouble() - 0.5), 0, 1), 2)).ToArray();
            double J(double t) { var c = BinaryMetrics.Confusion(p, y, t); return c.Tpr.Value - c.Fpr.Value; }
            double bestJ = p.Distinct().Max(t => J(t));
            double chosen = ClassificationMetrics.ChooseThreshold(p, y, ThresholdRule.Youden);
            Assert.Equal(bestJ, J(chosen), 1e-15);
            Assert.Equal(p.Distinct().Where(t => J(t) == bestJ).Min(), chosen); // lowest among ties
        }
    }

    [Fact]
    public void Threshold_rules_that_cannot_choose_are_typed_and_evaluate_falls_back_to_half()
    {
        float[] p = [.2f, .7f, .4f, .9f];
        int[] none = [0, 0, 0, 0];
        int[] all = [1, 1, 1, 1];
        Assert.Equal(UndefinedReason.NoPositives, ClassificationMetrics.ChooseThresholdOrUndefined(p, none, ThresholdRule.BestF1).Reason);
        Assert.Equal(UndefinedReason.NoNegatives, ClassificationMetrics.ChooseThresholdOrUndefined(p, all, ThresholdRule.Youden).Reason);
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.ChooseThreshold(p, none, ThresholdRule.BestF1));
        // all positive: best-F1 is defined (lowest threshold, recall 1)
        Assert.Equal(0.2f, ClassificationMetrics.ChooseThreshold(p, all, ThresholdRule.BestF1));

        var r = ClassificationMetrics.Evaluate(p, none, ["a", "b", "a", "b"], new MetricsOptions(MetricsMode.Reference));
        Assert.Equal(0.5, r.Threshold);
        Assert.Equal(UndefinedReason.NoPositives, r.ThresholdFallbackReason);
        Assert.Equal(UndefinedReason.NoPositives, r.Summary["overall-auc"].Reason);
        Assert.Equal(0.5, r.Summary["overall-acc"].Value); // .7 and .9 are > 0.5
        Assert.Equal(UndefinedReason.TooFewGroups, r.Summary["eo"].Reason);
        Assert.True(r.Summary["eod"].IsDefined is false);
    }

    [Fact]
    public void Reference_mode_refuses_a_caller_threshold_or_another_rule()
    {
        var d = N5000;
        Assert.Throws<ArgumentException>(() =>
            ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(MetricsMode.Reference), threshold: 0.4));
        Assert.Throws<ArgumentException>(() =>
            ClassificationMetrics.Evaluate(d.Prob, d.Label, d.Group, new MetricsOptions(MetricsMode.Reference, ThresholdRule.Youden)));
    }

    [Fact]
    public void Bad_inputs_throw_naming_the_problem()
    {
        string[] g = ["a", "a", "b", "b"];
        var o = new MetricsOptions();
        Assert.Contains("labels[2]", Assert.Throws<ArgumentException>(() =>
            ClassificationMetrics.Evaluate([.1f, .2f, .3f, .4f], [0, 1, 2, 1], g, o)).Message);
        Assert.Contains("probs[1]", Assert.Throws<ArgumentException>(() =>
            ClassificationMetrics.Evaluate([.1f, float.NaN, .3f, .4f], [0, 1, 0, 1], g, o)).Message);
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate([.1f, .2f, .3f], [0, 1, 0, 1], g, o));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate([.1f, .2f, .3f, .4f], [0, 1, 0, 1], ["a"], o));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate([], [], [], o));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Evaluate([.1f, .2f, .3f, .4f], [0, 1, 0, 1], g, o, double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            ClassificationMetrics.Evaluate([.1f, .2f, .3f, .4f], [0, 1, 0, 1], g, new MetricsOptions(EceBins: 0)));
    }
}
