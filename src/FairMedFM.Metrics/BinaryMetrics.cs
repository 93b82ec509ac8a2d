using FairMedFM.Metrics.Internal;

namespace FairMedFM.Metrics;

/// <summary>
/// Binary-classification building blocks. Scores are P(y = 1) (column 1 of a softmax), labels are 0/1.
/// Labels outside {0, 1} and length mismatches throw <see cref="ArgumentException"/>; a metric that cannot be computed
/// on valid input is returned as a typed undefined <see cref="MetricValue"/>.
/// </summary>
public static class BinaryMetrics
{
    /// <summary>
    /// ROC AUC as the Mann–Whitney statistic with mid-ranks (a positive tied with a negative counts ½), exact up to the
    /// final division; O(n log n). Equals sklearn's <c>roc_auc_score</c>.
    /// </summary>
    /// <returns>Undefined with <see cref="UndefinedReason.NoPositives"/> / <see cref="UndefinedReason.NoNegatives"/> when only
    /// one class is present, <see cref="UndefinedReason.EmptyGroup"/> when empty, <see cref="UndefinedReason.UndefinedInput"/>
    /// for a NaN score.</returns>
    public static MetricValue RocAuc(ReadOnlySpan<float> p, ReadOnlySpan<int> y) => RocAucImpl(p, y);

    /// <inheritdoc cref="RocAuc(ReadOnlySpan{float}, ReadOnlySpan{int})"/>
    public static MetricValue RocAuc(ReadOnlySpan<double> p, ReadOnlySpan<int> y) => RocAucImpl(p, y);

