using FairMedFM.Metrics.Internal;

namespace FairMedFM.Metrics;

/// <summary>A binary H×W mask, row-major.</summary>
public sealed class BinaryMask
{
    public int Height { get; }
    public int Width { get; }
    private readonly bool[] _px;

    public BinaryMask(int height, int width, bool[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (height < 1 || width < 1) throw new ArgumentException($"A mask needs a positive size (got {height}×{width}).");
        if (pixels.Length != height * width) throw new ArgumentException($"{pixels.Length} pixels for a {height}×{width} mask.", nameof(pixels));
        Height = height; Width = width; _px = pixels;
    }

    public bool this[int r, int c] => _px[r * Width + c];
    public ReadOnlySpan<bool> Pixels => _px;
    public int Count { get { int n = 0; foreach (var b in _px) if (b) n++; return n; } }

    /// <summary>Non-zero bytes are foreground.</summary>
    public static BinaryMask FromBytes(byte[,] m)
    {
        ArgumentNullException.ThrowIfNull(m);
        int h = m.GetLength(0), w = m.GetLength(1);
        var px = new bool[h * w];
        for (int r = 0; r < h; r++) for (int c = 0; c < w; c++) px[r * w + c] = m[r, c] != 0;
        return new BinaryMask(h, w, px);
    }

    public static BinaryMask FromBools(bool[,] m)
    {
        ArgumentNullException.ThrowIfNull(m);
        int h = m.GetLength(0), w = m.GetLength(1);
        var px = new bool[h * w];
        for (int r = 0; r < h; r++) for (int c = 0; c < w; c++) px[r * w + c] = m[r, c];
        return new BinaryMask(h, w, px);
    }

    /// <summary>Foreground iff logit &gt; <paramref name="threshold"/> (SAM's rule is logit &gt; 0). A NaN logit is an error naming the pixel.</summary>
    public static BinaryMask FromLogits(float[,] logits, float threshold = 0f)
    {
        ArgumentNullException.ThrowIfNull(logits);
        int h = logits.GetLength(0), w = logits.GetLength(1);
        var px = new bool[h * w];
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                float v = logits[r, c];
                if (float.IsNaN(v)) throw new ArgumentException($"logits[{r}, {c}] is NaN.", nameof(logits));
                px[r * w + c] = v > threshold;
            }
        return new BinaryMask(h, w, px);
    }
}

/// <summary>Per-sample segmentation metrics. Sizes must match (an error naming both sizes otherwise).</summary>
public static class SegmentationMetrics
{
    /// <summary>Standard binary Dice 2|P∩T| / (|P| + |T|) over all pixels; undefined (empty mask) when both are empty.</summary>
    public static MetricValue Dice(BinaryMask prediction, BinaryMask target)
    {
        var (inter, p, t) = Overlap(prediction, target);
        if (p + t == 0) return MetricValue.Undefined(UndefinedReason.EmptyMask, "prediction and target are both empty");
        return MetricValue.Of(2.0 * inter / (p + t));
    }

    /// <summary>IoU (Jaccard) |P∩T| / |P∪T|; undefined (empty mask) when both are empty.</summary>
    public static MetricValue IoU(BinaryMask prediction, BinaryMask target)
    {
        var (inter, p, t) = Overlap(prediction, target);
        long union = p + t - inter;
        if (union == 0) return MetricValue.Undefined(UndefinedReason.EmptyMask, "prediction and target are both empty");
        return MetricValue.Of((double)inter / union);
    }

