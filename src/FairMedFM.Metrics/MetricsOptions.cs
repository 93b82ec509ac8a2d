namespace FairMedFM.Metrics;

/// <summary>Which semantics <see cref="ClassificationMetrics.Evaluate"/> follows.</summary>
public enum MetricsMode
{
    /// <summary>
    /// The port's own semantics: the decision threshold comes from the caller (chosen on validation and frozen for test)
    /// or is chosen on the evaluated set by <see cref="MetricsOptions.Rule"/>; ECE uses fixed equal-width bins over [0, 1].
    /// </summary>
    Default,
    /// <summary>
    /// Reproduces FairMedFM's <c>evaluate_binary</c>/<c>organize_results</c> numbers: best-F1 threshold chosen on the
    /// evaluated set itself, ECE bins over each group's own data range (pandas.cut).
    /// </summary>
    Reference,
}

/// <summary>How a decision threshold is chosen from scores and labels.</summary>
public enum ThresholdRule
{
    /// <summary>Always 0.5.</summary>
    Fixed,
    /// <summary>FairMedFM's <c>find_threshold</c>: the lowest PR-curve threshold with maximal F1.</summary>
    BestF1,
    /// <summary>Youden's J: the threshold maximising TPR − FPR under the same strict '&gt;' rule used for the counts.</summary>
    Youden,
    /// <summary>The lowest distinct score t whose specificity (TNR with positive iff p &gt; t) is at least
    /// <see cref="MetricsOptions.TargetSpecificity"/>: the most sensitive operating point meeting the specificity target.</summary>
    FixedSpecificity,
}

/// <param name="Mode">Default or Reference semantics.</param>
/// <param name="Rule">Threshold rule used when no threshold is passed (Reference mode requires <see cref="ThresholdRule.BestF1"/>).</param>
/// <param name="EceBins">Number of ECE bins (FairMedFM: 10).</param>
/// <param name="TargetSpecificity">Specificity target of <see cref="ThresholdRule.FixedSpecificity"/>, in (0, 1].</param>
public sealed record MetricsOptions(MetricsMode Mode = MetricsMode.Default, ThresholdRule Rule = ThresholdRule.BestF1, int EceBins = 10,
    double TargetSpecificity = 0.9);
