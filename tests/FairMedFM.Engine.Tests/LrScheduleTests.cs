using FairMedFM.Engine.Training;

namespace FairMedFM.Engine.Tests;

public class LrScheduleTests
{
    private static double Round4(double v) => double.Parse(v.ToString("G4", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>FairMedFM's tutorial check of utils/lr_sched.py: blr 2.5e-4, warm-up 5, 10 epochs, min_lr 1e-5.</summary>
    [Fact]
    public void Reproduces_the_FairMedFM_tutorial_schedule()
    {
        double[] expected = { 5e-5, 1e-4, 1.5e-4, 2e-4, 2.5e-4, 2.2708e-4, 1.6708e-4, 9.2918e-5, 3.2918e-5, 1e-5 };
        var actual = Enumerable.Range(0, 10).Select(e => LrSchedule.At(e, totalEpochs: 10, warmupEpochs: 5, blr: 2.5e-4, minLr: 1e-5)).ToArray();
        for (int e = 0; e < 10; e++)
        {
            // Same to 4 significant digits, and within the 5th digit the tutorial prints.
            Assert.True(Round4(actual[e]) == Round4(expected[e]), $"epoch {e}: expected {expected[e]:G5}, got {actual[e]:G8}");
            Assert.True(Math.Abs(actual[e] - expected[e]) <= 1e-4 * expected[e], $"epoch {e}: expected {expected[e]:G5}, got {actual[e]:G8}");
        }
    }

    [Fact]
    public void Peak_is_reached_at_the_end_of_warmup_and_the_cosine_is_monotone()
    {
        var lrs = Enumerable.Range(0, 30).Select(e => LrSchedule.At(e, 30, 5, 1e-2, 1e-5)).ToArray();
        Assert.Equal(1e-2, lrs[4], 12);
        for (int e = 1; e < 5; e++) Assert.True(lrs[e] > lrs[e - 1]);
        for (int e = 5; e < 30; e++) Assert.True(lrs[e] < lrs[e - 1]);
        Assert.Equal(1e-5, lrs[^1], 12);
    }

    [Fact]
    public void Fixed_lr_keeps_blr_after_the_warmup()
    {
        var lrs = Enumerable.Range(0, 10).Select(e => LrSchedule.At(e, 10, 5, 2.5e-4, 1e-5, fixedLr: true)).ToArray();
        Assert.Equal(new[] { 5e-5, 1e-4, 1.5e-4, 2e-4 }, lrs[..4].Select(Round4));
        Assert.All(lrs[4..], lr => Assert.Equal(2.5e-4, lr, 15));
    }

    [Fact]
    public void No_warmup_starts_on_the_cosine()
    {
        // e = epoch + 1 is evaluated before each epoch, so the first epoch is already one step down the cosine.
        var first = LrSchedule.At(0, 10, 0, 1e-3, 0);
        Assert.Equal(1e-3 * 0.5 * (1 + Math.Cos(Math.PI / 10)), first, 15);
        Assert.Equal(0, LrSchedule.At(9, 10, 0, 1e-3, 0), 15);
        Assert.Equal(1e-3, LrSchedule.At(3, 10, 0, 1e-3, 0, fixedLr: true), 15);
    }
}
