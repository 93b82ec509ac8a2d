namespace FairMedFM.Data;

/// <summary>
/// Bit-exact re-implementations of the uint8 image operations FairMedFM uses:
/// torchvision 0.14 <c>Resize(size, BICUBIC)</c> on PIL images (Pillow 9.x <c>Image.resize</c>, separable convolution
/// with 22-bit fixed-point coefficients, filter support widened by the scale when downscaling = antialias),
/// torchvision <c>CenterCrop</c>, and OpenCV 4.x <c>cv2.resize(INTER_LINEAR)</c> for 8-bit images (11-bit
/// fixed-point coefficients, SIMD vertical pass arithmetic).
/// </summary>
public static class Preprocess
{
    /// <summary>
    /// torchvision <c>Resize(size)</c> with an int size: the shorter side becomes <paramref name="size"/>, the longer
    /// <c>int(size * long / short)</c> (truncated, as torchvision's <c>_compute_resized_output_size</c>), then PIL bicubic.
    /// </summary>
    public static RgbImage ResizeShorterSideBicubic(RgbImage img, int size)
    {
        var (w, h) = ShorterSideSize(img.Width, img.Height, size);
        return ResizeBicubic(img, w, h);
    }

    /// <summary>Output (width, height) of torchvision's <c>Resize(size)</c> for an int size.</summary>
    public static (int Width, int Height) ShorterSideSize(int width, int height, int size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        bool wShort = width <= height;
        int shortSide = wShort ? width : height, longSide = wShort ? height : width;
        // Python: int(requested_new_short * long / short): true division in double, then truncation.
        int newLong = (int)((double)size * longSide / shortSide);
        return wShort ? (size, newLong) : (newLong, size);
    }

    // ---------------------------------------------------------------- PIL bicubic (Pillow Resample.c, 8 bpc)

    private const int PrecisionBits = 32 - 8 - 2;

