namespace FairMedFM.Data.Tests;

public class NormalizationTests
{
    private static RgbImage TwoPixels() => new(2, 1, new byte[] { 255, 128, 0, 10, 20, 30 });

    [Fact]
    public void MeanStdIsTorchvisionArithmeticInChwRgb()
    {
        var n = new MeanStdNormalization(new[] { 0.5f, 0.25f, 0f }, new[] { 0.5f, 0.25f, 1f });
        var chw = n.ToChw(TwoPixels());
        Assert.Equal(new[]
        {
            (255 / 255f - 0.5f) / 0.5f, (10 / 255f - 0.5f) / 0.5f,       // R plane
            (128 / 255f - 0.25f) / 0.25f, (20 / 255f - 0.25f) / 0.25f,   // G plane
            0f, 30 / 255f,                                               // B plane
        }, chw);
        Assert.Equal("meanstd:rgb:0.5,0.25,0/0.5,0.25,1", n.Id);
        // Ids print the float32 values (shortest round-trip form), so 0.48145466 shows as its float, 0.48145467.
        Assert.StartsWith("meanstd:rgb:0.48145467,0.4578275,", MeanStdNormalization.Clip.Id);
    }

    [Fact]
    public void MeanImageIsBgrMinusPerPixelMean()
    {
        // Mean image [3,1,2] in BGR order.
        var mean = new float[] { 1, 2, /*G*/ 3, 4, /*R*/ 5, 6 };
        var n = new MeanImageNormalization(mean, 2, 1);
        var chw = n.ToChw(TwoPixels());
        Assert.Equal(new float[] { 0 - 1, 30 - 2, 128 - 3, 20 - 4, 255 - 5, 10 - 6 }, chw);
        Assert.StartsWith("meanimage:bgr:1x2:", n.Id);
        Assert.Equal(n.Id, new MeanImageNormalization(mean, 2, 1).Id);
        Assert.NotEqual(n.Id, new MeanImageNormalization(new float[] { 1, 2, 3, 4, 5, 7 }, 2, 1).Id);
        Assert.Throws<ArgumentException>(() => n.ToChw(new RgbImage(1, 2)));
    }

    [Fact]
    public void AlbumentationsKeepsFairMedFMsBgrQuirk()
    {
        var n = new AlbumentationsNormalization(new[] { 0.5f, 0f, 0f }, new[] { 1f, 1f, 1f });
        var chw = n.ToChw(TwoPixels());
        // Channel 0 is B (0 and 30) but gets the first (R) mean: 0.5*255.
        Assert.Equal((0 - 127.5f) * (1f / 255f), chw[0]);
        Assert.Equal((30 - 127.5f) * (1f / 255f), chw[1]);
        Assert.Equal(255 * (1f / 255f), chw[4]);
    }

    [Fact]
    public void PipelineIdAndShape()
    {
        Assert.Equal("pil-bicubic-shorter224+centercrop224", new PreprocessingSpec().Id);
        Assert.Equal("pil-bicubic-shorter256+centercrop224", new PreprocessingSpec(256, 224).Id);
        var path = Path.Combine(TestPaths.NihDir, "images", "00000001_000.png");
        var chw = ImagePipeline.Run(path, new PreprocessingSpec(256, 224), MeanStdNormalization.ChestXray);
        Assert.Equal(3 * 224 * 224, chw.Length);
        // Grey input: the three planes are identical.
        Assert.Equal(chw[..(224 * 224)], chw[(224 * 224)..(2 * 224 * 224)]);
        Assert.Equal(chw[..(224 * 224)], chw[(2 * 224 * 224)..]);
    }

    [Fact]
    public void BicubicDownscaleAndIdentityBehave()
    {
        // Constant image stays constant under the normalised filter, whatever the scale.
        var flat = new RgbImage(50, 30, Enumerable.Repeat((byte)77, 50 * 30 * 3).ToArray());
        Assert.All(Preprocess.ResizeBicubic(flat, 17, 11).Pixels, b => Assert.Equal(77, b));
        Assert.All(Preprocess.ResizeBicubic(flat, 123, 71).Pixels, b => Assert.Equal(77, b));
        var same = Preprocess.ResizeBicubic(flat, 50, 30);
        Assert.Equal(flat.Pixels, same.Pixels);
        Assert.NotSame(flat.Pixels, same.Pixels);
    }
}
