namespace FairMedFM.Metrics.Internal;

/// <summary>
/// A classification data set prepared once (one sort, per-group index lists in score order, per-sample BCE terms and
/// fixed-bin ECE bins) and then evaluated under integer sample weights — the multiplicities of a bootstrap draw or the
/// 0/1 mask of a jackknife block — in O(n) per evaluation, with no re-sort and no copy of the data.
/// The report has the same keys and the same undefined policy as <see cref="ClassificationMetrics.Evaluate"/>; with
/// weight vector w it equals <c>Evaluate</c> on the data set that repeats sample i w[i] times (to rounding: sums are
/// accumulated in another order, and Reference-mode ECE bin means are float64 rather than pandas' float32).
/// </summary>
internal sealed class WeightedClassification
{
    private readonly float[] _p;
    private readonly int[] _y;
    private readonly int[] _order;          // all samples, ascending score
    private readonly int[][] _groupOrder;   // per group, ascending score
    private readonly float[] _bceTerm;      // −clamped log-likelihood per sample (float32, as torch); NaN when p ∉ [0, 1]
    private readonly double[]? _sampleThreshold;
    private readonly double? _threshold;
    public MetricsOptions Options { get; }
    public string[] GroupNames { get; }
    public int[] Code { get; }
    public int Count => _p.Length;

    /// <param name="sampleThreshold">Per-sample frozen thresholds (a permutation test mixing two models' predictions);
    /// needs a fixed <paramref name="threshold"/> too (for the report's Threshold field).</param>
    public WeightedClassification(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, IReadOnlyList<string> groups, MetricsOptions options,
        double? threshold, double[]? sampleThreshold = null)
    {
        // validation is the same as Evaluate's
        ClassificationMetrics.ValidateInput(probs, labels, groups, options, threshold);
        if (sampleThreshold is not null && threshold is null)
            throw new ArgumentException("Per-sample thresholds need a fixed threshold.", nameof(sampleThreshold));
        _p = probs.ToArray();
        _y = labels.ToArray();
        Options = options;
        _threshold = threshold;
        _sampleThreshold = sampleThreshold;
        (GroupNames, Code) = ClassificationMetrics.CodeGroups(groups);
        _order = Core.SortAscending<float>(_p);
        int k = GroupNames.Length;
        var size = new int[k];
        foreach (int c in Code) size[c]++;
        _groupOrder = new int[k][];
        for (int g = 0; g < k; g++) _groupOrder[g] = new int[size[g]];
        var fill = new int[k];
        foreach (int i in _order) _groupOrder[Code[i]][fill[Code[i]]++] = i;
        _bceTerm = new float[_p.Length];
        for (int i = 0; i < _p.Length; i++)
        {
            float pi = _p[i];
            _bceTerm[i] = !(pi >= 0f && pi <= 1f) ? float.NaN
                : _y[i] == 1 ? -MathF.Max(MathF.Log(pi), -100f) : -MathF.Max(MathF.Log(1f - pi), -100f);
        }
    }

    public ClassificationReport Evaluate(int[] w)
    {
        double thr;
        UndefinedReason? fallback = null;
        if (_threshold is double t) thr = t;
        else
        {
            var chosen = Choose(w);
            if (chosen.IsDefined) thr = chosen.Value;
            else { thr = 0.5; fallback = chosen.Reason; }
        }
        var overall = Report("overall", _order, w, thr);
        var reports = new GroupReport[GroupNames.Length];
        for (int g = 0; g < reports.Length; g++) reports[g] = Report(GroupNames[g], _groupOrder[g], w, thr);
        return new ClassificationReport(thr, Options.Mode, overall, reports, Summaries.Classification(overall, reports),
            thresholdFromCaller: _threshold is not null, thresholdFallbackReason: fallback);
    }

