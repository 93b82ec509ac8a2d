using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests.Segmentation;

public class PromptTests
{
    /// <summary>Mask from text rows: '#' = foreground, anything else background.</summary>
    private static (byte[] Mask, int W, int H) Mask(params string[] rows)
    {
        int h = rows.Length, w = rows[0].Length;
        var m = new byte[w * h];
        for (int y = 0; y < h; y++)
        {
            Assert.Equal(w, rows[y].Length);
            for (int x = 0; x < w; x++) m[y * w + x] = rows[y][x] == '#' ? (byte)1 : (byte)0;
        }
        return (m, w, h);
    }

    private static MaskPrompts P((byte[] Mask, int W, int H) m, long seed = 1, string id = "s", CenterRule rule = CenterRule.BoxCenter) =>
        PromptGenerator.FromMask(m.Mask, m.W, m.H, seed, id, rule);

    private static void AllOnForeground((byte[] Mask, int W, int H) m, MaskPrompts p)
    {
        Assert.Equal(1, m.Mask[p.Rand.Y * m.W + p.Rand.X]);
        Assert.Equal(PromptGenerator.RandsCount, p.Rands.Count);
        foreach (var q in p.Rands) Assert.Equal(1, m.Mask[q.Y * m.W + q.X]);
    }

    [Fact]
    public void Rectangle_box_is_inclusive_and_center_is_floor_of_box_midpoint()
    {
        var m = Mask(
            "........",
            "..####..",
            "..####..",
            "..####..",
            "........");
        var p = P(m);
        Assert.False(p.Skipped);
        Assert.Equal(new PromptBox(2, 1, 5, 3), p.Box);
        Assert.Equal(new PromptPoint(3, 2), p.Center); // (2+5) div 2 = 3, (1+3) div 2 = 2
        Assert.True(p.BoxCenterIsForeground);
        Assert.Equal(12, p.ForegroundPixels);
        AllOnForeground(m, p);
        Assert.Equal(new float[] { 2, 1, 5, 3 }, p.ToReferenceArray(PromptKind.Box));
        Assert.Equal(new float[] { 3, 2 }, p.ToReferenceArray(PromptKind.Center));
    }

    [Fact]
    public void Coordinates_are_x_column_y_row_on_a_non_square_mask()
    {
        var m = Mask(
            "..........",
            "........#.",
            "..........");
        var p = P(m);
        Assert.Equal(new PromptPoint(8, 1), p.Rand);
        Assert.Equal(new PromptBox(8, 1, 8, 1), p.Box);
        Assert.Equal(new PromptPoint(8, 1), p.Center);
        Assert.All(p.Rands, q => Assert.Equal(new PromptPoint(8, 1), q));
        Assert.Equal(new float[] { 8, 8, 8, 8, 8, 1, 1, 1, 1, 1 }, p.ToReferenceArray(PromptKind.Rands));
    }

    [Fact]
    public void L_shape_box_center_is_background_and_kept_by_default()
    {
        var m = Mask(
            "#.....",
            "#.....",
            "#.....",
            "#.....",
            "######");
        var p = P(m);
        Assert.Equal(new PromptBox(0, 0, 5, 4), p.Box);
        Assert.Equal(new PromptPoint(2, 2), p.Center); // the reference's point, on background
        Assert.False(p.BoxCenterIsForeground);
        AllOnForeground(m, p);

        var snapped = P(m, rule: CenterRule.NearestForegroundToBoxCenter);
        Assert.Equal(CenterRule.NearestForegroundToBoxCenter, snapped.CenterRule);
        // Distances² from (2,2): (0,2) = 4, (2,4) = 4; tie → first in row-major order = (0,2).
        Assert.Equal(new PromptPoint(0, 2), snapped.Center);
        Assert.False(snapped.BoxCenterIsForeground);
        Assert.Equal(p.Rand, snapped.Rand); // the rule does not change the random prompts
    }

    [Fact]
    public void Ring_center_is_the_hole()
    {
        var m = Mask(
            ".#####.",
            ".#...#.",
            ".#...#.",
            ".#...#.",
            ".#####.");
        var p = P(m);
        Assert.Equal(new PromptBox(1, 0, 5, 4), p.Box);
        Assert.Equal(new PromptPoint(3, 2), p.Center);
        Assert.False(p.BoxCenterIsForeground);
        var s = P(m, rule: CenterRule.NearestForegroundToBoxCenter);
        // (3,0), (1,2), (5,2), (3,4) are all at d² = 4: the first in row-major order wins.
        Assert.Equal(new PromptPoint(3, 0), s.Center);
    }

    [Fact]
    public void Mask_touching_every_border()
    {
        var m = Mask(
            "#...#",
            ".....",
            "#...#");
        var p = P(m);
        Assert.Equal(new PromptBox(0, 0, 4, 2), p.Box);
        Assert.Equal(new PromptPoint(2, 1), p.Center);
        AllOnForeground(m, p);
        var full = Mask("###", "###");
        Assert.Equal(new PromptBox(0, 0, 2, 1), P(full).Box);
        Assert.Equal(new PromptPoint(1, 0), P(full).Center); // (0+1) div 2 = 0
    }

