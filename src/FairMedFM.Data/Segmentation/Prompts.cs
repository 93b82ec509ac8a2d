namespace FairMedFM.Data.Segmentation;

/// <summary>FairMedFM's <c>--prompt</c> choices.</summary>
public enum PromptKind
{
    /// <summary><c>center</c>: one positive point at the centre of the tight box.</summary>
    Center,
    /// <summary><c>rand</c>: one positive point drawn uniformly from the foreground.</summary>
    Rand,
    /// <summary><c>rands</c>: five positive points drawn uniformly from the foreground, with replacement.</summary>
    Rands,
    /// <summary><c>bbox</c>: the tight box around the foreground.</summary>
    Box,
}

/// <summary>How the <c>center</c> prompt is placed.</summary>
public enum CenterRule
{
    /// <summary>
    /// FairMedFM (spec §2.7): <c>((x_min + x_max) div 2, (y_min + y_max) div 2)</c> of the tight box, even when that
    /// pixel is background (non-convex objects). The default: it is what the reference and the paper's numbers use.
    /// </summary>
    BoxCenter,
    /// <summary>
    /// The box centre when it is foreground; otherwise the foreground pixel nearest to it (Euclidean distance in pixels,
    /// ties broken by the first in row-major order). An option for studies that want the point always on the object.
    /// </summary>
    NearestForegroundToBoxCenter,
}

/// <summary>A pixel position: <c>X</c> = column, <c>Y</c> = row, in the mask's pixel grid.</summary>
public readonly record struct PromptPoint(int X, int Y);

/// <summary>Tight box, inclusive pixel indices: <c>(X0, Y0)</c> top-left, <c>(X1, Y1)</c> bottom-right (FairMedFM's <c>(x_min, y_min, x_max, y_max)</c>).</summary>
public readonly record struct PromptBox(int X0, int Y0, int X1, int Y1);

/// <summary>Why a sample has no prompts.</summary>
public enum PromptSkipReason
{
    None,
    /// <summary>The target class has no pixel in this sample's mask (FairMedFM crashes here, bug B13).</summary>
    EmptyMask,
}

/// <summary>
/// The four prompts of one sample, or a typed "skipped" result. All points are positive (label 1). Coordinates are in
/// the mask's pixel grid (the resized S×S grid when the mask was resized), x = column, y = row.
/// </summary>
public sealed class MaskPrompts
{
    private readonly PromptPoint _center, _rand;
    private readonly PromptPoint[] _rands = Array.Empty<PromptPoint>();
    private readonly PromptBox _box;

    public PromptSkipReason SkipReason { get; }
    /// <summary>Human-readable reason when skipped, else null.</summary>
    public string? SkipMessage { get; }
    public bool Skipped => SkipReason != PromptSkipReason.None;
    public int Width { get; }
    public int Height { get; }
    /// <summary>Number of foreground pixels.</summary>
    public int ForegroundPixels { get; }
    public CenterRule CenterRule { get; }
    /// <summary>Whether the box centre itself is a foreground pixel (false for rings, L shapes, ...).</summary>
    public bool BoxCenterIsForeground { get; }

    private MaskPrompts(PromptSkipReason reason, string message, int w, int h)
    {
        SkipReason = reason; SkipMessage = message; Width = w; Height = h;
    }

    private MaskPrompts(int w, int h, int fg, CenterRule rule, PromptPoint center, bool centerFg, PromptPoint rand, PromptPoint[] rands, PromptBox box)
    {
        Width = w; Height = h; ForegroundPixels = fg; CenterRule = rule;
        _center = center; BoxCenterIsForeground = centerFg; _rand = rand; _rands = rands; _box = box;
    }

    internal static MaskPrompts Skip(PromptSkipReason reason, string message, int w, int h) => new(reason, message, w, h);

    internal static MaskPrompts Ok(int w, int h, int fg, CenterRule rule, PromptPoint center, bool centerFg, PromptPoint rand, PromptPoint[] rands, PromptBox box) =>
        new(w, h, fg, rule, center, centerFg, rand, rands, box);

    private void EnsureOk()
    {
        if (Skipped) throw new InvalidOperationException($"no prompts for this sample: {SkipMessage}");
    }

    /// <summary><c>prompt_center</c> (by <see cref="CenterRule"/>).</summary>
    public PromptPoint Center { get { EnsureOk(); return _center; } }
    /// <summary><c>prompt_point</c>: one uniformly drawn foreground pixel.</summary>
    public PromptPoint Rand { get { EnsureOk(); return _rand; } }
    /// <summary><c>prompt_rands</c>: five uniformly drawn foreground pixels (with replacement), in draw order.</summary>
    public IReadOnlyList<PromptPoint> Rands { get { EnsureOk(); return _rands; } }
    /// <summary><c>prompt_box</c>.</summary>
    public PromptBox Box { get { EnsureOk(); return _box; } }

