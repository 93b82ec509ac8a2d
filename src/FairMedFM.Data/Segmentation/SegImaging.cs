using SkiaSharp;

namespace FairMedFM.Data.Segmentation;

/// <summary>Integer label map, row-major: the label of pixel (x = column, y = row) is <c>Values[y * Width + x]</c>.</summary>
public sealed class LabelMap
{
    public int Width { get; }
    public int Height { get; }
    public int[] Values { get; }

    public LabelMap(int width, int height, int[] values)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"label map size must be positive, got {width}x{height}");
        if (values.Length != checked(width * height)) throw new ArgumentException($"expected {width * height} labels for {width}x{height}, got {values.Length}");
        Width = width;
        Height = height;
        Values = values;
    }

    public int this[int x, int y] => Values[y * Width + x];

    /// <summary>Binary mask of one class: 1 where the label equals <paramref name="labelValue"/> (FairMedFM's <c>label == pos_class</c>).</summary>
    public byte[] MaskOf(int labelValue)
    {
        var m = new byte[Values.Length];
        for (int i = 0; i < m.Length; i++) m[i] = Values[i] == labelValue ? (byte)1 : (byte)0;
        return m;
    }

    public bool Contains(int labelValue) => Array.IndexOf(Values, labelValue) >= 0;
}

/// <summary>
/// 2-D image and mask I/O and the resizes of FairMedFM's segmentation path. Masks are integer label maps and are
/// never interpolated: only nearest-neighbour resizing (OpenCV <c>INTER_NEAREST</c>, what albumentations' Resize
/// applies to masks) touches them.
/// </summary>
public static class SegImaging
{
    /// <summary>
    /// Decodes a label image (PNG, or any format SkiaSharp reads) into integer labels. The file must be single-channel
    /// in effect: grey, or colour/palette with R = G = B at every pixel (alpha is ignored, as
    /// <c>cv2.imread(IMREAD_GRAYSCALE)</c> ignores it). A pixel with differing channels is an error (a colour-coded
    /// mask has no single integer label), and so is a 16-bit PNG (the decoder would keep only the high byte; store
    /// such labels as NIfTI).
    /// </summary>
    public static LabelMap DecodeLabelMap(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new DataException("label file not found", full);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read label file: {e.Message}", full, inner: e); }
        return DecodeLabelMap(bytes, full);
    }

    public static LabelMap DecodeLabelMap(byte[] encoded, string nameForErrors = "<memory>")
    {
        // PNG signature + IHDR: bit depth at byte 24.
        if (encoded.Length > 25 && encoded[0] == 0x89 && encoded[1] == (byte)'P' && encoded[2] == (byte)'N' && encoded[3] == (byte)'G'
            && encoded[12] == (byte)'I' && encoded[13] == (byte)'H' && encoded[14] == (byte)'D' && encoded[15] == (byte)'R'
            && encoded[24] == 16)
            throw new DataException("16-bit PNG label maps are not supported (only 8-bit labels 0..255 decode exactly); store such labels as NIfTI", nameForErrors);
        var rgb = ImageDecoder.DecodeRgb(encoded, nameForErrors);
        int n = rgb.Width * rgb.Height;
        var values = new int[n];
        var px = rgb.Pixels;
        for (int i = 0; i < n; i++)
        {
            byte r = px[i * 3], g = px[i * 3 + 1], b = px[i * 3 + 2];
            if (r != g || g != b)
                throw new DataException(
                    $"label map pixel (x={i % rgb.Width}, y={i / rgb.Width}) has colour ({r},{g},{b}); a label map must be single-channel (grey) with one integer label per pixel",
                    nameForErrors);
            values[i] = r;
        }
        return new LabelMap(rgb.Width, rgb.Height, values);
    }

    /// <summary>Writes an 8-bit grey PNG (labels must be 0..255).</summary>
    public static void WriteLabelPng(string path, LabelMap map)
    {
        var g = new byte[map.Values.Length];
        for (int i = 0; i < g.Length; i++)
        {
            int v = map.Values[i];
            if (v < 0 || v > 255) throw new ArgumentException($"label {v} at pixel {i} does not fit an 8-bit PNG");
            g[i] = (byte)v;
        }
        WriteGrayPng(path, map.Width, map.Height, g);
    }

