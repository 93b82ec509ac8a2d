using System.Globalization;
using System.Security.Cryptography;

namespace FairMedFM.Data;

/// <summary>
/// Turns a preprocessed uint8 image into the model's float input (CHW, float32). Per-dataset (FairMedFM) or
/// per-model normalisation are both just instances of this; <see cref="Id"/> goes into cache keys.
/// </summary>
public interface INormalization
{
    /// <summary>Stable text that changes whenever the output would change.</summary>
    string Id { get; }
    float[] ToChw(RgbImage img);
}

/// <summary>
/// torchvision <c>ToTensor()</c> + <c>Normalize(mean, std)</c>: RGB, <c>x = v / 255f</c>, <c>(x − mean) / std</c>, all in float32
/// in that order (bit-identical to torch's CPU kernels).
/// </summary>
public sealed class MeanStdNormalization : INormalization
{
    private readonly float[] _mean;
    private readonly float[] _std;

    public IReadOnlyList<float> Mean => _mean;
    public IReadOnlyList<float> Std => _std;
    public string Id { get; }

    /// <summary>FairMedFM's chest X-ray statistics (CXP, MIMIC, COVID-CT-MD, ADNI).</summary>
    public static MeanStdNormalization ChestXray { get; } = new(new[] { 0.5056f, 0.5056f, 0.5056f }, new[] { 0.252f, 0.252f, 0.252f });
    /// <summary>OpenAI CLIP statistics (FairMedFM's default for the other datasets).</summary>
    public static MeanStdNormalization Clip { get; } = new(new[] { 0.48145466f, 0.4578275f, 0.40821073f }, new[] { 0.26862954f, 0.26130258f, 0.27577711f });
    public static MeanStdNormalization ImageNet { get; } = new(new[] { 0.485f, 0.456f, 0.406f }, new[] { 0.229f, 0.224f, 0.225f });

    public MeanStdNormalization(float[] mean, float[] std)
    {
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("mean and std need 3 values (R,G,B)");
        if (std.Any(s => !(s > 0) || !float.IsFinite(s)) || mean.Any(m => !float.IsFinite(m)))
            throw new ArgumentException("std must be positive and finite; mean finite");
        _mean = (float[])mean.Clone();
        _std = (float[])std.Clone();
        static string F(float v) => v.ToString("R", CultureInfo.InvariantCulture);
        Id = $"meanstd:rgb:{string.Join(",", _mean.Select(F))}/{string.Join(",", _std.Select(F))}";
    }

    public float[] ToChw(RgbImage img)
    {
        int n = img.Width * img.Height;
        var outp = new float[3 * n];
        var px = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            float m = _mean[c], s = _std[c];
            int o = c * n;
            for (int i = 0; i < n; i++)
                outp[o + i] = (px[i * 3 + c] / 255f - m) / s;
        }
        return outp;
    }
}

/// <summary>
/// CNTK/ML.NET ResNet style: BGR channel order, raw 0..255 values minus a per-pixel mean image given as [3, H, W]
/// in BGR order. No scaling by a std. The image must already have the mean image's size.
/// </summary>
public sealed class MeanImageNormalization : INormalization
{
    private readonly float[] _meanBgrChw;
    public int Width { get; }
    public int Height { get; }
    public string Id { get; }

    public MeanImageNormalization(float[] meanBgrChw, int width, int height)
    {
        if (width <= 0 || height <= 0 || meanBgrChw.Length != 3 * width * height)
            throw new ArgumentException($"mean image must have 3*{height}*{width} values, got {meanBgrChw.Length}");
        _meanBgrChw = (float[])meanBgrChw.Clone();
        Width = width;
        Height = height;
        var bytes = new byte[_meanBgrChw.Length * 4];
        Buffer.BlockCopy(_meanBgrChw, 0, bytes, 0, bytes.Length); // little-endian float32, as the hash input
        Id = $"meanimage:bgr:{height}x{width}:{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}";
    }

