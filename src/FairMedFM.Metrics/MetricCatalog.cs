namespace FairMedFM.Metrics;

/// <summary>Which way is fairer / better.</summary>
public enum MetricDirection
{
    /// <summary>Larger values are better (utility) or fairer (ratios, scores, equity-scaled values).</summary>
    HigherIsBetter,
    /// <summary>Smaller values are better (losses, error rates) or fairer (gaps).</summary>
    LowerIsBetter,
    /// <summary>Descriptive: no better direction (confusion counts, selection rate).</summary>
    Neither,
}

/// <summary>What kind of quantity a metric is.</summary>
public enum MetricKind
{
    /// <summary>Performance of one group or of all samples (AUC, accuracy, BCE, ECE, TPR, Dice, …), and worst-group values.</summary>
    Utility,
    /// <summary>max − min (or |a − b|) of a per-group metric over groups: 0 = equal.</summary>
    Gap,
    /// <summary>min / max of a per-group metric over groups: 1 = equal.</summary>
    Ratio,
    /// <summary>A fairness score where 1 = equal (FairMedFM's eod), or a spread statistic (Dice skewness, std).</summary>
    Score,
    /// <summary>Utility scaled down by disparity: overall / (1 + disparity).</summary>
    EquityScaled,
    /// <summary>A count (confusion-matrix cells).</summary>
    Count,
}

/// <summary>Whether a metric is computed per group (and overall) or summarises the groups.</summary>
public enum MetricScope
{
    PerGroup,
    Summary,
    /// <summary>Per segmentation sample, then averaged per group.</summary>
    PerSample,
}

/// <param name="Key">The key used in reports (FairMedFM's name where FairMedFM has one).</param>
/// <param name="PaperName">The name in the FairMedFM paper / project page or the source that defines it, when there is one.</param>
public sealed record MetricInfo(string Key, MetricScope Scope, MetricKind Kind, MetricDirection Direction, string Description, string? PaperName = null);

/// <summary>
/// Every metric the library reports, with its direction and kind. Threshold-dependent per-group keys also exist with the
/// suffix "@0.5" (the same metric at the fixed threshold 0.5, as FairMedFM reports both); <see cref="Get"/> resolves them.
/// </summary>
public static class MetricCatalog
{
    private const MetricDirection Up = MetricDirection.HigherIsBetter, Down = MetricDirection.LowerIsBetter, None = MetricDirection.Neither;

