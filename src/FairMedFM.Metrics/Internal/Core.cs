using System.Numerics;

namespace FairMedFM.Metrics.Internal;

/// <summary>
/// Metric kernels over an index subset of (scores, labels). <see cref="ClassificationMetrics.Evaluate"/> sorts all scores
/// once and hands each group its slice of that order, so AUC/PR work per group is O(n) after one O(n log n) sort.
/// Labels are assumed validated (0/1) and scores NaN-free by the callers.
/// </summary>
internal static class Core
{
    internal static int[] Identity(int n)
    {
        var idx = new int[n];
        for (int i = 0; i < n; i++) idx[i] = i;
        return idx;
    }

    /// <summary>Indices ordered by ascending score (order within ties is irrelevant to every kernel here).</summary>
    internal static int[] SortAscending<T>(ReadOnlySpan<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var keys = p.ToArray();
        var idx = Identity(p.Length);
        keys.AsSpan().Sort(idx.AsSpan());
        return idx;
    }

    internal static int FirstNaN<T>(ReadOnlySpan<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < p.Length; i++)
            if (T.IsNaN(p[i])) return i;
        return -1;
    }

    /// <summary>
    /// Mann–Whitney U with ties counted ½, exact: 2U is accumulated as an integer over tie blocks, so the only rounding
    /// is the final division.
    /// </summary>
    internal static MetricValue AucSorted<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (order.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        long pos = 0, neg = 0, twiceU = 0;
        int i = 0, m = order.Length;
        while (i < m)
        {
            T v = p[order[i]];
            long a = 0, b = 0;
            int j = i;
            for (; j < m && p[order[j]] == v; j++)
            {
                if (y[order[j]] == 1) a++; else b++;
            }
            // each positive in the block beats every negative below it and ties with the block's negatives
            twiceU += a * (2 * neg + b);
            pos += a;
            neg += b;
            i = j;
        }
        if (pos == 0) return MetricValue.Undefined(UndefinedReason.NoPositives, "AUC needs both classes; all labels are 0");
        if (neg == 0) return MetricValue.Undefined(UndefinedReason.NoNegatives, "AUC needs both classes; all labels are 1");
        return MetricValue.Of(twiceU / (2.0 * pos * neg));
    }

    /// <summary>Distinct scores descending with the cumulative TP/FP of "score ≥ threshold" (sklearn's _binary_clf_curve).</summary>
    internal static (double[] Thr, long[] Tp, long[] Fp) DescendingCurve<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var thr = new List<double>();
        var tps = new List<long>();
        var fps = new List<long>();
        long tp = 0, fp = 0;
        int i = order.Length - 1;
        while (i >= 0)
        {
            T v = p[order[i]];
            for (; i >= 0 && p[order[i]] == v; i--)
            {
                if (y[order[i]] == 1) tp++; else fp++;
            }
            thr.Add(double.CreateChecked(v));
            tps.Add(tp);
            fps.Add(fp);
        }
        return (thr.ToArray(), tps.ToArray(), fps.ToArray());
    }

    internal static PrecisionRecallCurve PrCurveSorted<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (thrDesc, tpDesc, fpDesc) = DescendingCurve(p, y, order);
        int m = thrDesc.Length;
        long totalPos = m == 0 ? 0 : tpDesc[m - 1];
        var precision = new double[m + 1];
        var recall = new double[m + 1];
        var thresholds = new double[m];
        var f1 = new double[m + 1];
        for (int k = 0; k < m; k++)
        {
            int d = m - 1 - k; // ascending index k <- descending index d
            double tp = tpDesc[d], fp = fpDesc[d];
            precision[k] = tp / (tp + fp);
            recall[k] = totalPos == 0 ? 1.0 : tp / totalPos;
            thresholds[k] = thrDesc[d];
        }
        precision[m] = 1.0;
        recall[m] = 0.0;
        for (int k = 0; k <= m; k++)
        {
            double pr = precision[k], rc = recall[k];
            // same operations, in the same order, as FairMedFM's numpy expression, so ties in F1 are the same ties
            f1[k] = 2.0 * ((pr * rc) / ((rc + pr) + 1e-8));
        }
        return new PrecisionRecallCurve(precision, recall, thresholds, f1);
    }

    internal static MetricValue BestF1Sorted<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (order.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        var curve = PrCurveSorted(p, y, order);
        double max = double.NegativeInfinity;
        foreach (var f in curve.F1) if (f > max) max = f;
        int first = Array.IndexOf(curve.F1, max);
        // Every F1 is zero only when there is no positive; the final (threshold-less) point is then among the maxima and
        // FairMedFM's t[np.where(f1 == max(f1))] raises IndexError. Report it as undefined instead.
        if (max <= 0.0)
            return MetricValue.Undefined(UndefinedReason.NoPositives, "best-F1 threshold needs at least one positive label");
        return MetricValue.Of(curve.Thresholds[first]);
    }

    /// <summary>Youden's J under strict '&gt;': at candidate t (each distinct score) TP/FP count scores &gt; t.
    /// The lowest threshold among maxima wins, as for best-F1.</summary>
    internal static MetricValue YoudenSorted<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (order.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        var (thrDesc, tpDesc, fpDesc) = DescendingCurve(p, y, order);
        int m = thrDesc.Length;
        long pos = tpDesc[m - 1], neg = fpDesc[m - 1];
        if (pos == 0) return MetricValue.Undefined(UndefinedReason.NoPositives, "Youden's J needs both classes");
        if (neg == 0) return MetricValue.Undefined(UndefinedReason.NoNegatives, "Youden's J needs both classes");
        double best = double.NegativeInfinity, bestThr = double.NaN;
        for (int d = 0; d < m; d++)
        {
            // scores strictly above thrDesc[d] are the blocks before d
            long tp = d == 0 ? 0 : tpDesc[d - 1];
            long fp = d == 0 ? 0 : fpDesc[d - 1];
            double j = (double)tp / pos - (double)fp / neg;
            if (j >= best) { best = j; bestThr = thrDesc[d]; } // '>=' : later d = lower threshold wins ties
        }
        return MetricValue.Of(bestThr);
    }

    /// <summary>The lowest distinct score t with TNR(p &gt; t) ≥ <paramref name="target"/>: the most sensitive threshold that still
    /// meets the specificity target. Undefined without negatives.</summary>
    internal static MetricValue FixedSpecificitySorted<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> order, double target)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (order.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        var (thrDesc, _, fpDesc) = DescendingCurve(p, y, order);
        int m = thrDesc.Length;
        long neg = fpDesc[m - 1];
        if (neg == 0) return MetricValue.Undefined(UndefinedReason.NoNegatives, "a specificity target needs negatives");
        double best = thrDesc[0];
        for (int d = 1; d < m; d++)
        {
            double tnr = 1.0 - (double)fpDesc[d - 1] / neg;
            if (tnr >= target) best = thrDesc[d]; else break;
        }
        return MetricValue.Of(best);
    }

    internal static ConfusionCounts Confusion<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> idx, double threshold)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int tp = 0, fp = 0, tn = 0, fn = 0;
        foreach (int i in idx)
        {
            bool predPos = double.CreateChecked(p[i]) > threshold; // strict, as FairMedFM's `pred > threshold`
            if (y[i] == 1) { if (predPos) tp++; else fn++; }
            else { if (predPos) fp++; else tn++; }
        }
        return new ConfusionCounts(tp, fp, tn, fn);
    }

    /// <summary>torch.nn.BCELoss (mean): per-sample terms in float32 with log clamped at −100, the mean returned as a float32
    /// value like the legacy <c>loss.item()</c>. The sum is kept in double (torch sums in float32; the difference is far
    /// below the 1e-6 the legacy numbers are trusted to).</summary>
    internal static MetricValue Bce(ReadOnlySpan<float> p, ReadOnlySpan<int> y, ReadOnlySpan<int> idx)
    {
        if (idx.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        double sum = 0;
        foreach (int i in idx)
        {
            float pi = p[i];
            if (!(pi >= 0f && pi <= 1f))
                return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"BCE needs probabilities in [0, 1]; p[{i}] = {pi}");
            float term = y[i] == 1
                ? MathF.Max(MathF.Log(pi), -100f)
                : MathF.Max(MathF.Log(1f - pi), -100f);
            sum -= term;
        }
        return MetricValue.Of((float)(sum / idx.Length));
    }

    /// <summary>ECE, L1 ("abs") variant, over the samples <paramref name="idx"/> in data order.</summary>
    internal static MetricValue Ece<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> idx, int bins, MetricsMode mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "ECE needs at least one bin");
        if (idx.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        foreach (int i in idx)
        {
            if (T.IsNaN(p[i])) return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"NaN score at index {i}");
            if (mode == MetricsMode.Default && !(p[i] >= T.Zero && p[i] <= T.One))
                return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"ECE over [0, 1] bins needs probabilities; p[{i}] = {p[i]}");
        }
        return mode == MetricsMode.Reference ? EcePandasCut(p, y, idx, bins) : EceUnitBins(p, y, idx, bins);
    }

    /// <summary>
    /// Fixed equal-width bins over [0, 1]: bin k is [e_k, e_{k+1}) with e_k = k·(1/B) (numpy linspace values) and the last
    /// bin closed, [e_{B−1}, 1], so a confidence of exactly 1 stays in bin B−1 and 0 in bin 0.
    /// </summary>
    private static MetricValue EceUnitBins<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> idx, int bins)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double step = 1.0 / bins;
        var interior = new double[bins - 1];
        for (int k = 1; k < bins; k++) interior[k - 1] = k * step;
        var sumP = new double[bins];
        var sumY = new double[bins];
        foreach (int i in idx)
        {
            double x = double.CreateChecked(p[i]);
            int b = UpperBound(interior, x); // number of interior edges <= x
            sumP[b] += x;
            sumY[b] += y[i];
        }
        // Σ_k (n_k/N)·|mean p_k − mean y_k| = Σ_k |Σp_k − Σy_k| / N
        double total = 0;
        for (int k = 0; k < bins; k++) total += Math.Abs(sumP[k] - sumY[k]);
        return MetricValue.Of(total / idx.Length);
    }

    /// <summary>
    /// FairMedFM's <c>expected_calibration_error</c>: <c>pandas.cut(p, B)</c> over the data range (numpy 1.x float64 edges,
    /// right-closed bins, first edge lowered by 0.1 % of the range), then a pandas groupby mean — which for float32 scores
    /// is a Kahan sum in float32 divided in float32, reproduced here so the result matches beyond float32 noise.
    /// </summary>
    private static MetricValue EcePandasCut<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y, ReadOnlySpan<int> idx, int bins)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        double mn = double.PositiveInfinity, mx = double.NegativeInfinity;
        foreach (int i in idx)
        {
            double x = double.CreateChecked(p[i]);
            if (x < mn) mn = x;
            if (x > mx) mx = x;
        }
        var edges = PandasCutEdges(mn, mx, bins);

        var sum = new T[bins];
        var comp = new T[bins];
        var count = new long[bins];
        var ySum = new long[bins];
        foreach (int i in idx)
        {
            T v = p[i];
            int b = LowerBound(edges, double.CreateChecked(v)) - 1; // edges[b] < x <= edges[b+1]
            b = Math.Clamp(b, 0, bins - 1); // unreachable with the adjusted edges; kept as a guard
            T yk = v - comp[b];
            T t = sum[b] + yk;
            comp[b] = t - sum[b] - yk;
            if (T.IsNaN(comp[b])) comp[b] = T.Zero;
            sum[b] = t;
            count[b]++;
            ySum[b] += y[i];
        }
        double num = 0, den = 0;
        int n = idx.Length;
        for (int k = 0; k < bins; k++)
        {
            if (count[k] == 0) continue;
            double meanP = double.CreateChecked(sum[k] / T.CreateChecked(count[k]));
            double meanY = (double)ySum[k] / count[k];
            double w = (double)count[k] / n;
            num += Math.Abs(meanP - meanY) * w;
            den += w;
        }
        return MetricValue.Of(num / den);
    }

    /// <summary>pandas.cut(x, bins) edges for data range [mn, mx] (numpy 1.x): widened around a constant value, else the first
    /// edge lowered by 0.1 % of the range.</summary>
    internal static double[] PandasCutEdges(double mn, double mx, int bins)
    {
        var edges = new double[bins + 1];
        if (mn == mx)
        {
            mn -= mn != 0 ? 0.001 * Math.Abs(mn) : 0.001;
            mx += mx != 0 ? 0.001 * Math.Abs(mx) : 0.001;
            Linspace(mn, mx, edges);
        }
        else
        {
            Linspace(mn, mx, edges);
            edges[0] -= (mx - mn) * 0.001;
        }
        return edges;
    }

    /// <summary>numpy.linspace(start, stop, len) with endpoint: start + k·step, last value exactly stop.</summary>
    private static void Linspace(double start, double stop, double[] y)
    {
        int div = y.Length - 1;
        double step = (stop - start) / div;
        for (int k = 0; k < y.Length; k++) y[k] = k * step + start;
        y[^1] = stop;
    }

    /// <summary>Number of elements of ascending <paramref name="a"/> that are &lt; x (numpy searchsorted side='left').</summary>
    private static int LowerBound(double[] a, double x)
    {
        int lo = 0, hi = a.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (a[mid] < x) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>Number of elements of ascending <paramref name="a"/> that are &lt;= x (side='right').</summary>
    private static int UpperBound(double[] a, double x)
    {
        int lo = 0, hi = a.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (a[mid] <= x) lo = mid + 1; else hi = mid;
        }
        return lo;
    }
}