    public float[] ToChw(RgbImage img)
    {
        if (img.Width != Width || img.Height != Height)
            throw new ArgumentException($"image is {img.Width}x{img.Height} but the mean image is {Width}x{Height}");
        int n = Width * Height;
        var outp = new float[3 * n];
        var px = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            int src = 2 - c; // BGR plane c comes from RGB channel 2 - c
            int o = c * n;
            for (int i = 0; i < n; i++)
                outp[o + i] = px[i * 3 + src] - _meanBgrChw[o + i];
        }
        return outp;
    }
}

/// <summary>
/// albumentations <c>Normalize(mean, std, max_pixel_value=255)</c> arithmetic, as FairMedFM's segmentation data
/// path uses it: <c>(float32(v) − float32(mean)·255) · float32(1 / (float32(std)·255))</c>. With
/// <c>bgr: true</c> (the FairMedFM default) the input is taken in OpenCV's BGR order and the RGB-ordered statistics
/// are applied to it unchanged (B gets the R mean: FairMedFM's quirk, kept on purpose). Output CHW in that order.
/// </summary>
public sealed class AlbumentationsNormalization : INormalization
{
    private readonly float[] _mean255;
    private readonly float[] _inv;
    public bool Bgr { get; }
    public string Id { get; }

    /// <summary>FairMedFM segmentation (cv2.imread BGR + ImageNet statistics in RGB order).</summary>
    public static AlbumentationsNormalization FairMedFMSegmentation { get; } =
        new(new[] { 0.485f, 0.456f, 0.406f }, new[] { 0.229f, 0.224f, 0.225f }, bgr: true);

    public AlbumentationsNormalization(float[] mean, float[] std, bool bgr = true)
    {
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("mean and std need 3 values");
        _mean255 = mean.Select(m => m * 255f).ToArray();
        _inv = std.Select(s => 1f / (s * 255f)).ToArray();
        Bgr = bgr;
        static string F(float v) => v.ToString("R", CultureInfo.InvariantCulture);
        Id = $"albu:{(bgr ? "bgr" : "rgb")}:{string.Join(",", mean.Select(F))}/{string.Join(",", std.Select(F))}";
    }

    public float[] ToChw(RgbImage img)
    {
        int n = img.Width * img.Height;
        var outp = new float[3 * n];
        var px = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            int src = Bgr ? 2 - c : c;
            float m = _mean255[c], inv = _inv[c];
            int o = c * n;
            for (int i = 0; i < n; i++)
                outp[o + i] = (px[i * 3 + src] - m) * inv;
        }
        return outp;
    }
}

/// <summary>FairMedFM's classification test transform: Resize(shorter side, bicubic) then CenterCrop.</summary>
public sealed record PreprocessingSpec(int ResizeShorter = 224, int Crop = 224)
{
    /// <summary>Stable id for cache keys, e.g. <c>pil-bicubic-shorter224+centercrop224</c>.</summary>
    public string Id => $"pil-bicubic-shorter{ResizeShorter}+centercrop{Crop}";
}

public static class ImagePipeline
{
    /// <summary>Decode → Resize(shorter, bicubic) → CenterCrop → normalise; returns CHW float32 of length 3·Crop·Crop.</summary>
    public static float[] Run(string path, PreprocessingSpec spec, INormalization norm) =>
        norm.ToChw(Prepare(ImageDecoder.DecodeRgb(path), spec));

    public static float[] Run(RgbImage img, PreprocessingSpec spec, INormalization norm) => norm.ToChw(Prepare(img, spec));

    /// <summary>The uint8 image after resize and crop (what the golden <c>tv_resized_cropped_u8</c> holds).</summary>
    public static RgbImage Prepare(RgbImage img, PreprocessingSpec spec) =>
        Preprocess.CenterCrop(Preprocess.ResizeShorterSideBicubic(img, spec.ResizeShorter), spec.Crop);
}