    public static IReadOnlyList<MetricInfo> All { get; } =
    [
        // classification, per group and overall
        new("auc", MetricScope.PerGroup, MetricKind.Utility, Up, "ROC AUC (Mann–Whitney, ties ½); threshold-free", "AUC"),
        new("acc", MetricScope.PerGroup, MetricKind.Utility, Up, "accuracy (TP + TN) / N at the decision threshold, positive iff p > t"),
        new("bce", MetricScope.PerGroup, MetricKind.Utility, Down, "binary cross-entropy, torch BCELoss (log clamped at −100)"),
        new("ece", MetricScope.PerGroup, MetricKind.Utility, Down, "expected calibration error, L1, confidence = P(y = 1); bins per mode", "ECE"),
        new("tpr", MetricScope.PerGroup, MetricKind.Utility, Up, "sensitivity TP / (TP + FN)"),
        new("tnr", MetricScope.PerGroup, MetricKind.Utility, Up, "specificity TN / (TN + FP)"),
        new("fpr", MetricScope.PerGroup, MetricKind.Utility, Down, "false-positive rate FP / (FP + TN)"),
        new("fnr", MetricScope.PerGroup, MetricKind.Utility, Down, "false-negative rate FN / (FN + TP)"),
        new("ppv", MetricScope.PerGroup, MetricKind.Utility, Up, "precision TP / (TP + FP); undefined with no predicted positive"),
        new("selection-rate", MetricScope.PerGroup, MetricKind.Utility, None, "share predicted positive (TP + FP) / N"),
        new("tp", MetricScope.PerGroup, MetricKind.Count, None, "true positives"),
        new("fp", MetricScope.PerGroup, MetricKind.Count, None, "false positives"),
        new("tn", MetricScope.PerGroup, MetricKind.Count, None, "true negatives"),
        new("fn", MetricScope.PerGroup, MetricKind.Count, None, "false negatives"),
        // classification summaries (FairMedFM organize_results names first)
        new("overall-auc", MetricScope.Summary, MetricKind.Utility, Up, "AUC of all samples", "AUC"),
        new("overall-acc", MetricScope.Summary, MetricKind.Utility, Up, "accuracy of all samples at the decision threshold"),
        new("overall-bce", MetricScope.Summary, MetricKind.Utility, Down, "BCE of all samples"),
        new("overall-ece", MetricScope.Summary, MetricKind.Utility, Down, "ECE of all samples", "ECE"),
        new("worst-auc", MetricScope.Summary, MetricKind.Utility, Up, "min over groups of the group AUC", "AUC_min"),
        new("auc-gap", MetricScope.Summary, MetricKind.Gap, Down, "max − min over groups of the group AUC", "ΔAUC"),
        new("acc-gap", MetricScope.Summary, MetricKind.Gap, Down, "max − min over groups of the group accuracy"),
        new("bce-gap", MetricScope.Summary, MetricKind.Gap, Down, "max − min over groups of the group BCE"),
        new("ece-gap", MetricScope.Summary, MetricKind.Gap, Down, "max − min over groups of the group ECE", "ECE_Δ"),
        new("eod", MetricScope.Summary, MetricKind.Score, Up, "FairMedFM's equalized-odds score 1 − (ΔTPR + ΔTNR)/2 (1 = equal); = 1 − eqodds-diff-mean", "EqOdds"),
        new("eo", MetricScope.Summary, MetricKind.Gap, Down, "FairMedFM's eo: ΔTPR = max − min of the group TPR (equal-opportunity difference)"),
        new("worst-acc", MetricScope.Summary, MetricKind.Utility, Up, "min over groups of the group accuracy"),
        new("dp-diff", MetricScope.Summary, MetricKind.Gap, Down, "demographic-parity difference: max − min of the group selection rate (fairlearn)"),
        new("dp-ratio", MetricScope.Summary, MetricKind.Ratio, Up, "demographic-parity ratio: min / max of the group selection rate (fairlearn)"),
        new("eqodds-diff", MetricScope.Summary, MetricKind.Gap, Down, "equalized-odds difference, worst case: max(ΔTPR, ΔFPR) (fairlearn agg='worst_case')"),
        new("eqodds-diff-mean", MetricScope.Summary, MetricKind.Gap, Down, "equalized-odds difference, mean: (ΔTPR + ΔFPR)/2 (fairlearn agg='mean')"),
        new("eqodds-ratio", MetricScope.Summary, MetricKind.Ratio, Up, "equalized-odds ratio, worst case: min(TPR ratio, FPR ratio), ratio = min/max over groups"),
        new("eqodds-ratio-mean", MetricScope.Summary, MetricKind.Ratio, Up, "equalized-odds ratio, mean of the TPR and FPR ratios"),
        new("eopp-diff", MetricScope.Summary, MetricKind.Gap, Down, "equal-opportunity difference ΔTPR (same value as eo, under the fairlearn-style name)"),
        new("auc-es", MetricScope.Summary, MetricKind.EquityScaled, Up, "AUC_ES, std form: overall AUC / (1 + population std of group AUCs) (FairMedFM fork)", "AUC_ES"),
        new("auc-es-fairclip", MetricScope.Summary, MetricKind.EquityScaled, Up, "AUC_ES, sum form: overall AUC / (1 + Σ_g |AUC − AUC_g|) (Harvard FairSeg / FairCLIP)", "ES-AUC"),
        new("acc-es", MetricScope.Summary, MetricKind.EquityScaled, Up, "ES-accuracy, std form: overall accuracy / (1 + population std of group accuracies)"),
        new("acc-es-fairclip", MetricScope.Summary, MetricKind.EquityScaled, Up, "ES-accuracy, sum form: overall accuracy / (1 + Σ_g |ACC − ACC_g|) (FairCLIP)", "ES-ACC"),
        // segmentation, per sample
        new("dice", MetricScope.PerSample, MetricKind.Utility, Up, "standard binary Dice 2|A∩B| / (|A| + |B|) over all pixels", "DSC"),
        new("dice-ref", MetricScope.PerSample, MetricKind.Utility, Up, "FairMedFM's Dice: logits ≥ 0.5, image column 0 deleted (torchmetrics ignore_index=0), micro Dice, 0 if 0/0", "DSC"),
        new("iou", MetricScope.PerSample, MetricKind.Utility, Up, "Jaccard |A∩B| / |A∪B|", "IoU"),
        new("hd95", MetricScope.PerSample, MetricKind.Utility, Down, "95th percentile of the pooled symmetric surface distances, pixels", "HD95"),
        // segmentation summaries (FairMedFM evaluate_seg names, for m in dice, dice-ref, iou, hd95)
        new("mean_{m}", MetricScope.Summary, MetricKind.Utility, Up, "mean over all samples (down for hd95)", "DSC"),
        new("min_{m}", MetricScope.Summary, MetricKind.Utility, Up, "smallest group mean (for dice/iou the worst group)"),
        new("max_{m}", MetricScope.Summary, MetricKind.Utility, Up, "largest group mean"),
        new("delta_{m}", MetricScope.Summary, MetricKind.Gap, Down, "max − min of the group means", "ΔDSC"),
        new("skewness_{m}", MetricScope.Summary, MetricKind.Score, Down, "(1 − min) / (1 − max) of the group means (dice/iou only; 1 = equal)", "DSC skewness"),
        new("std_{m}", MetricScope.Summary, MetricKind.Gap, Down, "population std of the group means"),
        new("es_{m}", MetricScope.Summary, MetricKind.EquityScaled, Up, "mean / (1 + std of the group means) (dice/iou only)", "DSC_ES"),
    ];