    /// <summary>
    /// FairMedFM's Dice (spec §5.5 step 6, B10): torchmetrics 1.4 legacy <c>dice(pred, target, ignore_index=0)</c> on a
    /// float S×S logit map and an integer mask. The logit map is thresholded at ≥ 0.5 (on raw logits, not SAM's 0); the
    /// inputs are read as "multi-label" rows × columns, so <c>ignore_index=0</c> deletes image column 0; micro Dice
    /// 2TP / (2TP + FP + FN) over the remaining H×(W − 1) pixels; 0 when the denominator is 0 (zero_division=0).
    /// </summary>
    public static MetricValue DiceReference(float[,] logits, BinaryMask target)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        int h = logits.GetLength(0), w = logits.GetLength(1);
        if (h != target.Height || w != target.Width)
            throw new ArgumentException($"logits are {h}×{w} but the target is {target.Height}×{target.Width}.");
        long tp = 0, fp = 0, fn = 0;
        for (int r = 0; r < h; r++)
            for (int c = 1; c < w; c++) // column 0 is the "ignored class"
            {
                float v = logits[r, c];
                if (float.IsNaN(v)) throw new ArgumentException($"logits[{r}, {c}] is NaN.", nameof(logits));
                bool p = v >= 0.5f, t = target[r, c];
                if (p && t) tp++; else if (p) fp++; else if (t) fn++;
            }
        long den = 2 * tp + fp + fn;
        return MetricValue.Of(den == 0 ? 0.0 : 2.0 * tp / den);
    }

    /// <summary>
    /// 95th-percentile Hausdorff distance in pixels (medpy's hd95 definition, unit spacing): the surface of a mask is its
    /// foreground pixels with a 4-neighbour outside the mask (the image border counts as outside); the directed distances
    /// from every surface pixel of each mask to the nearest surface pixel of the other (Euclidean, exact) are pooled, both
    /// directions together, and their 95th percentile (linear interpolation) is returned. Symmetric. Undefined (empty mask)
    /// when either mask is empty.
    /// </summary>
    public static MetricValue Hausdorff95(BinaryMask prediction, BinaryMask target) => HausdorffPercentile(prediction, target, 95);

    /// <summary>As <see cref="Hausdorff95"/> at another percentile (100 = the Hausdorff distance).</summary>
    public static MetricValue HausdorffPercentile(BinaryMask prediction, BinaryMask target, double percentile)
    {
        SameSize(prediction, target);
        if (!(percentile >= 0 && percentile <= 100)) throw new ArgumentOutOfRangeException(nameof(percentile));
        if (prediction.Count == 0 || target.Count == 0)
            return MetricValue.Undefined(UndefinedReason.EmptyMask, prediction.Count == 0 ? "the prediction is empty" : "the target is empty");
        var sp = Surface(prediction); var st = Surface(target);
        var dt = DistanceTransform.ToNearest(st, prediction.Height, prediction.Width);
        var dp = DistanceTransform.ToNearest(sp, prediction.Height, prediction.Width);
        var all = new List<double>();
        for (int i = 0; i < sp.Length; i++) if (sp[i]) all.Add(dt[i]);
        for (int i = 0; i < st.Length; i++) if (st[i]) all.Add(dp[i]);
        var sorted = all.ToArray();
        Array.Sort(sorted);
        return MetricValue.Of(Metrics.Bootstrap.Quantile(sorted, percentile / 100));
    }

    internal static bool[] Surface(BinaryMask m)
    {
        int h = m.Height, w = m.Width;
        var s = new bool[h * w];
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                if (!m[r, c]) continue;
                bool interior = r > 0 && r < h - 1 && c > 0 && c < w - 1 && m[r - 1, c] && m[r + 1, c] && m[r, c - 1] && m[r, c + 1];
                s[r * w + c] = !interior;
            }
        return s;
    }

    private static void SameSize(BinaryMask a, BinaryMask b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Height != b.Height || a.Width != b.Width)
            throw new ArgumentException($"The prediction is {a.Height}×{a.Width} but the target is {b.Height}×{b.Width}.");
    }

    private static (long Inter, long P, long T) Overlap(BinaryMask a, BinaryMask b)
    {
        SameSize(a, b);
        long inter = 0, p = 0, t = 0;
        var pa = a.Pixels; var pb = b.Pixels;
        for (int i = 0; i < pa.Length; i++)
        {
            if (pa[i]) p++;
            if (pb[i]) t++;
            if (pa[i] && pb[i]) inter++;
        }
        return (inter, p, t);
    }

    /// <summary>
    /// FairMedFM's <c>evaluate_seg</c> generalised to any number of groups (spec §6.4, INTENDED): per-sample values of
    /// <paramref name="metric"/> ("dice", "dice-ref", "iou" or "hd95") → per-group means → summary keys
    /// <c>mean_m</c> (over all samples), <c>min_m</c>, <c>max_m</c> (group means), <c>delta_m</c> = max − min, <c>std_m</c>
    /// (population std of the group means), and for dice/iou <c>skewness_m</c> = (1 − min)/(1 − max) and
    /// <c>es_m</c> = mean/(1 + std). With two groups this is exactly the legacy code (it used groups 0 and 1 only).
    /// A per-sample value that is undefined (HD95 of an empty mask) is left out of its group's mean and counted; a group
    /// with no defined value is undefined and left out of the summaries, which need two defined groups.
    /// </summary>
    public static SegmentationReport Summarize(IReadOnlyList<MetricValue> values, IReadOnlyList<string> groups, string metric = "dice")
    {
        var w = new SegmentationData(values, groups, metric);
        return w.Report(Metrics.Bootstrap.Ones(values.Count));
    }

    /// <summary>Per-sample values as plain numbers (e.g. FairMedFM's stored Dice list); NaN is refused.</summary>
    public static SegmentationReport Summarize(IReadOnlyList<double> values, IReadOnlyList<string> groups, string metric = "dice") =>
        Summarize(values.Select((v, i) => double.IsNaN(v) ? throw new ArgumentException($"values[{i}] is NaN; pass a typed undefined MetricValue instead.", nameof(values)) : MetricValue.Of(v)).ToArray(), groups, metric);

    /// <summary>Summaries with bootstrap intervals: resampling stratified by group, clustered by patient when given.</summary>
    public static SegmentationBootstrapReport SummarizeWithIntervals(IReadOnlyList<MetricValue> values, IReadOnlyList<string> groups, string metric,
        BootstrapOptions options, IReadOnlyList<string>? clusters = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var data = new SegmentationData(values, groups, metric);
        var estimate = data.Report(Metrics.Bootstrap.Ones(values.Count));
        var keys = estimate.Summary.Keys.Select(k => (Group: (string?)null, Key: k))
            .Concat(estimate.Groups.Select(g => (Group: (string?)g.Group, Key: "mean"))).ToArray();
        double[] Extract(SegmentationReport r) => keys.Select(k =>
        {
            var v = k.Group is null ? r.Summary[k.Key] : r.Groups.First(g => g.Group == k.Group).Mean;
            return v.IsDefined ? v.Value : double.NaN;
        }).ToArray();
        var resampler = new Resampler(data.Code, new int[values.Count], clusters);
        var reps = Metrics.Bootstrap.Replicate(resampler, options, keys.Length, w => Extract(data.Report(w)));
        var jack = options.Method == CiMethod.Bca ? Metrics.Bootstrap.Jackknife(resampler, options, values.Count, w => Extract(data.Report(w))) : null;
        var self = Extract(estimate);
        var cis = new Dictionary<string, ConfidenceInterval>(StringComparer.Ordinal);
        var groupCis = new Dictionary<string, ConfidenceInterval>(StringComparer.Ordinal);
        for (int s = 0; s < keys.Length; s++)
        {
            var est = keys[s].Group is null ? estimate.Summary[keys[s].Key] : estimate.Groups.First(g => g.Group == keys[s].Group).Mean;
            var ci = Metrics.Bootstrap.Interval(est, self[s], Metrics.Bootstrap.Column(reps, s), jack is null ? null : Metrics.Bootstrap.Column(jack, s), options,
                resampler.SingletonStrata);
            if (keys[s].Group is null) cis[keys[s].Key] = ci; else groupCis[keys[s].Group!] = ci;
        }
        return new SegmentationBootstrapReport(estimate, cis, groupCis, options);
    }
}

