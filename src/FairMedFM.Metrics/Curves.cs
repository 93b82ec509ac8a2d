namespace FairMedFM.Metrics;

/// <summary>Confusion counts at a threshold; a sample is predicted positive iff its score is strictly greater than the
/// threshold (FairMedFM's <c>pred &gt; threshold</c>).</summary>
public readonly record struct ConfusionCounts(int Tp, int Fp, int Tn, int Fn)
{
    public int N => Tp + Fp + Tn + Fn;
    public int Positives => Tp + Fn;
    public int Negatives => Tn + Fp;

    public MetricValue Accuracy => N == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup) : MetricValue.Of((double)(Tp + Tn) / N);
    /// <summary>TP / (TP + FN); undefined (no positives) when there is no positive label.</summary>
    public MetricValue Tpr => Positives == 0 ? MetricValue.Undefined(UndefinedReason.NoPositives) : MetricValue.Of((double)Tp / Positives);
    /// <summary>TN / (TN + FP); undefined (no negatives) when there is no negative label.</summary>
    public MetricValue Tnr => Negatives == 0 ? MetricValue.Undefined(UndefinedReason.NoNegatives) : MetricValue.Of((double)Tn / Negatives);
    /// <summary>FP / (FP + TN); undefined (no negatives) when there is no negative label.</summary>
    public MetricValue Fpr => Negatives == 0 ? MetricValue.Undefined(UndefinedReason.NoNegatives) : MetricValue.Of((double)Fp / Negatives);
    /// <summary>FN / (FN + TP); undefined (no positives) when there is no positive label.</summary>
    public MetricValue Fnr => Positives == 0 ? MetricValue.Undefined(UndefinedReason.NoPositives) : MetricValue.Of((double)Fn / Positives);
    /// <summary>Precision TP / (TP + FP); undefined (no predicted positives) when nothing is predicted positive.</summary>
    public MetricValue Ppv => Tp + Fp == 0 ? MetricValue.Undefined(UndefinedReason.NoPredictedPositives) : MetricValue.Of((double)Tp / (Tp + Fp));
    /// <summary>Selection rate (TP + FP) / N, the share predicted positive (demographic parity compares it across groups).</summary>
    public MetricValue SelectionRate => N == 0 ? MetricValue.Undefined(UndefinedReason.EmptyGroup) : MetricValue.Of((double)(Tp + Fp) / N);
}

/// <summary>
/// scikit-learn's <c>precision_recall_curve</c> (1.1 – 1.3, no intermediate points dropped): one point per distinct
/// score, thresholds ascending, a sample predicted positive iff score ≥ threshold; then a final point
/// (precision 1, recall 0) with no threshold. <see cref="F1"/> is FairMedFM's <c>2·P·R / (P + R + 1e-8)</c> per point.
/// </summary>
/// <remarks>Recall is 1 everywhere when there is no positive label (sklearn's convention).</remarks>
public sealed record PrecisionRecallCurve(double[] Precision, double[] Recall, double[] Thresholds, double[] F1);

/// <summary>
/// scikit-learn's <c>roc_curve(drop_intermediate=False)</c>: a first vertex (0, 0) with threshold +∞, then one vertex per
/// distinct score, thresholds descending, a sample predicted positive iff score ≥ threshold.
/// </summary>
public sealed record RocCurve(double[] Fpr, double[] Tpr, double[] Thresholds);
