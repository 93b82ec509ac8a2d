using System.Text.Json;

namespace FairMedFM.Data.Tests;

/// <summary>
/// Parity with the golden PIL 9.4 / torchvision 0.14 / OpenCV 4.6 outputs in shared/golden/preprocessing:
/// uint8 results exact, floats within case.json's tolerance.
/// </summary>
public class PreprocessingGoldenTests
{
    private static readonly Lazy<SafeTensors> Io = new(() => new SafeTensors(Path.Combine(TestPaths.GoldenPreprocessing, "io.safetensors")));

    private static readonly Lazy<Dictionary<string, string>> ImageFiles = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.GoldenPreprocessing, "case.json")));
        var d = new Dictionary<string, string>();
        foreach (var img in doc.RootElement.GetProperty("images").EnumerateArray())
        {
            var key = img.GetProperty("key").GetString()!;
            var source = img.GetProperty("source").GetString()!;
            var file = img.GetProperty("file").GetString()!;
            d[key] = source.StartsWith("shared/", StringComparison.Ordinal)
                ? Path.Combine(TestPaths.Shared, source["shared/".Length..])
                : Path.Combine(TestPaths.GoldenPreprocessing, file);
        }
        return d;
    });

    public static TheoryData<string> Keys() => new() { "img0", "img1", "img2", "img3", "img4", "img5", "img6" };

    private static int Mismatches(byte[] a, byte[] b)
    {
        Assert.Equal(a.Length, b.Length);
        int n = 0;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) n++;
        return n;
    }

    [Fact]
    public void CaseListsSevenImages()
    {
        Assert.Equal(7, ImageFiles.Value.Count);
        Assert.All(ImageFiles.Value.Values, p => Assert.True(File.Exists(p), p));
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void DecodeMatchesPilRgb(string key)
    {
        var img = ImageDecoder.DecodeRgb(ImageFiles.Value[key]);
        var shape = Io.Value.Shape($"{key}_pil_rgb_u8");
        Assert.Equal(new long[] { img.Height, img.Width, 3 }, shape);
        Assert.Equal(0, Mismatches(Io.Value.U8($"{key}_pil_rgb_u8"), img.Pixels));
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void ResizeCropMatchesTorchvisionExactly(string key)
    {
        // Start from the golden decoded pixels so this test isolates the resize + crop.
        var shape = Io.Value.Shape($"{key}_pil_rgb_u8");
        var src = new RgbImage((int)shape[1], (int)shape[0], Io.Value.U8($"{key}_pil_rgb_u8"));
        var outImg = ImagePipeline.Prepare(src, new PreprocessingSpec());
        Assert.Equal(224, outImg.Width);
        Assert.Equal(224, outImg.Height);
        Assert.Equal(0, Mismatches(Io.Value.U8($"{key}_tv_resized_cropped_u8"), outImg.Pixels));
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void FullPipelineMatchesTvOutSums(string key)
    {
        var chw = ImagePipeline.Run(ImageFiles.Value[key], new PreprocessingSpec(224, 224), MeanStdNormalization.Clip);
        Assert.Equal(3 * 224 * 224, chw.Length);
        double sum = 0;
        var chan = new double[3];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 224 * 224; i++) { sum += chw[c * 224 * 224 + i]; chan[c] += chw[c * 224 * 224 + i]; }
        double refSum = Io.Value.F64($"{key}_tv_out_sum")[0];
        Assert.True(Math.Abs(sum - refSum) <= 1e-6 * Math.Abs(refSum), $"sum {sum} vs {refSum}");
        var refMean = Io.Value.F64($"{key}_tv_out_chan_mean");
        for (int c = 0; c < 3; c++)
        {
            double m = chan[c] / (224 * 224);
            Assert.True(Math.Abs(m - refMean[c]) <= 1e-6 * Math.Max(1, Math.Abs(refMean[c])), $"chan {c}: {m} vs {refMean[c]}");
        }
    }

    [Fact]
    public void FullFloatOutputOf97x131MatchesTvOut()
    {
        var chw = ImagePipeline.Run(ImageFiles.Value["img1"], new PreprocessingSpec(), MeanStdNormalization.Clip);
        var reference = Io.Value.F32("img1_tv_out");
        Assert.Equal(new long[] { 3, 224, 224 }, Io.Value.Shape("img1_tv_out"));
        Assert.Equal(reference.Length, chw.Length);
        double maxDiff = 0;
        for (int i = 0; i < chw.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(chw[i] - reference[i]));
        Assert.True(maxDiff <= 1e-6, $"max |diff| = {maxDiff}");
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void Cv2LinearResizeMatchesExactly(string key)
    {
        var img = ImageDecoder.DecodeRgb(ImageFiles.Value[key]);
        var resized = Preprocess.ResizeBilinearCv2(img, 256, 256);
        // Golden is BGR (cv2.imread); channels are resized independently, so compare with ours reversed.
        var bgr = new byte[resized.Pixels.Length];
        for (int i = 0; i < bgr.Length; i += 3)
        {
            bgr[i] = resized.Pixels[i + 2]; bgr[i + 1] = resized.Pixels[i + 1]; bgr[i + 2] = resized.Pixels[i];
        }
        Assert.Equal(new long[] { 256, 256, 3 }, Io.Value.Shape($"{key}_cv2_resized_u8"));
        Assert.Equal(0, Mismatches(Io.Value.U8($"{key}_cv2_resized_u8"), bgr));
    }

    [Theory]
    [MemberData(nameof(Keys))]
    public void Cv2NormalizationMatchesAlbumentationsArithmetic(string key)
    {
        var img = Preprocess.ResizeBilinearCv2(ImageDecoder.DecodeRgb(ImageFiles.Value[key]), 256, 256);
        var chw = AlbumentationsNormalization.FairMedFMSegmentation.ToChw(img);
        const int n = 256 * 256;
        double sum = 0;
        var chan = new double[3];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < n; i++) { sum += chw[c * n + i]; chan[c] += chw[c * n + i]; }
        double refSum = Io.Value.F64($"{key}_cv2_norm_sum")[0];
        Assert.True(Math.Abs(sum - refSum) <= 1e-6 * Math.Abs(refSum), $"sum {sum} vs {refSum}");
        var refMean = Io.Value.F64($"{key}_cv2_norm_chan_mean"); // per BGR channel of the HWC array
        for (int c = 0; c < 3; c++)
            Assert.True(Math.Abs(chan[c] / n - refMean[c]) <= 1e-6 * Math.Max(1, Math.Abs(refMean[c])), $"chan {c}");
        if (key == "img1")
        {
            var hwc = Io.Value.F32("img1_cv2_norm_hwc");
            double maxDiff = 0;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < 3; c++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(hwc[i * 3 + c] - chw[c * n + i]));
            Assert.True(maxDiff <= 1e-6, $"max |diff| = {maxDiff}");
        }
    }

    [Fact]
    public void ShorterSideSizesFollowTorchvision()
    {
        Assert.Equal((336, 224), Preprocess.ShorterSideSize(300, 200, 224));
        Assert.Equal((224, 302), Preprocess.ShorterSideSize(97, 131, 224)); // int(224*131/97) = int(302.52)
        Assert.Equal((224, 224), Preprocess.ShorterSideSize(64, 64, 224));
    }

    [Fact]
    public void CenterCropUsesBankersRoundingAndPads()
    {
        // 5 wide, crop 2: left = round(1.5) = 2 (half to even); 7 wide: round(2.5) = 2.
        var px = new byte[5 * 1 * 3];
        for (int x = 0; x < 5; x++) px[x * 3] = (byte)x;
        var c = Preprocess.CenterCrop(new RgbImage(5, 1, px), 2, 1);
        Assert.Equal(new byte[] { 2, 0, 0, 3, 0, 0 }, c.Pixels);
        // Smaller than the crop: zero padding, left gets (crop - w) // 2.
        var one = new RgbImage(1, 1, new byte[] { 9, 9, 9 });
        var p = Preprocess.CenterCrop(one, 4, 1);
        Assert.Equal(new byte[] { 0, 0, 0, 9, 9, 9, 0, 0, 0, 0, 0, 0 }, p.Pixels);
    }
}