    private MetricValue Choose(int[] w)
    {
        switch (Options.Rule)
        {
            case ThresholdRule.Fixed: return MetricValue.Of(0.5);
            case ThresholdRule.BestF1:
            case ThresholdRule.Youden:
            case ThresholdRule.FixedSpecificity:
                break;
            default: throw new ArgumentOutOfRangeException(nameof(Options.Rule));
        }
        long totalPos = 0, totalNeg = 0;
        foreach (int i in _order) { if (_y[i] == 1) totalPos += w[i]; else totalNeg += w[i]; }
        if (totalPos + totalNeg == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        if (Options.Rule == ThresholdRule.BestF1 && totalPos == 0)
            return MetricValue.Undefined(UndefinedReason.NoPositives, "best-F1 threshold needs at least one positive label");
        if (Options.Rule == ThresholdRule.Youden && (totalPos == 0 || totalNeg == 0))
            return MetricValue.Undefined(totalPos == 0 ? UndefinedReason.NoPositives : UndefinedReason.NoNegatives, "Youden's J needs both classes");
        if (Options.Rule == ThresholdRule.FixedSpecificity && totalNeg == 0)
            return MetricValue.Undefined(UndefinedReason.NoNegatives, "a specificity target needs negatives");

        // Walk distinct (weighted-present) scores from the top. tp/fp: counts with score ≥ current value (PR curve);
        // tpAbove/fpAbove: counts strictly above it (strict '>' rules).
        long tp = 0, fp = 0;
        double best = double.NegativeInfinity, bestThr = double.NaN;
        bool first = true;
        int idx = _order.Length - 1;
        while (idx >= 0)
        {
            float v = _p[_order[idx]];
            long a = 0, b = 0;
            for (; idx >= 0 && _p[_order[idx]] == v; idx--)
            {
                int i = _order[idx];
                if (_y[i] == 1) a += w[i]; else b += w[i];
            }
            if (a + b == 0) continue; // value absent from this draw
            long tpAbove = tp, fpAbove = fp;
            tp += a; fp += b;
            switch (Options.Rule)
            {
                case ThresholdRule.BestF1:
                {
                    double pr = (double)tp / (tp + fp), rc = (double)tp / totalPos;
                    double f1 = 2.0 * ((pr * rc) / ((rc + pr) + 1e-8));
                    if (f1 >= best) { best = f1; bestThr = v; }
                    break;
                }
                case ThresholdRule.Youden:
                {
                    double j = (double)tpAbove / totalPos - (double)fpAbove / totalNeg;
                    if (j >= best) { best = j; bestThr = v; }
                    break;
                }
                default:
                {
                    double tnr = 1.0 - (double)fpAbove / totalNeg;
                    if (first || tnr >= Options.TargetSpecificity) bestThr = v;
                    else return MetricValue.Of(bestThr);
                    break;
                }
            }
            first = false;
        }
        if (Options.Rule == ThresholdRule.BestF1 && !(best > 0))
            return MetricValue.Undefined(UndefinedReason.NoPositives, "best-F1 threshold needs at least one positive label");
        return MetricValue.Of(bestThr);
    }

    private GroupReport Report(string name, int[] idx, int[] w, double thr)
    {
        long pos = 0, neg = 0, twiceU = 0;
        long tp = 0, fp = 0, tn = 0, fn = 0, tp5 = 0, fp5 = 0, tn5 = 0, fn5 = 0;
        double bceSum = 0;
        int bceBad = -1;
        int m = idx.Length;
        int k = 0;
        while (k < m)
        {
            float v = _p[idx[k]];
            long a = 0, b = 0;
            int j = k;
            for (; j < m && _p[idx[j]] == v; j++)
            {
                int i = idx[j];
                int wi = w[i];
                if (wi == 0) continue;
                bool predPos = _sampleThreshold is null ? v > thr : v > _sampleThreshold[i];
                bool predPos5 = v > 0.5;
                if (_y[i] == 1)
                {
                    a += wi;
                    if (predPos) tp += wi; else fn += wi;
                    if (predPos5) tp5 += wi; else fn5 += wi;
                }
                else
                {
                    b += wi;
                    if (predPos) fp += wi; else tn += wi;
                    if (predPos5) fp5 += wi; else tn5 += wi;
                }
                float term = _bceTerm[i];
                if (float.IsNaN(term)) { if (bceBad < 0) bceBad = i; }
                else bceSum += (double)term * wi;
            }
            twiceU += a * (2 * neg + b);
            pos += a; neg += b;
            k = j;
        }
        long n = pos + neg;
        MetricValue auc = n == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup)
            : pos == 0 ? MetricValue.Undefined(UndefinedReason.NoPositives, "AUC needs both classes; all labels are 0")
            : neg == 0 ? MetricValue.Undefined(UndefinedReason.NoNegatives, "AUC needs both classes; all labels are 1")
            : MetricValue.Of(twiceU / (2.0 * pos * neg));
        MetricValue bce = n == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup)
            : bceBad >= 0 ? MetricValue.Undefined(UndefinedReason.UndefinedInput, $"BCE needs probabilities in [0, 1]; p[{bceBad}] = {_p[bceBad]}")
            : MetricValue.Of((float)(bceSum / n));
        var at = new ConfusionCounts(checked((int)tp), checked((int)fp), checked((int)tn), checked((int)fn));
        var half = new ConfusionCounts(checked((int)tp5), checked((int)fp5), checked((int)tn5), checked((int)fn5));
        var values = new Dictionary<string, MetricValue>(GroupReport.Keys.Count, StringComparer.Ordinal)
        {
            ["auc"] = auc,
            ["acc"] = at.Accuracy,
            ["acc@0.5"] = half.Accuracy,
            ["bce"] = bce,
            ["ece"] = Ece(idx, w, n),
        };
        ClassificationMetrics.AddRates(values, at, "");
        ClassificationMetrics.AddRates(values, half, "@0.5");
        return new GroupReport(name, new GroupCounts(checked((int)n), checked((int)pos), checked((int)neg)), values);
    }

    private MetricValue Ece(int[] idx, int[] w, long n)
    {
        if (n == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        int bins = Options.EceBins;
        var sumP = new double[bins];
        var sumY = new double[bins];
        var cnt = new long[bins];
        if (Options.Mode == MetricsMode.Default)
        {
            double step = 1.0 / bins;
            foreach (int i in idx)
            {
                int wi = w[i];
                if (wi == 0) continue;
                double x = _p[i];
                if (!(x >= 0 && x <= 1))
                    return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"ECE over [0, 1] bins needs probabilities; p[{i}] = {_p[i]}");
                // bin b: interior edges k·step (k = 1..B−1) that are ≤ x, as Core's fixed bins
                int b = (int)(x * bins);
                if (b >= bins) b = bins - 1;
                while (b > 0 && x < b * step) b--;
                while (b < bins - 1 && x >= (b + 1) * step) b++;
                sumP[b] += x * wi; sumY[b] += _y[i] * wi;
            }
            double total = 0;
            for (int b = 0; b < bins; b++) total += Math.Abs(sumP[b] - sumY[b]);
            return MetricValue.Of(total / n);
        }
        // Reference: pandas.cut over this draw's data range (idx is in ascending score order)
        double mn = double.NaN, mx = double.NaN;
        foreach (int i in idx) if (w[i] > 0) { mn = _p[i]; break; }
        for (int k = idx.Length - 1; k >= 0; k--) if (w[idx[k]] > 0) { mx = _p[idx[k]]; break; }
        var edges = Core.PandasCutEdges(mn, mx, bins);
        int bin = 0;
        foreach (int i in idx)
        {
            int wi = w[i];
            if (wi == 0) continue;
            double x = _p[i];
            while (bin < bins - 1 && x > edges[bin + 1]) bin++; // ascending order: edges[bin] < x ≤ edges[bin+1]
            sumP[bin] += x * wi; sumY[bin] += _y[i] * wi; cnt[bin] += wi;
        }
        double num = 0, den = 0;
        for (int b = 0; b < bins; b++)
        {
            if (cnt[b] == 0) continue;
            double wgt = (double)cnt[b] / n;
            num += Math.Abs(sumP[b] / cnt[b] - sumY[b] / cnt[b]) * wgt;
            den += wgt;
        }
        return MetricValue.Of(num / den);
    }
}
