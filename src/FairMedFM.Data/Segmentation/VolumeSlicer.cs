using System.Globalization;

namespace FairMedFM.Data.Segmentation;

/// <summary>Which slices of a volume become samples.</summary>
public enum SliceKeep
{
    /// <summary>Slices whose label map contains the target label value (the meant behaviour; the default).</summary>
    Target,
    /// <summary>
    /// Slices with any label &gt; 0 — what FairMedFM's 3-D pre-processing kept (<c>np.sum(label) &gt; 0</c>) before the
    /// class was chosen; slices without the target then have an empty mask and are skipped at prompting.
    /// (Reference-compatible switch.)
    /// </summary>
    AnyLabel,
    /// <summary>Every slice.</summary>
    All,
}

public enum IntensityMode
{
    /// <summary>
    /// FairMedFM (KiTS23/IRCADb/CANDI/SPIDER scripts): per volume <c>(v − min)/(max − min)</c> in float32, ×255, then
    /// OpenCV's float → uint8 conversion (round half to even, saturate). A constant volume becomes 0.
    /// </summary>
    MinMax,
    /// <summary>Clip to the volume's [low, high] percentiles (linear interpolation, as NumPy's default), then min–max to 0..255.</summary>
    Percentile,
    /// <summary>Clip to a fixed window [low, high] (e.g. CT Hounsfield units), then map it linearly to 0..255.</summary>
    Window,
}

/// <summary>Per-volume intensity scaling to 8 bits.</summary>
public sealed record IntensityScaling(IntensityMode Mode = IntensityMode.MinMax, double Low = 0, double High = 0)
{
    public static IntensityScaling MinMax { get; } = new();

    public string Id => Mode switch
    {
        IntensityMode.MinMax => "minmax",
        IntensityMode.Percentile => $"percentile:{F(Low)}-{F(High)}",
        _ => $"window:{F(Low)}..{F(High)}",
    };

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public void Validate(string? file = null, string field = "slicing.intensity")
    {
        switch (Mode)
        {
            case IntensityMode.Percentile:
                if (!(Low >= 0 && High <= 100 && Low < High))
                    throw new DataException($"percentiles must satisfy 0 <= low < high <= 100, got low={F(Low)}, high={F(High)}", file, field: field);
                break;
            case IntensityMode.Window:
                if (!(double.IsFinite(Low) && double.IsFinite(High) && Low < High))
                    throw new DataException($"window needs finite low < high, got low={F(Low)}, high={F(High)}", file, field: field);
                break;
        }
    }
}

/// <summary>
/// FairMedFM's "2.5-D" treatment of 3-D volumes (spec §2.6): scale the whole volume to 8 bits, cut it into 2-D slices
/// along one axis, keep the slices that contain the target, and treat each slice as a 2-D sample that remembers its
/// volume and slice index.
/// <para>Slice orientation follows the reference (NumPy indexing of the x-fastest volume): cutting axis <c>a</c>
/// leaves axes <c>p &lt; q</c>; the slice's rows are axis <c>p</c> and its columns axis <c>q</c> (so for
/// <c>vol[:, :, k]</c>, image row = i, column = j, height = Nx, width = Ny).</para>
/// </summary>
public static class VolumeSlicer
{
    /// <summary>The two in-plane axes (rows, columns) for a cutting axis.</summary>
    public static (int RowAxis, int ColAxis) InPlaneAxes(int axis) => axis switch
    {
        0 => (1, 2),
        1 => (0, 2),
        2 => (0, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(axis), axis, "axis must be 0, 1 or 2"),
    };

    /// <summary>Slice indices (ascending) along <paramref name="axis"/> that the rule keeps.</summary>
    public static int[] SelectSlices(int[] labels, int[] shape, int axis, int targetValue, SliceKeep keep)
    {
        CheckShape(labels.Length, shape);
        int n = shape[axis];
        if (keep == SliceKeep.All) return Enumerable.Range(0, n).ToArray();
        var has = new bool[n];
        int nx = shape[0], ny = shape[1];
        for (int k = 0; k < shape[2]; k++)
            for (int j = 0; j < ny; j++)
                for (int i = 0; i < nx; i++)
                {
                    int v = labels[i + nx * (j + ny * k)];
                    bool hit = keep == SliceKeep.Target ? v == targetValue : v > 0;
                    if (!hit) continue;
                    has[axis == 0 ? i : axis == 1 ? j : k] = true;
                }
        return Enumerable.Range(0, n).Where(s => has[s]).ToArray();
    }

