namespace FairMedFM.Metrics;

/// <summary>Sample counts of a group.</summary>
public sealed record GroupCounts(int N, int Positives, int Negatives);

/// <summary>Metrics of one group, or of all samples ("overall").</summary>
public sealed class GroupReport
{
    /// <summary>Keys of <see cref="Values"/> in the order they are filled.
    /// Threshold-dependent keys without a suffix are at <see cref="ClassificationReport.Threshold"/>; keys ending in
    /// "@0.5" are at 0.5 (FairMedFM reports both). "auc", "bce", "ece" are threshold-free.</summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        "auc", "acc", "acc@0.5", "bce", "ece",
        "tpr", "tnr", "fpr", "fnr", "tp", "fp", "tn", "fn", "ppv", "selection-rate",
        "tpr@0.5", "tnr@0.5", "fpr@0.5", "fnr@0.5", "tp@0.5", "fp@0.5", "tn@0.5", "fn@0.5", "ppv@0.5", "selection-rate@0.5",
    ];

    public GroupReport(string group, GroupCounts counts, IReadOnlyDictionary<string, MetricValue> values)
    {
        Group = group ?? throw new ArgumentNullException(nameof(group));
        Counts = counts ?? throw new ArgumentNullException(nameof(counts));
        Values = values ?? throw new ArgumentNullException(nameof(values));
    }

    /// <summary>Group label ("overall" for all samples).</summary>
    public string Group { get; }

    public GroupCounts Counts { get; }

    /// <summary>See <see cref="Keys"/>. An undefined entry carries its reason (e.g. AUC of a single-class group).</summary>
    public IReadOnlyDictionary<string, MetricValue> Values { get; }

    public MetricValue this[string key] => Values[key];

    public override string ToString() =>
        $"{Group} (n={Counts.N}, pos={Counts.Positives}): auc {Show("auc")}, acc {Show("acc")}";

    private string Show(string key) => Values.TryGetValue(key, out var v) ? v.ToString() : "n/a";
}

/// <summary>Result of <see cref="ClassificationMetrics.Evaluate"/>.</summary>
public sealed class ClassificationReport
{
    /// <summary>Keys of <see cref="Summary"/> (FairMedFM's <c>organize_results</c> names).</summary>
    public static IReadOnlyList<string> SummaryKeys { get; } =
    [
        "overall-auc", "overall-acc", "overall-bce", "overall-ece",
        "worst-auc", "auc-gap", "acc-gap", "bce-gap", "ece-gap", "eod", "eo",
        // beyond FairMedFM's organize_results (see MetricCatalog for definitions)
        "worst-acc", "dp-diff", "dp-ratio", "eqodds-diff", "eqodds-diff-mean", "eqodds-ratio", "eqodds-ratio-mean", "eopp-diff",
        "auc-es", "auc-es-fairclip", "acc-es", "acc-es-fairclip",
    ];

    public ClassificationReport(double threshold, MetricsMode mode, GroupReport overall, IReadOnlyList<GroupReport> groups,
        IReadOnlyDictionary<string, MetricValue> summary, bool thresholdFromCaller = false, UndefinedReason? thresholdFallbackReason = null)
    {
        Threshold = threshold;
        Mode = mode;
        Overall = overall ?? throw new ArgumentNullException(nameof(overall));
        Groups = groups ?? throw new ArgumentNullException(nameof(groups));
        Summary = summary ?? throw new ArgumentNullException(nameof(summary));
        ThresholdFromCaller = thresholdFromCaller;
        ThresholdFallbackReason = thresholdFallbackReason;
    }

    /// <summary>The decision threshold used for acc/tpr/tnr/... (prediction positive iff p &gt; threshold).</summary>
    public double Threshold { get; }

    public MetricsMode Mode { get; }

    /// <summary>True when the caller passed the threshold; false when it was chosen on the evaluated set.</summary>
    public bool ThresholdFromCaller { get; }

    /// <summary>Non-null when the threshold rule could not choose on this set (e.g. best-F1 without a positive label) and
    /// 0.5 was used instead; says why.</summary>
    public UndefinedReason? ThresholdFallbackReason { get; }

    public GroupReport Overall { get; }

    /// <summary>Every group present in the data, ordered by label (numeric when all labels are integers, else ordinal).</summary>
    public IReadOnlyList<GroupReport> Groups { get; }

    /// <summary>See <see cref="SummaryKeys"/> and the policy on <see cref="ClassificationMetrics.Evaluate"/>.</summary>
    public IReadOnlyDictionary<string, MetricValue> Summary { get; }

    /// <summary>The report of the group with this label, or null.</summary>
    public GroupReport? Group(string label)
    {
        foreach (var g in Groups)
            if (string.Equals(g.Group, label, StringComparison.Ordinal)) return g;
        return null;
    }
}