/// <summary>One group's mean of a per-sample segmentation metric.</summary>
/// <param name="N">Samples in the group; <paramref name="Defined"/> of them had a defined value.</param>
public sealed record SegmentationGroup(string Group, int N, int Defined, MetricValue Mean);

public sealed record SegmentationReport(string Metric, MetricValue Mean, IReadOnlyList<SegmentationGroup> Groups, IReadOnlyDictionary<string, MetricValue> Summary);

public sealed record SegmentationBootstrapReport(SegmentationReport Estimate, IReadOnlyDictionary<string, ConfidenceInterval> Summary,
    IReadOnlyDictionary<string, ConfidenceInterval> GroupMeans, BootstrapOptions Options);

internal sealed class SegmentationData
{
    private readonly double[] _v;       // NaN = undefined sample value
    private readonly string?[] _why;
    public readonly int[] Code;
    private readonly string[] _names;
    private readonly string _metric;

    public SegmentationData(IReadOnlyList<MetricValue> values, IReadOnlyList<string> groups, string metric)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(metric);
        if (!MetricCatalog.SegmentationMetricNames.Contains(metric))
            throw new ArgumentException($"'{metric}' is not a segmentation metric ({string.Join(", ", MetricCatalog.SegmentationMetricNames)}).", nameof(metric));
        if (values.Count != groups.Count) throw new ArgumentException($"{values.Count} values but {groups.Count} group labels.");
        if (values.Count == 0) throw new ArgumentException("No samples to summarise.", nameof(values));
        for (int i = 0; i < groups.Count; i++)
            if (string.IsNullOrEmpty(groups[i]))
                throw new ArgumentException($"groups[{i}] is missing (null or empty): row {i} has no group label. Drop or relabel it explicitly.", nameof(groups));
        _v = values.Select(v => v.IsDefined ? v.Value : double.NaN).ToArray();
        _why = values.Select(v => v.IsDefined ? null : MetricValue.ReasonText(v.Reason!.Value)).ToArray();
        (_names, Code) = ClassificationMetrics.CodeGroups(groups);
        _metric = metric;
    }

    public SegmentationReport Report(int[] w)
    {
        int k = _names.Length;
        var sum = new double[k]; var n = new long[k]; var def = new long[k];
        double total = 0; long totalDef = 0;
        for (int i = 0; i < _v.Length; i++)
        {
            int wi = w[i];
            if (wi == 0) continue;
            n[Code[i]] += wi;
            if (double.IsNaN(_v[i])) continue;
            sum[Code[i]] += _v[i] * wi; def[Code[i]] += wi;
            total += _v[i] * wi; totalDef += wi;
        }
        var groups = new SegmentationGroup[k];
        for (int g = 0; g < k; g++)
        {
            var mean = n[g] == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup)
                : def[g] == 0 ? MetricValue.Undefined(UndefinedReason.EmptyMask, $"{_metric} is undefined for every sample of the group")
                : MetricValue.Of(sum[g] / def[g], def[g] < n[g] ? $"{n[g] - def[g]} of {n[g]} samples undefined and left out" : null);
            groups[g] = new SegmentationGroup(_names[g], checked((int)n[g]), checked((int)def[g]), mean);
        }
        var overall = totalDef == 0 ? MetricValue.Undefined(UndefinedReason.EmptyMask, $"{_metric} is undefined for every sample")
            : MetricValue.Of(total / totalDef);
        var reports = groups.Select(g => new GroupReport(g.Group, new GroupCounts(g.N, 0, 0),
            new Dictionary<string, MetricValue> { [_metric] = g.Mean })).ToArray();
        var s = Summaries.SpreadOf(reports, _metric);
        var m = _metric;
        var summary = new Dictionary<string, MetricValue>(StringComparer.Ordinal)
        {
            ["mean_" + m] = overall,
            ["min_" + m] = s.Of(x => x.Min),
            ["max_" + m] = s.Of(x => x.Max),
            ["delta_" + m] = s.Of(x => x.Max - x.Min),
        };
        if (m != "hd95")
            summary["skewness_" + m] = !s.Enough ? s.TooFew()
                : s.Max == 1 ? MetricValue.Undefined(UndefinedReason.ZeroDenominator, $"the best group's mean {m} is 1, so (1 − min)/(1 − max) divides by 0")
                : MetricValue.Of((1 - s.Min) / (1 - s.Max), s.Note);
        var std = s.Of(x => Summaries.PopulationStd(x.Values));
        summary["std_" + m] = std;
        if (m != "hd95")
            summary["es_" + m] = !overall.IsDefined ? overall : !std.IsDefined ? std : MetricValue.Of(overall.Value / (1 + std.Value), std.Detail);
        return new SegmentationReport(m, overall, groups, summary);
    }
}