    private static readonly Dictionary<string, MetricInfo> ByKey = All.ToDictionary(m => m.Key, StringComparer.Ordinal);

    /// <summary>The catalogue entry of a report key: "acc@0.5" resolves to "acc"; segmentation summaries such as
    /// "es_iou" resolve to the "es_{m}" entry (hd95 summaries get the lower-is-better direction). Null if unknown.</summary>
    public static MetricInfo? Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (ByKey.TryGetValue(key, out var m)) return m;
        if (key.EndsWith("@0.5", StringComparison.Ordinal) && ByKey.TryGetValue(key[..^4], out var t))
            return t with { Key = key, Description = t.Description + " (at threshold 0.5)" };
        int u = key.IndexOf('_');
        if (u > 0 && ByKey.TryGetValue(key[..u] + "_{m}", out var s))
        {
            var metric = key[(u + 1)..];
            if (!SegmentationMetricNames.Contains(metric)) return null;
            var dir = s.Direction;
            if (metric == "hd95" && s.Kind == MetricKind.Utility) dir = MetricDirection.LowerIsBetter;
            if (metric == "hd95" && s.Kind is MetricKind.EquityScaled || metric == "hd95" && s.Key == "skewness_{m}") return null;
            return s with { Key = key, Direction = dir };
        }
        return null;
    }

    /// <summary>Per-sample segmentation metrics that the summaries accept.</summary>
    public static IReadOnlyList<string> SegmentationMetricNames { get; } = ["dice", "dice-ref", "iou", "hd95"];
}