    private static double BicubicFilter(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Per output pixel: first input index, tap count and 22-bit fixed-point weights (ksize per pixel).</summary>
    private static (int[] Bounds, int[] Weights, int KSize) PrecomputeCoeffs(int inSize, int outSize)
    {
        const double support0 = 2.0; // bicubic
        double scale = (double)inSize / outSize;
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = support0 * filterscale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var kk = new double[outSize * ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int)(center - support + 0.5); // C cast: truncation toward zero
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            int k0 = xx * ksize;
            for (int x = 0; x < xmax; x++)
            {
                double w = BicubicFilter((x + xmin - center + 0.5) * ss);
                kk[k0 + x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
                if (ww != 0.0) kk[k0 + x] /= ww;
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        var weights = new int[kk.Length];
        for (int i = 0; i < kk.Length; i++)
            weights[i] = kk[i] < 0
                ? (int)(-0.5 + kk[i] * (1 << PrecisionBits))
                : (int)(0.5 + kk[i] * (1 << PrecisionBits));
        return (bounds, weights, ksize);
    }

    private static byte Clip8(int v)
    {
        int s = v >> PrecisionBits; // arithmetic shift, as Pillow's lookup-table clip
        return s < 0 ? (byte)0 : s > 255 ? (byte)255 : (byte)s;
    }

    /// <summary>
    /// PIL <c>Image.resize((width, height), Image.BICUBIC)</c> for an RGB image: horizontal pass first (only over
    /// the rows the vertical pass needs), 8-bit intermediate, then vertical pass.
    /// </summary>
    public static RgbImage ResizeBicubic(RgbImage img, int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), "output size must be positive");
        if (width == img.Width && height == img.Height) return new RgbImage(width, height, (byte[])img.Pixels.Clone());

        bool needH = width != img.Width;
        bool needV = height != img.Height;
        var (bh, kh, ksh) = PrecomputeCoeffs(img.Width, width);
        var (bv, kv, ksv) = PrecomputeCoeffs(img.Height, height);
        int yFirst = bv[0];
        int yLast = bv[height * 2 - 2] + bv[height * 2 - 1];

        byte[] src = img.Pixels;
        int srcW = img.Width, srcH = img.Height;
        if (needH)
        {
            for (int i = 0; i < height; i++) bv[i * 2] -= yFirst;
            int rows = yLast - yFirst;
            var tmp = new byte[width * rows * 3];
            const int half = 1 << (PrecisionBits - 1);
            for (int yy = 0; yy < rows; yy++)
            {
                int rowOff = (yy + yFirst) * srcW * 3;
                for (int xx = 0; xx < width; xx++)
                {
                    int xmin = bh[xx * 2], xmax = bh[xx * 2 + 1], k0 = xx * ksh;
                    int s0 = half, s1 = half, s2 = half;
                    for (int x = 0; x < xmax; x++)
                    {
                        int p = rowOff + (x + xmin) * 3, k = kh[k0 + x];
                        s0 += src[p] * k; s1 += src[p + 1] * k; s2 += src[p + 2] * k;
                    }
                    int o = (yy * width + xx) * 3;
                    tmp[o] = Clip8(s0); tmp[o + 1] = Clip8(s1); tmp[o + 2] = Clip8(s2);
                }
            }
            src = tmp;
            srcW = width;
            srcH = rows;
        }
        if (!needV) return new RgbImage(srcW, srcH, src);

        var dst = new byte[srcW * height * 3];
        {
            const int half = 1 << (PrecisionBits - 1);
            for (int yy = 0; yy < height; yy++)
            {
                int ymin = bv[yy * 2], ymax = bv[yy * 2 + 1], k0 = yy * ksv;
                for (int xx = 0; xx < srcW; xx++)
                {
                    int s0 = half, s1 = half, s2 = half;
                    for (int y = 0; y < ymax; y++)
                    {
                        int p = ((y + ymin) * srcW + xx) * 3, k = kv[k0 + y];
                        s0 += src[p] * k; s1 += src[p + 1] * k; s2 += src[p + 2] * k;
                    }
                    int o = (yy * srcW + xx) * 3;
                    dst[o] = Clip8(s0); dst[o + 1] = Clip8(s1); dst[o + 2] = Clip8(s2);
                }
            }
        }
        _ = srcH;
        return new RgbImage(srcW, height, dst);
    }

    // ---------------------------------------------------------------- torchvision CenterCrop

    /// <summary>
    /// torchvision 0.14 <c>CenterCrop(size)</c>: zero-pads first if the image is smaller (left/top get
    /// <c>(crop − size) // 2</c>), then crops at <c>round((H − size) / 2)</c>, <c>round((W − size) / 2)</c> with
    /// Python's round-half-to-even.
    /// </summary>
    public static RgbImage CenterCrop(RgbImage img, int size) => CenterCrop(img, size, size);

    public static RgbImage CenterCrop(RgbImage img, int cropWidth, int cropHeight)
    {
        if (cropWidth <= 0 || cropHeight <= 0) throw new ArgumentOutOfRangeException(nameof(cropWidth));
        if (cropWidth > img.Width || cropHeight > img.Height)
        {
            int padL = cropWidth > img.Width ? (cropWidth - img.Width) / 2 : 0;
            int padT = cropHeight > img.Height ? (cropHeight - img.Height) / 2 : 0;
            int padR = cropWidth > img.Width ? (cropWidth - img.Width + 1) / 2 : 0;
            int padB = cropHeight > img.Height ? (cropHeight - img.Height + 1) / 2 : 0;
            img = Pad(img, padL, padT, padR, padB);
            if (img.Width == cropWidth && img.Height == cropHeight) return img;
        }
        int top = (int)Math.Round((img.Height - cropHeight) / 2.0, MidpointRounding.ToEven);
        int left = (int)Math.Round((img.Width - cropWidth) / 2.0, MidpointRounding.ToEven);
        return Crop(img, left, top, cropWidth, cropHeight);
    }

    /// <summary>Crop a rectangle that lies inside the image.</summary>
    public static RgbImage Crop(RgbImage img, int left, int top, int width, int height)
    {
        if (left < 0 || top < 0 || left + width > img.Width || top + height > img.Height)
            throw new ArgumentOutOfRangeException(nameof(left), "crop rectangle outside the image");
        var dst = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            Buffer.BlockCopy(img.Pixels, ((top + y) * img.Width + left) * 3, dst, y * width * 3, width * 3);
        return new RgbImage(width, height, dst);
    }

    private static RgbImage Pad(RgbImage img, int l, int t, int r, int b)
    {
        int w = img.Width + l + r, h = img.Height + t + b;
        var dst = new byte[w * h * 3];
        for (int y = 0; y < img.Height; y++)
            Buffer.BlockCopy(img.Pixels, y * img.Width * 3, dst, ((y + t) * w + l) * 3, img.Width * 3);
        return new RgbImage(w, h, dst);
    }

    // ---------------------------------------------------------------- OpenCV INTER_LINEAR (8-bit)

    private const int ResizeCoefBits = 11;
    private const int ResizeCoefScale = 1 << ResizeCoefBits;

    /// <summary>
    /// <c>cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)</c> for 8-bit, 3-channel images
    /// (channel order is irrelevant: channels are independent). Not used for the 2×-downscale special case where
    /// OpenCV switches to INTER_AREA (throws instead).
    /// </summary>
    public static RgbImage ResizeBilinearCv2(RgbImage img, int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), "output size must be positive");
        int sw = img.Width, sh = img.Height;
        if (sw == width && sh == height) return new RgbImage(width, height, (byte[])img.Pixels.Clone());
        // OpenCV replaces INTER_LINEAR by INTER_AREA for an exact 2x downscale in both directions.
        if (sw == width * 2 && sh == height * 2)
            throw new NotSupportedException("exact 2x downscale uses OpenCV's INTER_AREA path, which is not implemented");

        double invScaleX = (double)width / sw, invScaleY = (double)height / sh;
        double scaleX = 1.0 / invScaleX, scaleY = 1.0 / invScaleY;

