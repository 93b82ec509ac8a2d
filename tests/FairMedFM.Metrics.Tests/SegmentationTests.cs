namespace FairMedFM.Metrics.Tests;

public sealed class SegmentationTests
{
    [Fact]
    public void Legacy_seg_two_groups_golden_to_1e6()
    {
        var c = Golden.Legacy.GetProperty("seg_two_groups");
        var dice = Golden.Doubles(c.GetProperty("dice"));
        var groups = Golden.GroupLabels(c.GetProperty("group"));
        var r = SegmentationMetrics.Summarize(dice, groups, "dice");
        var expected = c.GetProperty("summary");
        foreach (var key in new[] { "mean_dice", "min_dice", "max_dice", "delta_dice", "skewness_dice", "std_dice", "es_dice" })
        {
            Assert.True(r.Summary[key].IsDefined, key);
            Assert.Equal(expected.GetProperty(key).GetDouble(), r.Summary[key].Value, 1e-6);
        }
        Assert.Equal(7, r.Summary.Count);
        Assert.Equal(300, r.Groups.Sum(g => g.N));
    }

    [Fact]
    public void Any_number_of_groups_with_string_labels_and_relabelling_does_not_change_summaries()
    {
        double[] d = [0.9, 0.8, 0.7, 0.6, 0.95, 0.5, 0.85, 0.75, 0.65];
        string[] g = ["x", "y", "z", "x", "y", "z", "x", "y", "z"];
        var r = SegmentationMetrics.Summarize(d, g, "iou");
        double mx = (0.9 + 0.6 + 0.85) / 3, my = (0.8 + 0.95 + 0.75) / 3, mz = (0.7 + 0.5 + 0.65) / 3;
        double[] means = [mx, my, mz];
        double mean = means.Average(), std = Math.Sqrt(means.Sum(v => (v - mean) * (v - mean)) / 3);
        Assert.Equal(d.Average(), r.Summary["mean_iou"].Value, 1e-12);
        Assert.Equal(means.Min(), r.Summary["min_iou"].Value, 1e-12);
        Assert.Equal(means.Max() - means.Min(), r.Summary["delta_iou"].Value, 1e-12);
        Assert.Equal((1 - means.Min()) / (1 - means.Max()), r.Summary["skewness_iou"].Value, 1e-12);
        Assert.Equal(std, r.Summary["std_iou"].Value, 1e-12);
        Assert.Equal(d.Average() / (1 + std), r.Summary["es_iou"].Value, 1e-12);
        var relabelled = SegmentationMetrics.Summarize(d, g.Select(x => x == "x" ? "7" : x == "y" ? "12" : "3").ToArray(), "iou");
        foreach (var (k, v) in r.Summary) Assert.Equal(v.Value, relabelled.Summary[k].Value, 1e-15);
    }

    [Fact]
    public void Skewness_with_a_perfect_group_and_single_group_summaries_are_typed()
    {
        var r = SegmentationMetrics.Summarize([1.0, 1.0, 0.8, 0.9], ["a", "a", "b", "b"]);
        Assert.Equal(UndefinedReason.ZeroDenominator, r.Summary["skewness_dice"].Reason);
        Assert.True(r.Summary["es_dice"].IsDefined);
        var one = SegmentationMetrics.Summarize([0.7, 0.8], ["a", "a"]);
        Assert.Equal(UndefinedReason.TooFewGroups, one.Summary["delta_dice"].Reason);
        Assert.Equal(0.75, one.Summary["mean_dice"].Value, 1e-15);
        Assert.Throws<ArgumentException>(() => SegmentationMetrics.Summarize([0.7, double.NaN], ["a", "b"]));
        var ex = Assert.Throws<ArgumentException>(() => SegmentationMetrics.Summarize([0.7, 0.2], ["a", ""]));
        Assert.Contains("groups[1]", ex.Message);
    }