    /// <summary>The points of a point prompt kind (1 for center/rand, 5 for rands); all have label 1.</summary>
    public IReadOnlyList<PromptPoint> Points(PromptKind kind) => kind switch
    {
        PromptKind.Center => new[] { Center },
        PromptKind.Rand => new[] { Rand },
        PromptKind.Rands => Rands,
        _ => throw new ArgumentException("a box prompt has no points; use Box", nameof(kind)),
    };

    /// <summary>
    /// The prompt as FairMedFM stores it (float32): center/rand <c>[x, y]</c>; box <c>[x_min, y_min, x_max, y_max]</c>;
    /// rands <c>[2, 5]</c> row-major = <c>[x0..x4, y0..y4]</c>.
    /// </summary>
    public float[] ToReferenceArray(PromptKind kind)
    {
        switch (kind)
        {
            case PromptKind.Center: return new float[] { Center.X, Center.Y };
            case PromptKind.Rand: return new float[] { Rand.X, Rand.Y };
            case PromptKind.Box: return new float[] { Box.X0, Box.Y0, Box.X1, Box.Y1 };
            default:
            {
                var r = Rands;
                var a = new float[2 * r.Count];
                for (int i = 0; i < r.Count; i++) { a[i] = r[i].X; a[r.Count + i] = r[i].Y; }
                return a;
            }
        }
    }
}

/// <summary>
/// Prompts from a binary mask exactly as FairMedFM's <c>DataEngine2D</c> defines them (spec §2.7), with seeded,
/// order-independent random draws: each random prompt kind has its own stream seeded by
/// <see cref="SegRandom.DeriveSeed"/>(run seed, kind, sample id), so one sample's prompts do not depend on which other
/// samples exist, their order, or which prompt kind is evaluated. (FairMedFM draws from NumPy's global RNG, so its exact
/// points cannot be replayed outside Python; the distribution — uniform over foreground pixels, with replacement — is
/// the same.)
/// </summary>
public static class PromptGenerator
{
    public const int RandsCount = 5;

    /// <summary>Prompts of a mask (non-zero = foreground), row-major <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static MaskPrompts FromMask(ReadOnlySpan<byte> mask, int width, int height, long runSeed, string sampleId,
        CenterRule centerRule = CenterRule.BoxCenter)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"mask size must be positive, got {width}x{height}");
        if (mask.Length != width * height) throw new ArgumentException($"mask has {mask.Length} pixels, expected {width}x{height}");
        ArgumentNullException.ThrowIfNull(sampleId);

        int fg = 0, x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (mask[y * width + x] != 0)
                {
                    fg++;
                    if (x < x0) x0 = x;
                    if (x > x1) x1 = x;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                }
        if (fg == 0)
            return MaskPrompts.Skip(PromptSkipReason.EmptyMask, $"skipped: empty mask (no foreground pixel of the target class in '{sampleId}')", width, height);

        var box = new PromptBox(x0, y0, x1, y1);
        // Non-negative operands: C# integer division = floor division = Python's //.
        var boxCenter = new PromptPoint((x0 + x1) / 2, (y0 + y1) / 2);
        bool centerFg = mask[boxCenter.Y * width + boxCenter.X] != 0;
        var center = centerRule == CenterRule.NearestForegroundToBoxCenter && !centerFg
            ? NearestForeground(mask, width, height, boxCenter, box)
            : boxCenter;

        var randRng = new SegRandom(SegRandom.DeriveSeed(runSeed, "prompt:rand", sampleId));
        var rand = NthForeground(mask, width, randRng.NextInt(fg));
        var randsRng = new SegRandom(SegRandom.DeriveSeed(runSeed, "prompt:rands", sampleId));
        var rands = new PromptPoint[RandsCount];
        for (int i = 0; i < RandsCount; i++) rands[i] = NthForeground(mask, width, randsRng.NextInt(fg));

        return MaskPrompts.Ok(width, height, fg, centerRule, center, centerFg, rand, rands, box);
    }

    /// <summary>The k-th (0-based) foreground pixel in row-major order = FairMedFM's flat index <c>loc</c>: x = loc mod W, y = loc div W.</summary>
    private static PromptPoint NthForeground(ReadOnlySpan<byte> mask, int width, int k)
    {
        for (int i = 0; i < mask.Length; i++)
            if (mask[i] != 0 && k-- == 0) return new PromptPoint(i % width, i / width);
        throw new InvalidOperationException("unreachable: k < foreground count");
    }

    private static PromptPoint NearestForeground(ReadOnlySpan<byte> mask, int width, int height, PromptPoint c, PromptBox box)
    {
        // The nearest foreground pixel lies inside the box (every foreground pixel does).
        long best = long.MaxValue;
        var bestP = c;
        for (int y = box.Y0; y <= box.Y1; y++)
            for (int x = box.X0; x <= box.X1; x++)
            {
                if (mask[y * width + x] == 0) continue;
                long dx = x - c.X, dy = y - c.Y, d = dx * dx + dy * dy;
                if (d < best) { best = d; bestP = new PromptPoint(x, y); }
            }
        return bestP;
    }
}
