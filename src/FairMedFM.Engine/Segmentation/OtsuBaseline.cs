using FairMedFM.Data;
using FairMedFM.Data.Segmentation;

namespace FairMedFM.Engine.Segmentation;

/// <summary>
/// A weight-free, deterministic promptable segmenter: Otsu's intensity threshold, steered by the same prompts as SAM.
/// It gives every segmentation grid a floor to compare foundation models with, and — since it sees only intensities —
/// a model whose errors follow image contrast by construction, which is how the tests show that a planted contrast gap
/// between groups comes out of the group metrics with the right sign. Model id <c>otsu-threshold</c>; it works on the
/// image at its native size (no resize, no embeddings, no cache).
/// <list type="bullet">
/// <item><c>seg-bbox</c>: Otsu's threshold over the grey values inside the box; the predicted mask is the box's pixels on the
/// same side of the threshold as the 3×3 mean around the box centre (so a bright or a dark target both work); outside the box
/// nothing. A box of one intensity is predicted whole.</item>
/// <item>point prompts (<c>seg-center</c>, <c>seg-rand</c>, <c>seg-rands</c>): Otsu's threshold over the whole image; the
/// predicted mask is every 8-connected region on the first point's side of the threshold that contains a prompt point.
/// Without a box it cannot separate a target from a surrounding organ of similar intensity: a weak baseline, honestly so.</item>
/// </list>
/// Grey value = the mean of the three channels (exact for grey images and slices). Otsu: the threshold t maximising the
/// between-class variance of {v ≤ t} and {v &gt; t} over a 256-bin histogram, the first t on ties.
/// </summary>
public static class OtsuBaseline
{
    public const string Id = "otsu-threshold";
    /// <summary>Stands for the weights hash in results and cache keys (there are no weights); bump when the rule changes.</summary>
    public const string WeightsId = "baseline:otsu-threshold:v1";
    public const string Description = "intensity baseline: Otsu's threshold inside the box prompt (whole image + connected region for point prompts); no weights";

    /// <summary>Grey values 0..255 of an image (channel mean, rounded half to even).</summary>
    public static byte[] Gray(RgbImage img)
    {
        var px = img.Pixels;
        var g = new byte[img.Width * img.Height];
        for (int i = 0; i < g.Length; i++)
            g[i] = (byte)Math.Round((px[3 * i] + px[3 * i + 1] + px[3 * i + 2]) / 3.0, MidpointRounding.ToEven);
        return g;
    }

    /// <summary>Otsu's threshold of a histogram; null when it has fewer than two distinct values.</summary>
    public static int? Threshold(ReadOnlySpan<long> hist)
    {
        if (hist.Length != 256) throw new ArgumentException("a 256-bin histogram is needed");
        long total = 0; double sumAll = 0; int distinct = 0;
        for (int v = 0; v < 256; v++) { total += hist[v]; sumAll += (double)v * hist[v]; if (hist[v] > 0) distinct++; }
        if (distinct < 2) return null;
        long w0 = 0; double sum0 = 0, best = -1; int bestT = 0;
        for (int t = 0; t < 255; t++)
        {
            w0 += hist[t]; sum0 += (double)t * hist[t];
            long w1 = total - w0;
            if (w0 == 0 || w1 == 0) continue;
            double m0 = sum0 / w0, m1 = (sumAll - sum0) / w1;
            double between = (double)w0 * w1 * (m0 - m1) * (m0 - m1);
            if (between > best) { best = between; bestT = t; }
        }
        return bestT;
    }

    /// <summary>The predicted mask (row-major, width × height of the image) for one prompt.</summary>
    public static bool[] Segment(RgbImage image, PromptKind kind, MaskPrompts prompts)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Width != image.Width || prompts.Height != image.Height)
            throw new ArgumentException($"prompts are in a {prompts.Width}×{prompts.Height} frame but the image is {image.Width}×{image.Height}");
        int w = image.Width, h = image.Height;
        var g = Gray(image);
        var mask = new bool[w * h];
        if (kind == PromptKind.Box)
        {
            var b = prompts.Box;
            var hist = new long[256];
            for (int y = b.Y0; y <= b.Y1; y++) for (int x = b.X0; x <= b.X1; x++) hist[g[y * w + x]]++;
            var t = Threshold(hist);
            bool above = t is null || LocalMean(g, w, h, (b.X0 + b.X1) / 2, (b.Y0 + b.Y1) / 2, b) > t.Value;
            for (int y = b.Y0; y <= b.Y1; y++)
                for (int x = b.X0; x <= b.X1; x++)
                    mask[y * w + x] = t is null || (g[y * w + x] > t.Value) == above;
            return mask;
        }
        var points = prompts.Points(kind);
        var all = new long[256];
        foreach (var v in g) all[v]++;
        var th = Threshold(all);
        if (th is null) { Array.Fill(mask, true); return mask; }
        var whole = new PromptBox(0, 0, w - 1, h - 1);
        bool side = LocalMean(g, w, h, points[0].X, points[0].Y, whole) > th.Value;
        var stack = new Stack<int>();
        foreach (var p in points)
        {
            int s = p.Y * w + p.X;
            if (mask[s] || (g[s] > th.Value) != side) continue;
            mask[s] = true; stack.Push(s);
            while (stack.Count > 0)
            {
                int i = stack.Pop(), cx = i % w, cy = i / w;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = cx + dx, ny = cy + dy;
                        if ((uint)nx >= (uint)w || (uint)ny >= (uint)h) continue;
                        int j = ny * w + nx;
                        if (mask[j] || (g[j] > th.Value) != side) continue;
                        mask[j] = true; stack.Push(j);
                    }
            }
        }
        return mask;
    }

    private static double LocalMean(byte[] g, int w, int h, int cx, int cy, PromptBox within)
    {
        double sum = 0; int n = 0;
        for (int y = Math.Max(cy - 1, within.Y0); y <= Math.Min(cy + 1, within.Y1); y++)
            for (int x = Math.Max(cx - 1, within.X0); x <= Math.Min(cx + 1, within.X1); x++) { sum += g[y * w + x]; n++; }
        return sum / n;
    }
}
