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
    // Everything is stored in ascending score order (position k), so an evaluation is one sequential pass.
    private readonly float[] _ps;
    private readonly byte[] _ys;
    private readonly int[] _gs;            // group code per position
    private readonly float[] _bce;         // −clamped log-likelihood (float32, as torch); NaN when p ∉ [0, 1]
    private readonly short[] _unitBin;     // Default-mode ECE bin; −1 when p ∉ [0, 1]
    private readonly double[]? _thrs;      // per-position frozen thresholds (permutation tests)
    private readonly int[] _order;         // position → original index
    private readonly double? _threshold;
    public MetricsOptions Options { get; }
    public string[] GroupNames { get; }
    public int[] Code { get; }
    public int Count => _ps.Length;

    /// <param name="sampleThreshold">Per-sample frozen thresholds (a permutation test mixing two models' predictions);
    /// needs a fixed <paramref name="threshold"/> too (for the report's Threshold field).</param>
    public WeightedClassification(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, IReadOnlyList<string> groups, MetricsOptions options,
        double? threshold, double[]? sampleThreshold = null)
    {
        ClassificationMetrics.ValidateInput(probs, labels, groups, options, threshold); // the same checks as Evaluate
        if (sampleThreshold is not null && threshold is null)
            throw new ArgumentException("Per-sample thresholds need a fixed threshold.", nameof(sampleThreshold));
        Options = options;
        _threshold = threshold;
        (GroupNames, Code) = ClassificationMetrics.CodeGroups(groups);
        _order = Core.SortAscending(probs);
        int n = probs.Length, bins = options.EceBins;
        _ps = new float[n]; _ys = new byte[n]; _gs = new int[n]; _bce = new float[n]; _unitBin = new short[n];
        if (sampleThreshold is not null) _thrs = new double[n];
        double step = 1.0 / bins;
        for (int k = 0; k < n; k++)
        {
            int i = _order[k];
            float pi = probs[i];
            _ps[k] = pi; _ys[k] = (byte)labels[i]; _gs[k] = Code[i];
            if (_thrs is not null) _thrs[k] = sampleThreshold![i];
            _bce[k] = !(pi >= 0f && pi <= 1f) ? float.NaN
                : labels[i] == 1 ? -MathF.Max(MathF.Log(pi), -100f) : -MathF.Max(MathF.Log(1f - pi), -100f);
            double x = pi;
            if (!(x >= 0 && x <= 1)) { _unitBin[k] = -1; continue; }
            // number of interior edges k·(1/B), k = 1..B−1, that are ≤ x (Core's fixed bins)
            int b = Math.Min((int)(x * bins), bins - 1);
            while (b > 0 && x < b * step) b--;
            while (b < bins - 1 && x >= (b + 1) * step) b++;
            _unitBin[k] = (short)b;
        }
    }

    // Per-thread gather buffer: a fresh 400 KB array per resample would land on the large-object heap every time.
    [ThreadStatic] private static int[]? t_scratch;

    /// <summary>Evaluates under weights indexed like the input samples.</summary>
    public ClassificationReport Evaluate(int[] w)
    {
        if (w.Length != _ps.Length) throw new ArgumentException($"{w.Length} weights for {_ps.Length} samples.", nameof(w));
        var ws = t_scratch is { } buf && buf.Length == w.Length ? buf : t_scratch = new int[w.Length];
        for (int k = 0; k < ws.Length; k++) ws[k] = w[_order[k]];
        return EvaluateSorted(ws);
    }

    private sealed class Acc
    {
        public long Pos, Neg, TwiceU, Tp, Fp, Tn, Fn, Tp5, Fp5, Tn5, Fn5;
        public double Bce;
        public int BceBad = -1, EceBad = -1;
        public double[] SumP = null!, SumY = null!;
        public long[] Cnt = null!;
        public float Min = float.NaN, Max = float.NaN;
        public double[]? Edges;
    }

    private ClassificationReport EvaluateSorted(int[] ws)
    {
        double thr;
        UndefinedReason? fallback = null;
        if (_threshold is double t) thr = t;
        else
        {
            var chosen = Choose(ws);
            if (chosen.IsDefined) thr = chosen.Value;
            else { thr = 0.5; fallback = chosen.Reason; }
        }
        int kG = GroupNames.Length, bins = Options.EceBins, n = _ps.Length;
        bool reference = Options.Mode == MetricsMode.Reference;
        var acc = new Acc[kG + 1]; // kG = overall
        for (int g = 0; g <= kG; g++) acc[g] = new Acc { SumP = new double[bins], SumY = new double[bins], Cnt = new long[bins] };
        if (reference)
        {
            // data range of this draw per group: the first and last present positions
            for (int k = 0; k < n; k++)
                if (ws[k] > 0) { var a = acc[_gs[k]]; if (float.IsNaN(a.Min)) a.Min = _ps[k]; if (float.IsNaN(acc[kG].Min)) acc[kG].Min = _ps[k]; }
            for (int k = n - 1; k >= 0; k--)
                if (ws[k] > 0) { var a = acc[_gs[k]]; if (float.IsNaN(a.Max)) a.Max = _ps[k]; if (float.IsNaN(acc[kG].Max)) acc[kG].Max = _ps[k]; }
            foreach (var a in acc) if (!float.IsNaN(a.Min)) a.Edges = Core.PandasCutEdges(a.Min, a.Max, bins);
        }
        // Hot loop over positions in score order, branch-free on label and prediction. Group g and the overall set
        // (index kG) accumulate side by side in flat arrays; a tie block ends when the score changes.
        int m = kG + 1;
        var blockA = new long[m]; var blockB = new long[m];
        var pos = new long[m]; var neg = new long[m]; var twiceU = new long[m];
        var tp = new long[m]; var fp = new long[m]; var tp5 = new long[m]; var fp5 = new long[m];
        var bceSum = new double[m];
        var sumP = new double[m * bins]; var sumY = new double[m * bins]; var cnt = new long[m * bins];
        var binOf = new int[m];
        var touched = new int[m]; var isTouched = new bool[m]; int nTouched = 0;
        float cur = float.NaN;
        for (int k = 0; k < n; k++)
        {
            int wi = ws[k];
            if (wi == 0) continue;
            float v = _ps[k];
            if (v != cur)
            {
                for (int t2 = 0; t2 < nTouched; t2++)
                {
                    int q = touched[t2];
                    twiceU[q] += blockA[q] * (2 * neg[q] + blockB[q]);
                    pos[q] += blockA[q]; neg[q] += blockB[q];
                    blockA[q] = blockB[q] = 0; isTouched[q] = false;
                }
                nTouched = 0;
                cur = v;
            }
            int g = _gs[k];
            long y1 = _ys[k] * (long)wi, y0 = wi - y1;
            long pp = (_thrs is null ? v > thr : v > _thrs[k]) ? 1 : 0;
            long pp5 = v > 0.5 ? 1 : 0;
            if (!isTouched[g]) { isTouched[g] = true; touched[nTouched++] = g; }
            if (!isTouched[kG]) { isTouched[kG] = true; touched[nTouched++] = kG; }
            blockA[g] += y1; blockB[g] += y0; blockA[kG] += y1; blockB[kG] += y0;
            tp[g] += pp * y1; fp[g] += pp * y0; tp[kG] += pp * y1; fp[kG] += pp * y0;
            tp5[g] += pp5 * y1; fp5[g] += pp5 * y0; tp5[kG] += pp5 * y1; fp5[kG] += pp5 * y0;
            float term = _bce[k];
            if (float.IsNaN(term))
            {
                if (acc[g].BceBad < 0) acc[g].BceBad = _order[k];
                if (acc[kG].BceBad < 0) acc[kG].BceBad = _order[k];
            }
            else { double tw = (double)term * wi; bceSum[g] += tw; bceSum[kG] += tw; }
            double vw = (double)v * wi;
            if (reference)
            {
                foreach (int q in (ReadOnlySpan<int>)[g, kG])
                {
                    var e = acc[q].Edges!;
                    while (binOf[q] < bins - 1 && v > e[binOf[q] + 1]) binOf[q]++; // ascending: edges[b] < x ≤ edges[b+1]
                    int j = q * bins + binOf[q];
                    sumP[j] += vw; sumY[j] += y1; cnt[j] += wi;
                }
            }
            else
            {
                int b = _unitBin[k];
                if (b < 0)
                {
                    if (acc[g].EceBad < 0) acc[g].EceBad = _order[k];
                    if (acc[kG].EceBad < 0) acc[kG].EceBad = _order[k];
                    continue;
                }
                int jg = g * bins + b, jo = kG * bins + b;
                sumP[jg] += vw; sumY[jg] += y1; cnt[jg] += wi;
                sumP[jo] += vw; sumY[jo] += y1; cnt[jo] += wi;
            }
        }
        for (int t2 = 0; t2 < nTouched; t2++)
        {
            int q = touched[t2];
            twiceU[q] += blockA[q] * (2 * neg[q] + blockB[q]);
            pos[q] += blockA[q]; neg[q] += blockB[q];
        }
        for (int q = 0; q < m; q++)
        {
            var a = acc[q];
            a.Pos = pos[q]; a.Neg = neg[q]; a.TwiceU = twiceU[q];
            a.Tp = tp[q]; a.Fn = pos[q] - tp[q]; a.Fp = fp[q]; a.Tn = neg[q] - fp[q];
            a.Tp5 = tp5[q]; a.Fn5 = pos[q] - tp5[q]; a.Fp5 = fp5[q]; a.Tn5 = neg[q] - fp5[q];
            a.Bce = bceSum[q];
            Array.Copy(sumP, q * bins, a.SumP, 0, bins); Array.Copy(sumY, q * bins, a.SumY, 0, bins); Array.Copy(cnt, q * bins, a.Cnt, 0, bins);
        }
        var overall = Report("overall", acc[kG]);
        var reports = new GroupReport[kG];
        for (int g = 0; g < kG; g++) reports[g] = Report(GroupNames[g], acc[g]);
        return new ClassificationReport(thr, Options.Mode, overall, reports, Summaries.Classification(overall, reports),
            thresholdFromCaller: _threshold is not null, thresholdFallbackReason: fallback);
    }

    private MetricValue Choose(int[] ws)
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
        for (int k = 0; k < ws.Length; k++) { if (_ys[k] == 1) totalPos += ws[k]; else totalNeg += ws[k]; }
        if (totalPos + totalNeg == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        if (Options.Rule == ThresholdRule.BestF1 && totalPos == 0)
            return MetricValue.Undefined(UndefinedReason.NoPositives, "best-F1 threshold needs at least one positive label");
        if (Options.Rule == ThresholdRule.Youden && (totalPos == 0 || totalNeg == 0))
            return MetricValue.Undefined(totalPos == 0 ? UndefinedReason.NoPositives : UndefinedReason.NoNegatives, "Youden's J needs both classes");
        if (Options.Rule == ThresholdRule.FixedSpecificity && totalNeg == 0)
            return MetricValue.Undefined(UndefinedReason.NoNegatives, "a specificity target needs negatives");

        // Walk distinct (present) scores from the top. tp/fp: counts with score ≥ current value (PR curve);
        // tpAbove/fpAbove: counts strictly above it (the strict '>' rules).
        long tp = 0, fp = 0;
        double best = double.NegativeInfinity, bestThr = double.NaN;
        bool first = true;
        int idx = _ps.Length - 1;
        while (idx >= 0)
        {
            float v = _ps[idx];
            long a = 0, b = 0;
            for (; idx >= 0 && _ps[idx] == v; idx--)
            {
                if (_ys[idx] == 1) a += ws[idx]; else b += ws[idx];
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

    private GroupReport Report(string name, Acc a)
    {
        long n = a.Pos + a.Neg;
        MetricValue auc = n == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup)
            : a.Pos == 0 ? MetricValue.Undefined(UndefinedReason.NoPositives, "AUC needs both classes; all labels are 0")
            : a.Neg == 0 ? MetricValue.Undefined(UndefinedReason.NoNegatives, "AUC needs both classes; all labels are 1")
            : MetricValue.Of(a.TwiceU / (2.0 * a.Pos * a.Neg));
        MetricValue bce = n == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup)
            : a.BceBad >= 0 ? MetricValue.Undefined(UndefinedReason.UndefinedInput, $"BCE needs probabilities in [0, 1]; p[{a.BceBad}] is not")
            : MetricValue.Of((float)(a.Bce / n));
        var at = new ConfusionCounts(checked((int)a.Tp), checked((int)a.Fp), checked((int)a.Tn), checked((int)a.Fn));
        var half = new ConfusionCounts(checked((int)a.Tp5), checked((int)a.Fp5), checked((int)a.Tn5), checked((int)a.Fn5));
        var values = new Dictionary<string, MetricValue>(GroupReport.Keys.Count, StringComparer.Ordinal)
        {
            ["auc"] = auc,
            ["acc"] = at.Accuracy,
            ["acc@0.5"] = half.Accuracy,
            ["bce"] = bce,
            ["ece"] = Ece(a, n),
        };
        ClassificationMetrics.AddRates(values, at, "");
        ClassificationMetrics.AddRates(values, half, "@0.5");
        return new GroupReport(name, new GroupCounts(checked((int)n), checked((int)a.Pos), checked((int)a.Neg)), values);
    }

    private MetricValue Ece(Acc a, long n)
    {
        if (n == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        int bins = Options.EceBins;
        if (Options.Mode == MetricsMode.Default)
        {
            if (a.EceBad >= 0)
                return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"ECE over [0, 1] bins needs probabilities; p[{a.EceBad}] is not");
            double total = 0;
            for (int b = 0; b < bins; b++) total += Math.Abs(a.SumP[b] - a.SumY[b]);
            return MetricValue.Of(total / n);
        }
        double num = 0, den = 0;
        for (int b = 0; b < bins; b++)
        {
            if (a.Cnt[b] == 0) continue;
            double wgt = (double)a.Cnt[b] / n;
            num += Math.Abs(a.SumP[b] / a.Cnt[b] - a.SumY[b] / a.Cnt[b]) * wgt;
            den += wgt;
        }
        return MetricValue.Of(num / den);
    }
}