    /// <summary>Writes an 8-bit grey PNG (one byte per pixel, row-major).</summary>
    public static void WriteGrayPng(string path, int width, int height, byte[] gray)
    {
        if (gray.Length != width * height) throw new ArgumentException("pixel count");
        var info = new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        using var bmp = new SKBitmap(info);
        var dstPtr = bmp.GetPixels();
        for (int y = 0; y < height; y++)
            System.Runtime.InteropServices.Marshal.Copy(gray, y * width, dstPtr + y * bmp.RowBytes, width);
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100)
                         ?? throw new InvalidOperationException($"SkiaSharp could not encode '{path}' as PNG");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        using var fs = File.Create(path);
        data.SaveTo(fs);
    }

    /// <summary>Grey bytes → RGB with three equal channels (what <c>repeat(image, "w h -> w h c", c=3)</c> and imread give).</summary>
    public static RgbImage GrayToRgb(int width, int height, byte[] gray)
    {
        var px = new byte[gray.Length * 3];
        for (int i = 0; i < gray.Length; i++) px[i * 3] = px[i * 3 + 1] = px[i * 3 + 2] = gray[i];
        return new RgbImage(width, height, px);
    }

    /// <summary>
    /// OpenCV 4.x <c>INTER_NEAREST</c> source index: <c>min(floor(d · (1 / (dst/src))), src − 1)</c>, with the scale
    /// computed as OpenCV does (<c>ifx = 1 / inv_scale_x</c>, <c>inv_scale_x = dst / src</c>, both doubles). Note: this
    /// is not pixel-centre aligned (OpenCV's <c>INTER_NEAREST_EXACT</c> would be); it is what albumentations uses.
    /// </summary>
    public static int[] NearestIndices(int src, int dst)
    {
        if (src <= 0 || dst <= 0) throw new ArgumentOutOfRangeException(nameof(dst), "sizes must be positive");
        double inv = (double)dst / src;
        double ifx = 1.0 / inv;
        var idx = new int[dst];
        for (int d = 0; d < dst; d++) idx[d] = Math.Min((int)Math.Floor(d * ifx), src - 1);
        return idx;
    }

    /// <summary>Nearest-neighbour resize of a label map (OpenCV <c>INTER_NEAREST</c>); labels are copied, never blended.</summary>
    public static LabelMap ResizeNearest(LabelMap map, int width, int height)
    {
        if (map.Width == width && map.Height == height) return new LabelMap(width, height, (int[])map.Values.Clone());
        var xs = NearestIndices(map.Width, width);
        var ys = NearestIndices(map.Height, height);
        var v = new int[width * height];
        for (int y = 0; y < height; y++)
        {
            int srow = ys[y] * map.Width;
            for (int x = 0; x < width; x++) v[y * width + x] = map.Values[srow + xs[x]];
        }
        return new LabelMap(width, height, v);
    }

    /// <summary>Nearest-neighbour resize of an RGB image (OpenCV <c>INTER_NEAREST</c>), as FairMedFM's 3-D pre-processing resized slices.</summary>
    public static RgbImage ResizeNearest(RgbImage img, int width, int height)
    {
        if (img.Width == width && img.Height == height) return new RgbImage(width, height, (byte[])img.Pixels.Clone());
        var xs = NearestIndices(img.Width, width);
        var ys = NearestIndices(img.Height, height);
        var dst = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int s = (ys[y] * img.Width + xs[x]) * 3, d = (y * width + x) * 3;
                dst[d] = img.Pixels[s]; dst[d + 1] = img.Pixels[s + 1]; dst[d + 2] = img.Pixels[s + 2];
            }
        return new RgbImage(width, height, dst);
    }

    /// <summary>
    /// <c>cv2.resize(img, (width, height), interpolation=INTER_LINEAR)</c> for 8-bit 3-channel images, as albumentations'
    /// <c>Resize</c> applies it to the image: <see cref="Preprocess.ResizeBilinearCv2"/> (11-bit fixed point), plus
    /// OpenCV's switch to the fast <c>INTER_AREA</c> path for an exact 2× downscale in both directions, where each output
    /// pixel is the rounded mean of a 2×2 block, <c>(a + b + c + d + 2) &gt;&gt; 2</c>.
    /// </summary>
    public static RgbImage ResizeLinearCv2(RgbImage img, int width, int height)
    {
        if (img.Width == width * 2 && img.Height == height * 2)
        {
            var dst = new byte[width * height * 3];
            int sw = img.Width;
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int s0 = ((2 * y) * sw + 2 * x) * 3 + c, s1 = ((2 * y + 1) * sw + 2 * x) * 3 + c;
                        int sum = img.Pixels[s0] + img.Pixels[s0 + 3] + img.Pixels[s1] + img.Pixels[s1 + 3];
                        dst[(y * width + x) * 3 + c] = (byte)((sum + 2) >> 2);
                    }
            return new RgbImage(width, height, dst);
        }
        return Preprocess.ResizeBilinearCv2(img, width, height);
    }
}