    /// <summary>Scales a whole volume to 0..255 by the rule (one scaling per volume, not per slice).</summary>
    public static byte[] ScaleToUint8(float[] volume, IntensityScaling scaling)
    {
        scaling.Validate();
        var outp = new byte[volume.Length];
        if (volume.Length == 0) return outp;
        // A NaN or infinite voxel is corrupt data: under min–max scaling one +Inf maps every real voxel to 0 (a silently
        // wrong image), so it is refused in every mode, naming how many there are and the first one.
        int bad = 0, first = -1;
        for (int i = 0; i < volume.Length; i++)
            if (!float.IsFinite(volume[i])) { bad++; if (first < 0) first = i; }
        if (bad > 0)
            throw new ArgumentException($"volume contains {bad} non-finite value(s) (NaN or ±infinity; the first, {volume[first]}, at voxel {first} in file order)");
        float lo, hi;
        switch (scaling.Mode)
        {
            case IntensityMode.MinMax:
                (lo, hi) = MinMaxOf(volume);
                break;
            case IntensityMode.Percentile:
            {
                var sorted = (float[])volume.Clone();
                Array.Sort(sorted);
                lo = (float)Percentile(sorted, scaling.Low);
                hi = (float)Percentile(sorted, scaling.High);
                break;
            }
            default:
                lo = (float)scaling.Low;
                hi = (float)scaling.High;
                break;
        }
        float range = hi - lo;
        if (!(range > 0)) return outp; // constant (after clipping): all 0, as FairMedFM's 0/0 → NaN → 0
        for (int i = 0; i < volume.Length; i++)
        {
            float v = volume[i];
            if (v < lo) v = lo;
            else if (v > hi) v = hi;
            // float32 arithmetic in the reference's order: (v − min) / (max − min), then × 255.
            float t = (v - lo) / range * 255f;
            float r = MathF.Round(t, MidpointRounding.ToEven);
            outp[i] = r <= 0 ? (byte)0 : r >= 255 ? (byte)255 : (byte)r;
        }
        return outp;
    }

    private static (float Min, float Max) MinMaxOf(float[] v)
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        foreach (var x in v)
        {
            if (float.IsNaN(x)) return (float.NaN, float.NaN);
            if (x < mn) mn = x;
            if (x > mx) mx = x;
        }
        return (mn, mx);
    }

    /// <summary>NumPy's default ("linear") percentile of sorted data.</summary>
    public static double Percentile(float[] sorted, double p)
    {
        if (sorted.Length == 0) throw new ArgumentException("no data");
        double pos = p / 100.0 * (sorted.Length - 1);
        int i = (int)Math.Floor(pos);
        if (i >= sorted.Length - 1) return sorted[^1];
        double f = pos - i;
        return sorted[i] + (sorted[i + 1] - (double)sorted[i]) * f;
    }

    /// <summary>One slice of an 8-bit volume as a grey image (row-major), with its (width, height).</summary>
    public static (byte[] Pixels, int Width, int Height) Slice(byte[] volume, int[] shape, int axis, int index)
    {
        CheckShape(volume.Length, shape);
        var (ra, ca) = InPlaneAxes(axis);
        int h = shape[ra], w = shape[ca];
        var px = new byte[w * h];
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
                px[r * w + c] = volume[Offset(shape, axis, index, ra, r, ca, c)];
        return (px, w, h);
    }

    /// <summary>One slice of a label volume as a label map.</summary>
    public static LabelMap Slice(int[] labels, int[] shape, int axis, int index)
    {
        CheckShape(labels.Length, shape);
        var (ra, ca) = InPlaneAxes(axis);
        int h = shape[ra], w = shape[ca];
        var v = new int[w * h];
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
                v[r * w + c] = labels[Offset(shape, axis, index, ra, r, ca, c)];
        return new LabelMap(w, h, v);
    }

    private static int Offset(int[] shape, int axis, int index, int ra, int r, int ca, int c)
    {
        Span<int> ijk = stackalloc int[3];
        ijk[axis] = index;
        ijk[ra] = r;
        ijk[ca] = c;
        if ((uint)index >= (uint)shape[axis]) throw new ArgumentOutOfRangeException(nameof(index), index, $"slice index outside 0..{shape[axis] - 1}");
        return ijk[0] + shape[0] * (ijk[1] + shape[1] * ijk[2]);
    }

    private static void CheckShape(int length, int[] shape)
    {
        if (shape is not { Length: 3 } || shape.Any(s => s < 1)) throw new ArgumentException("shape must be 3 positive sizes");
        if ((long)shape[0] * shape[1] * shape[2] != length) throw new ArgumentException($"volume has {length} voxels, shape says {shape[0]}x{shape[1]}x{shape[2]}");
    }
}