    [Fact]
    public void Single_pixel()
    {
        var m = Mask("...", "..#");
        var p = P(m);
        Assert.Equal(new PromptBox(2, 1, 2, 1), p.Box);
        Assert.Equal(new PromptPoint(2, 1), p.Center);
        Assert.True(p.BoxCenterIsForeground);
        Assert.Equal(new PromptPoint(2, 1), p.Rand);
        Assert.Equal(1, p.ForegroundPixels);
    }

    [Fact]
    public void Empty_mask_is_a_typed_skip_not_a_crash()
    {
        var m = Mask("....", "....");
        var p = P(m, id: "image/a.png");
        Assert.True(p.Skipped);
        Assert.Equal(PromptSkipReason.EmptyMask, p.SkipReason);
        Assert.StartsWith("skipped: empty mask", p.SkipMessage);
        Assert.Contains("image/a.png", p.SkipMessage);
        var e = Assert.Throws<InvalidOperationException>(() => p.Box);
        Assert.Contains("empty mask", e.Message);
        Assert.Throws<InvalidOperationException>(() => p.Points(PromptKind.Rand));
    }

    [Fact]
    public void Random_prompts_are_reproducible_per_seed_and_sample_and_independent_of_order()
    {
        var big = new byte[40 * 30];
        for (int y = 5; y < 25; y++) for (int x = 3; x < 37; x++) big[y * 40 + x] = 1;
        var a1 = PromptGenerator.FromMask(big, 40, 30, 123, "sample-7");
        // Other samples in between, another order: same result.
        PromptGenerator.FromMask(big, 40, 30, 123, "sample-1");
        var a2 = PromptGenerator.FromMask(big, 40, 30, 123, "sample-7");
        Assert.Equal(a1.Rand, a2.Rand);
        Assert.Equal(a1.Rands, a2.Rands);
        // A different run seed or sample id changes the draws (680 foreground pixels: a collision of all 6 is negligible).
        var b = PromptGenerator.FromMask(big, 40, 30, 124, "sample-7");
        var c = PromptGenerator.FromMask(big, 40, 30, 123, "sample-8");
        Assert.NotEqual(a1.Rands.Prepend(a1.Rand).ToArray(), b.Rands.Prepend(b.Rand).ToArray());
        Assert.NotEqual(a1.Rands.Prepend(a1.Rand).ToArray(), c.Rands.Prepend(c.Rand).ToArray());
        // Deterministic box/center regardless of seed.
        Assert.Equal(a1.Box, b.Box);
        Assert.Equal(a1.Center, b.Center);
    }

    [Fact]
    public void Rands_are_drawn_with_replacement_and_uniformly_over_the_foreground()
    {
        // Two foreground pixels: with replacement, 5 draws must sometimes repeat; over many seeds both appear ~equally.
        var m = Mask("#..#");
        int left = 0, total = 0, repeats = 0;
        for (int s = 0; s < 400; s++)
        {
            var p = P(m, seed: s);
            foreach (var q in p.Rands) { total++; if (q.X == 0) left++; }
            if (p.Rands.Distinct().Count() < p.Rands.Count) repeats++;
        }
        Assert.Equal(400, repeats); // 5 draws from 2 pixels always repeat
        double frac = (double)left / total;
        Assert.InRange(frac, 0.45, 0.55); // 2000 draws: sd ≈ 0.011
    }

    [Fact]
    public void Points_give_one_or_five_positive_points()
    {
        var p = P(Mask("##", "##"));
        Assert.Single(p.Points(PromptKind.Center));
        Assert.Single(p.Points(PromptKind.Rand));
        Assert.Equal(5, p.Points(PromptKind.Rands).Count);
        Assert.Throws<ArgumentException>(() => p.Points(PromptKind.Box));
    }

    [Fact]
    public void Seed_derivation_is_a_fixed_function()
    {
        // Pinned so a change of the derivation (which would change every prompt of every run) is noticed.
        Assert.Equal(683763031410021019UL, SegRandom.DeriveSeed(0, "prompt:rand", "a"));
        var m = new byte[40 * 30];
        for (int y = 5; y < 25; y++) for (int x = 3; x < 37; x++) m[y * 40 + x] = 1;
        var p = PromptGenerator.FromMask(m, 40, 30, 123, "sample-7");
        Assert.Equal(new PromptPoint(25, 8), p.Rand);
        Assert.Equal(new[] { new PromptPoint(17, 14), new PromptPoint(27, 9), new PromptPoint(21, 23), new PromptPoint(33, 9), new PromptPoint(4, 5) }, p.Rands);
        Assert.NotEqual(SegRandom.DeriveSeed(0, "prompt:rand", "a"), SegRandom.DeriveSeed(0, "prompt:rands", "a"));
        Assert.NotEqual(SegRandom.DeriveSeed(0, "prompt:rand", "a"), SegRandom.DeriveSeed(1, "prompt:rand", "a"));
    }
}