        var xofs = new int[width];
        var alpha = new short[width * 2];
        for (int dx = 0; dx < width; dx++)
        {
            float fx = (float)((dx + 0.5) * scaleX - 0.5);
            int sx = (int)MathF.Floor(fx);
            fx -= sx;
            if (sx < 0) { fx = 0; sx = 0; }
            if (sx >= sw - 1) { fx = 0; sx = sw - 1; }
            xofs[dx] = sx;
            alpha[dx * 2] = SaturateShort((1f - fx) * ResizeCoefScale);
            alpha[dx * 2 + 1] = SaturateShort(fx * ResizeCoefScale);
        }
        var yofs = new int[height];
        var beta = new short[height * 2];
        for (int dy = 0; dy < height; dy++)
        {
            float fy = (float)((dy + 0.5) * scaleY - 0.5);
            int sy = (int)MathF.Floor(fy);
            fy -= sy;
            yofs[dy] = sy; // not clamped for y: the row fetch clamps instead
            beta[dy * 2] = SaturateShort((1f - fy) * ResizeCoefScale);
            beta[dy * 2 + 1] = SaturateShort(fy * ResizeCoefScale);
        }

        // Horizontal pass of every source row into 32-bit sums (coefficient scale 2048).
        int rowLen = width * 3;
        var hrows = new int[sh][];
        int[] HRow(int y)
        {
            if (hrows[y] is { } r) return r;
            r = new int[rowLen];
            int off = y * sw * 3;
            for (int dx = 0; dx < width; dx++)
            {
                int sx = xofs[dx];
                int a0 = alpha[dx * 2], a1 = alpha[dx * 2 + 1];
                int sx1 = sx + 1 < sw ? sx + 1 : sx; // a1 == 0 there
                for (int c = 0; c < 3; c++)
                    r[dx * 3 + c] = img.Pixels[off + sx * 3 + c] * a0 + img.Pixels[off + sx1 * 3 + c] * a1;
            }
            return hrows[y] = r;
        }

        var dst = new byte[width * height * 3];
        for (int dy = 0; dy < height; dy++)
        {
            int sy = yofs[dy];
            var s0 = HRow(Math.Clamp(sy, 0, sh - 1));
            var s1 = HRow(Math.Clamp(sy + 1, 0, sh - 1));
            short b0 = beta[dy * 2], b1 = beta[dy * 2 + 1];
            int o = dy * rowLen;
            // OpenCV's loop structure with 128-bit vectors: 16 outputs at a time, then 8 at a time while more
            // than 8 remain, then the scalar tail (which rounds differently).
            int x = 0;
            for (; x <= rowLen - 16; x += 16)
                for (int i = x; i < x + 16; i++) dst[o + i] = VResizeSimd(s0[i], s1[i], b0, b1);
            for (; x < rowLen - 8; x += 8)
                for (int i = x; i < x + 8; i++) dst[o + i] = VResizeSimd(s0[i], s1[i], b0, b1);
            for (; x < rowLen; x++)
                dst[o + x] = VResizeScalar(s0[x], s1[x], b0, b1);
        }
        return new RgbImage(width, height, dst);
    }

    /// <summary>cv::saturate_cast&lt;short&gt;(float): round half to even (cvRound), then clamp.</summary>
    private static short SaturateShort(float v)
    {
        int r = (int)MathF.Round(v, MidpointRounding.ToEven);
        return (short)Math.Clamp(r, short.MinValue, short.MaxValue);
    }

    /// <summary>
    /// OpenCV's SIMD vertical pass (<c>VResizeLinearVec_32s8u</c>), used for every element when the row length is
    /// a multiple of the vector width: 16-bit <c>(S &gt;&gt; 4)</c>, high half of the 16×16 products, then a rounding
    /// shift by 2. It differs by one from the scalar <c>(S0·b0 + S1·b1 + 2^21) &gt;&gt; 22</c> on some pixels.
    /// (x86-64 builds without IPP, as Debian's OpenCV 4.6; the golden tests pin this.)
    /// </summary>
    private static byte VResizeSimd(int s0, int s1, short b0, short b1)
    {
        short v0 = SatS16(s0 >> 4), v1 = SatS16(s1 >> 4);
        int m0 = (v0 * b0) >> 16, m1 = (v1 * b1) >> 16;
        int sum = SatS16(m0 + m1);
        int r = (sum + 2) >> 2;
        return r < 0 ? (byte)0 : r > 255 ? (byte)255 : (byte)r;
    }

    private static short SatS16(int v) => (short)Math.Clamp(v, short.MinValue, short.MaxValue);

    /// <summary>Scalar OpenCV vertical pass (<c>FixedPtCast&lt;int, uchar, 22&gt;</c>), used for the row tail.</summary>
    internal static byte VResizeScalar(int s0, int s1, short b0, short b1)
    {
        int r = (s0 * b0 + s1 * b1 + (1 << (ResizeCoefBits * 2 - 1))) >> (ResizeCoefBits * 2);
        return r < 0 ? (byte)0 : r > 255 ? (byte)255 : (byte)r;
    }
}