    [Fact]
    public void Hd95_undefined_samples_are_left_out_of_their_group_and_counted()
    {
        var values = new[] { MetricValue.Of(2), MetricValue.Undefined(UndefinedReason.EmptyMask), MetricValue.Of(4), MetricValue.Of(1) };
        var r = SegmentationMetrics.Summarize(values, ["a", "a", "b", "b"], "hd95");
        Assert.Equal(2.0, r.Groups[0].Mean.Value);
        Assert.Equal((2, 1), (r.Groups[0].N, r.Groups[0].Defined));
        Assert.Contains("1 of 2 samples undefined", r.Groups[0].Mean.Detail);
        Assert.False(r.Summary.ContainsKey("es_hd95"));
        Assert.Equal(0.5, r.Summary["delta_hd95"].Value, 1e-15);
        Assert.Equal(MetricDirection.LowerIsBetter, MetricCatalog.Get("mean_hd95")!.Direction);
    }

    private static BinaryMask Mask(params string[] rows) =>
        new(rows.Length, rows[0].Length, rows.SelectMany(r => r.Select(ch => ch == '#')).ToArray());

    [Fact]
    public void Dice_and_iou_standard_definitions_and_empty_masks()
    {
        var p = Mask("##..", "##..", "....");
        var t = Mask(".##.", ".##.", "....");
        Assert.Equal(2.0 * 2 / 8, SegmentationMetrics.Dice(p, t).Value, 1e-15);
        Assert.Equal(2.0 / 6, SegmentationMetrics.IoU(p, t).Value, 1e-15);
        var e = Mask("....", "....", "....");
        Assert.Equal(UndefinedReason.EmptyMask, SegmentationMetrics.Dice(e, e).Reason);
        Assert.Equal(UndefinedReason.EmptyMask, SegmentationMetrics.IoU(e, e).Reason);
        Assert.Equal(0.0, SegmentationMetrics.Dice(p, e).Value);
        Assert.Throws<ArgumentException>(() => SegmentationMetrics.Dice(p, Mask("##", "##")));
    }

    [Fact]
    public void Reference_dice_thresholds_logits_at_half_and_deletes_column_zero()
    {
        // target in column 0 only and in column 2; logits: 0.4 (below 0.5 although SAM's rule > 0 says foreground), 0.5 (≥ 0.5)
        var target = Mask("#.#", "#.#");
        float[,] logits = { { 3f, 0f, 0.5f }, { 3f, 0.4f, 0.4f } };
        // column 0 is ignored; col 1: no target, preds none; col 2: row 0 TP (0.5 ≥ 0.5), row 1 FN (0.4)
        Assert.Equal(2.0 * 1 / (2 * 1 + 0 + 1), SegmentationMetrics.DiceReference(logits, target).Value, 1e-15);
        // the standard Dice at SAM's threshold (> 0) sees column 0 and the 0.4 logits
        var pred = BinaryMask.FromLogits(logits);
        Assert.Equal(2.0 * 4 / (5 + 4), SegmentationMetrics.Dice(pred, target).Value, 1e-15);
        // denominator 0 → 0 (zero_division = 0), where the standard Dice is undefined
        var empty = Mask("...", "...");
        Assert.Equal(0.0, SegmentationMetrics.DiceReference(new float[2, 3], empty).Value);
        float[,] nan = { { 0, float.NaN, 0 }, { 0, 0, 0 } };
        Assert.Contains("logits[0, 1]", Assert.Throws<ArgumentException>(() => SegmentationMetrics.DiceReference(nan, empty)).Message);
    }

    /// <summary>HD95 from the definition by brute force: surfaces by 4-neighbourhood, all pairwise distances, pooled 95th percentile.</summary>
    private static double BruteHd(BinaryMask a, BinaryMask b, double pct)
    {
        List<(int, int)> Surf(BinaryMask m)
        {
            var s = new List<(int, int)>();
            for (int r = 0; r < m.Height; r++)
                for (int c = 0; c < m.Width; c++)
                {
                    if (!m[r, c]) continue;
                    bool In(int rr, int cc) => rr >= 0 && cc >= 0 && rr < m.Height && cc < m.Width && m[rr, cc];
                    if (!(In(r - 1, c) && In(r + 1, c) && In(r, c - 1) && In(r, c + 1))) s.Add((r, c));
                }
            return s;
        }
        var sa = Surf(a); var sb = Surf(b);
        double D((int, int) x, List<(int, int)> to) => to.Min(y => Math.Sqrt(Math.Pow(x.Item1 - y.Item1, 2) + Math.Pow(x.Item2 - y.Item2, 2)));
        var all = sa.Select(x => D(x, sb)).Concat(sb.Select(x => D(x, sa))).Order().ToArray();
        double h = (all.Length - 1) * pct / 100; int lo = (int)h;
        return lo + 1 < all.Length ? all[lo] + (h - lo) * (all[lo + 1] - all[lo]) : all[lo];
    }