/// <summary>Exact Euclidean distance transform (Felzenszwalb &amp; Huttenlocher's separable lower envelope).</summary>
internal static class DistanceTransform
{
    /// <summary>Distance from every pixel to the nearest true pixel of <paramref name="features"/> (which must have one).</summary>
    public static double[] ToNearest(bool[] features, int h, int w)
    {
        const double Inf = 1e20;
        var f = new double[h * w];
        for (int i = 0; i < f.Length; i++) f[i] = features[i] ? 0 : Inf;
        var col = new double[Math.Max(h, w)]; var outBuf = new double[Math.Max(h, w)];
        var v = new int[Math.Max(h, w)]; var z = new double[Math.Max(h, w) + 1];
        for (int c = 0; c < w; c++)
        {
            for (int r = 0; r < h; r++) col[r] = f[r * w + c];
            Pass(col, h, outBuf, v, z);
            for (int r = 0; r < h; r++) f[r * w + c] = outBuf[r];
        }
        for (int r = 0; r < h; r++)
        {
            for (int c = 0; c < w; c++) col[c] = f[r * w + c];
            Pass(col, w, outBuf, v, z);
            for (int c = 0; c < w; c++) f[r * w + c] = Math.Sqrt(outBuf[c]);
        }
        return f;
    }

    private static void Pass(double[] f, int n, double[] d, int[] v, double[] z)
    {
        int k = 0;
        v[0] = 0; z[0] = double.NegativeInfinity; z[1] = double.PositiveInfinity;
        for (int q = 1; q < n; q++)
        {
            double s = ((f[q] + (double)q * q) - (f[v[k]] + (double)v[k] * v[k])) / (2.0 * q - 2.0 * v[k]);
            while (s <= z[k])
            {
                k--;
                s = ((f[q] + (double)q * q) - (f[v[k]] + (double)v[k] * v[k])) / (2.0 * q - 2.0 * v[k]);
            }
            k++;
            v[k] = q; z[k] = s; z[k + 1] = double.PositiveInfinity;
        }
        k = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[k + 1] < q) k++;
            double dq = q - v[k];
            d[q] = dq * dq + f[v[k]];
        }
    }
}