    private static MetricValue RocAucImpl<T>(ReadOnlySpan<T> p, ReadOnlySpan<int> y) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        int nan = Core.FirstNaN(p);
        if (nan >= 0) return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"NaN score at index {nan}");
        return Core.AucSorted(p, y, Core.SortAscending(p));
    }

    /// <summary>sklearn <c>roc_curve(y, p, drop_intermediate=False)</c> vertices (see <see cref="Metrics.RocCurve"/>).</summary>
    /// <exception cref="ArgumentException">Only one class, empty input, or a NaN score (use <see cref="RocAuc(ReadOnlySpan{float}, ReadOnlySpan{int})"/>
    /// for a typed result).</exception>
    public static RocCurve RocCurve(ReadOnlySpan<float> p, ReadOnlySpan<int> y)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        RequireNoNaN(p);
        var (thr, tp, fp) = Core.DescendingCurve(p, y, Core.SortAscending(p));
        int m = thr.Length;
        long pos = m == 0 ? 0 : tp[m - 1], neg = m == 0 ? 0 : fp[m - 1];
        if (pos == 0 || neg == 0)
            throw new ArgumentException("A ROC curve needs both classes.", nameof(y));
        var fpr = new double[m + 1];
        var tpr = new double[m + 1];
        var thresholds = new double[m + 1];
        thresholds[0] = double.PositiveInfinity;
        for (int k = 0; k < m; k++)
        {
            fpr[k + 1] = (double)fp[k] / neg;
            tpr[k + 1] = (double)tp[k] / pos;
            thresholds[k + 1] = thr[k];
        }
        return new RocCurve(fpr, tpr, thresholds);
    }

    /// <summary>sklearn <c>precision_recall_curve(y, p)</c> plus FairMedFM's per-point F1 (see <see cref="Metrics.PrecisionRecallCurve"/>).</summary>
    /// <exception cref="ArgumentException">Empty input or a NaN score.</exception>
    public static PrecisionRecallCurve PrecisionRecall(ReadOnlySpan<float> p, ReadOnlySpan<int> y)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        RequireNoNaN(p);
        if (p.Length == 0) throw new ArgumentException("A precision-recall curve needs at least one sample.", nameof(p));
        return Core.PrCurveSorted(p, y, Core.SortAscending(p));
    }

    /// <summary>
    /// Average precision as scikit-learn's <c>average_precision_score</c>: Σ_k (R_k − R_{k−1})·P_k over the PR curve's
    /// distinct-score thresholds (no interpolation).
    /// </summary>
    /// <returns>Undefined (no positives) without a positive label — sklearn returns −0.0 with a warning — and undefined (no
    /// negatives) without a negative label: the ranking is then uninformative and sklearn's 1.0 would not depend on the
    /// scores at all (scikit-learn#30615). Empty: <see cref="UndefinedReason.EmptyGroup"/>; NaN score: undefined input.</returns>
    public static MetricValue AveragePrecision(ReadOnlySpan<float> p, ReadOnlySpan<int> y)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        if (p.Length == 0) return MetricValue.Undefined(UndefinedReason.EmptyGroup);
        int nan = Core.FirstNaN(p);
        if (nan >= 0) return MetricValue.Undefined(UndefinedReason.UndefinedInput, $"NaN score at index {nan}");
        int pos = 0;
        foreach (int v in y) pos += v;
        if (pos == 0) return MetricValue.Undefined(UndefinedReason.NoPositives, "average precision needs a positive label");
        if (pos == y.Length) return MetricValue.Undefined(UndefinedReason.NoNegatives, "average precision without negatives is 1 whatever the scores");
        var c = Core.PrCurveSorted(p, y, Core.SortAscending(p));
        // ascending thresholds: recall decreases with k; AP = −Σ_k (R_{k+1} − R_k)·P_k
        double ap = 0;
        for (int k = 0; k < c.Thresholds.Length; k++) ap -= (c.Recall[k + 1] - c.Recall[k]) * c.Precision[k];
        return MetricValue.Of(ap);
    }

    /// <summary>
    /// Binary cross-entropy as torch <c>nn.BCELoss()</c> (mean): per-sample log clamped at −100, float32 arithmetic, result
    /// rounded to float32 as the legacy <c>loss.item()</c>.
    /// </summary>
    /// <returns>Undefined (<see cref="UndefinedReason.UndefinedInput"/>) if a probability is NaN or outside [0, 1] (torch
    /// raises); <see cref="UndefinedReason.EmptyGroup"/> when empty.</returns>
    public static MetricValue Bce(ReadOnlySpan<float> p, ReadOnlySpan<int> y)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        return Core.Bce(p, y, Core.Identity(p.Length));
    }

    /// <summary>
    /// Expected calibration error, L1 variant, confidence = P(y = 1), with <paramref name="bins"/> equal-width bins:
    /// Σ_k (n_k / N)·|mean p_k − mean y_k| over non-empty bins.
    /// <list type="bullet">
    /// <item><see cref="MetricsMode.Reference"/>: FairMedFM's <c>pandas.cut</c> over the data range of <paramref name="p"/>
    /// (spec §6.2): right-closed bins between min and max, first edge lowered by 0.1 % of the range (±0.1 % around a
    /// constant value); float32 means as pandas computes them.</item>
    /// <item><see cref="MetricsMode.Default"/>: fixed bins over [0, 1], each [k/B, (k+1)/B) with the last closed [(B−1)/B, 1];
    /// bin edges are numpy linspace values k·(1/B). Probabilities must be in [0, 1].</item>
    /// </list>
    /// </summary>
    /// <returns>Undefined (<see cref="UndefinedReason.EmptyGroup"/>) when empty; (<see cref="UndefinedReason.UndefinedInput"/>)
    /// for a NaN, or in Default mode a value outside [0, 1].</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bins"/> &lt; 1.</exception>
    public static MetricValue Ece(ReadOnlySpan<float> p, ReadOnlySpan<int> y, int bins, MetricsMode mode)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        return Core.Ece(p, y, Core.Identity(p.Length), bins, mode);
    }

    /// <summary>As <see cref="Ece(ReadOnlySpan{float}, ReadOnlySpan{int}, int, MetricsMode)"/> for float64 scores (Reference
    /// mode then averages in float64, as pandas would for a float64 column).</summary>
    public static MetricValue Ece(ReadOnlySpan<double> p, ReadOnlySpan<int> y, int bins, MetricsMode mode)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        return Core.Ece(p, y, Core.Identity(p.Length), bins, mode);
    }

    /// <summary>Confusion counts with prediction positive iff <c>p &gt; threshold</c> (strict, as FairMedFM), compared in double.</summary>
    /// <exception cref="ArgumentException">A NaN score or NaN threshold.</exception>
    public static ConfusionCounts Confusion(ReadOnlySpan<float> p, ReadOnlySpan<int> y, double threshold)
    {
        Check.SameLength(p.Length, y.Length);
        Check.BinaryLabels(y);
        RequireNoNaN(p);
        if (double.IsNaN(threshold)) throw new ArgumentException("The threshold is NaN.", nameof(threshold));
        return Core.Confusion(p, y, Core.Identity(p.Length), threshold);
    }

    internal static void RequireNoNaN(ReadOnlySpan<float> p)
    {
        int nan = Core.FirstNaN(p);
        if (nan >= 0) throw new ArgumentException($"probs[{nan}] is NaN.", "probs");
    }
}