    [Fact]
    public void Hd95_equals_brute_force_on_random_blobs_and_is_symmetric()
    {
        var rng = new Random(4);
        for (int t = 0; t < 25; t++)
        {
            int h = rng.Next(5, 30), w = rng.Next(5, 30);
            BinaryMask Blob()
            {
                var px = new bool[h * w];
                int cr = rng.Next(h), cc = rng.Next(w), rad = rng.Next(1, 8);
                for (int r = 0; r < h; r++) for (int c = 0; c < w; c++)
                    px[r * w + c] = (r - cr) * (r - cr) + (c - cc) * (c - cc) <= rad * rad || rng.NextDouble() < 0.03;
                return new BinaryMask(h, w, px);
            }
            var a = Blob(); var b = Blob();
            Assert.Equal(BruteHd(a, b, 95), SegmentationMetrics.Hausdorff95(a, b).Value, 1e-9);
            Assert.Equal(SegmentationMetrics.Hausdorff95(a, b).Value, SegmentationMetrics.Hausdorff95(b, a).Value, 1e-12);
            Assert.Equal(BruteHd(a, b, 100), SegmentationMetrics.HausdorffPercentile(a, b, 100).Value, 1e-9);
        }
        var m = Mask("##.", "##.", "...");
        Assert.Equal(0.0, SegmentationMetrics.Hausdorff95(m, m).Value);
        Assert.Equal(UndefinedReason.EmptyMask, SegmentationMetrics.Hausdorff95(m, Mask("...", "...", "...")).Reason);
    }

    [Fact]
    public void Segmentation_bootstrap_gives_intervals_for_summaries_and_group_means()
    {
        var c = Golden.Legacy.GetProperty("seg_two_groups");
        var dice = Golden.Doubles(c.GetProperty("dice")).Select(MetricValue.Of).ToArray();
        var groups = Golden.GroupLabels(c.GetProperty("group"));
        var r = SegmentationMetrics.SummarizeWithIntervals(dice, groups, "dice", new BootstrapOptions(200, Seed: 1));
        var again = SegmentationMetrics.SummarizeWithIntervals(dice, groups, "dice", new BootstrapOptions(200, Seed: 1));
        Assert.Equal(r.Summary["es_dice"], again.Summary["es_dice"]);
        foreach (var k in new[] { "mean_dice", "delta_dice", "es_dice", "std_dice" })
        {
            Assert.True(r.Summary[k].IsDefined, k);
            Assert.True(r.Summary[k].Lower <= r.Estimate.Summary[k].Value + 0.02 && r.Estimate.Summary[k].Value - 0.02 <= r.Summary[k].Upper, k);
            Assert.True(r.Summary[k].Lower < r.Summary[k].Upper, k);
        }
        Assert.Equal(["0", "1"], r.GroupMeans.Keys.Order());
    }

    [Fact]
    public void One_patient_per_group_gives_no_interval_rather_than_a_zero_width_one()
    {
        // Two images per patient, one patient per group: every clustered resample redraws the same patient in each group.
        var dice = new[] { 0.90, 0.95, 0.70, 0.80 }.Select(MetricValue.Of).ToArray();
        string[] groups = ["F", "F", "M", "M"], patients = ["p1", "p1", "p2", "p2"];
        var r = SegmentationMetrics.SummarizeWithIntervals(dice, groups, "dice", new BootstrapOptions(100, Seed: 1), patients);
        Assert.False(r.Summary["delta_dice"].IsDefined);
        Assert.Equal(UndefinedReason.TooFewUnits, r.Summary["delta_dice"].Reason);
        Assert.Contains("single patient", r.Summary["delta_dice"].Detail);
        Assert.Equal(UndefinedReason.TooFewUnits, r.GroupMeans["F"].Reason);
        // Without patient ids each image is its own unit: two per group, so the intervals exist and have width.
        var images = SegmentationMetrics.SummarizeWithIntervals(dice, groups, "dice", new BootstrapOptions(100, Seed: 1));
        Assert.True(images.Summary["delta_dice"].IsDefined);
        Assert.True(images.Summary["delta_dice"].Lower < images.Summary["delta_dice"].Upper);
    }
}
