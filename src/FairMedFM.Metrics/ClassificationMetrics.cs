using System.Globalization;
using System.Text;
using FairMedFM.Metrics.Internal;

namespace FairMedFM.Metrics;

/// <summary>Overall, per-group and fairness-summary metrics of a binary classifier.</summary>
public static class ClassificationMetrics
{
    /// <summary>
    /// Evaluates binary predictions overall, per sensitive group, and summarises the gaps between groups.
    /// </summary>
    /// <param name="probs">P(y = 1) per sample (float32, as produced by softmax).</param>
    /// <param name="labels">0/1 per sample.</param>
    /// <param name="groups">Group label per sample (any non-empty strings). Every label present is a group: codes
    /// {0, 2, 5} are three groups (FairMedFM's legacy loop over 0..K−1 would skip 5 and crash on the empty group 1).</param>
    /// <param name="options">Mode, threshold rule, ECE bins.</param>
    /// <param name="threshold">null: choose on this set by <see cref="MetricsOptions.Rule"/>. Non-null (Default mode only):
    /// used as-is — the threshold chosen on validation and frozen for test.</param>
    /// <remarks>
    /// <para><b>Reference mode</b> reproduces FairMedFM's <c>evaluate_binary</c> + <c>organize_results</c>: threshold* is the
    /// best-F1 threshold of all samples, shared by every group; acc/tpr/tnr at threshold* with strict '&gt;'; ECE bins over
    /// each group's own data range; <c>eod = 1 − ((maxTPR − minTPR) + (maxTNR − minTNR))/2</c>, <c>eo = maxTPR − minTPR</c>,
    /// gaps = max − min over groups, worst-auc = min group AUC. On inputs where the legacy code runs, the numbers match it.</para>
    /// <para><b>Default mode</b>: threshold from the caller or chosen by the rule on this set; ECE over fixed [0, 1] bins;
    /// same keys.</para>
    /// <para><b>Undefined policy</b> (both modes; the legacy code crashed instead): a per-group metric that cannot be computed
    /// is a typed undefined value in that group's <see cref="GroupReport.Values"/> (AUC of a group with one class: no
    /// positives / no negatives; TPR/FNR without positives; TNR/FPR without negatives). A summary over groups
    /// (worst-auc, *-gap, eo, eod) is computed over the groups where its per-group metric is defined, provided there are
    /// at least two; its <see cref="MetricValue.Detail"/> then names the groups left out. With fewer than two it is
    /// <see cref="UndefinedReason.TooFewGroups"/> and the detail says which groups were undefined and why. eod needs both
    /// the TPR and the TNR range. A single group present therefore gives undefined gaps (the legacy code gave 0).</para>
    /// <para>If the rule cannot choose a threshold (best-F1 with no positive label; Youden with one class), 0.5 is used and
    /// <see cref="ClassificationReport.ThresholdFallbackReason"/> says why.</para>
    /// </remarks>
    /// <exception cref="ArgumentException">Length mismatch; no samples; a label outside {0, 1}; a NaN probability; a null or
    /// empty group label (the message names the first such row — a missing group is never dropped silently); a NaN
    /// threshold; in Reference mode a non-null threshold or a rule other than best-F1.</exception>
    public static ClassificationReport Evaluate(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, IReadOnlyList<string> groups,
        MetricsOptions options, double? threshold = null)
    {
        ValidateInput(probs, labels, groups, options, threshold);

        int n = probs.Length;
        var (groupNames, code) = CodeGroups(groups);
        int k = groupNames.Length;

        // One sort for everything; each group's score order is its subsequence of the global order.
        int[] order = Core.SortAscending(probs);
        var size = new int[k];
        foreach (int c in code) size[c]++;
        var dataIdx = new int[k][];
        var sortedIdx = new int[k][];
        for (int g = 0; g < k; g++) { dataIdx[g] = new int[size[g]]; sortedIdx[g] = new int[size[g]]; }
        var fill = new int[k];
        for (int i = 0; i < n; i++) dataIdx[code[i]][fill[code[i]]++] = i;
        Array.Clear(fill);
        foreach (int i in order) sortedIdx[code[i]][fill[code[i]]++] = i;

        double thr;
        UndefinedReason? fallback = null;
        if (threshold is double given) thr = given;
        else
        {
            var chosen = ChooseSorted(probs, labels, order, options.Rule, options.TargetSpecificity);
            if (chosen.IsDefined) thr = chosen.Value;
            else { thr = 0.5; fallback = chosen.Reason; }
        }

        var overall = Report("overall", probs, labels, Core.Identity(n), order, thr, options);
        var reports = new GroupReport[k];
        for (int g = 0; g < k; g++)
            reports[g] = Report(groupNames[g], probs, labels, dataIdx[g], sortedIdx[g], thr, options);

        return new ClassificationReport(thr, options.Mode, overall, reports, Summaries.Classification(overall, reports),
            thresholdFromCaller: threshold is not null, thresholdFallbackReason: fallback);
    }

    internal static void ValidateInput(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, IReadOnlyList<string> groups,
        MetricsOptions options, double? threshold)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(options);
        Check.SameLength(probs.Length, labels.Length);
        Check.SameLength(probs.Length, groups.Count, "groups");
        if (probs.Length == 0) throw new ArgumentException("No samples to evaluate.", nameof(probs));
        Check.BinaryLabels(labels);
        BinaryMetrics.RequireNoNaN(probs);
        ValidateOptions(options);
        for (int i = 0; i < groups.Count; i++)
            if (string.IsNullOrEmpty(groups[i]))
                throw new ArgumentException(
                    $"groups[{i}] is missing (null or empty): row {i} has no group label. Drop or relabel it explicitly.", nameof(groups));
        if (options.Mode == MetricsMode.Reference)
        {
            if (threshold is not null)
                throw new ArgumentException("Reference mode chooses threshold* (best-F1) on the evaluated set; pass threshold: null.", nameof(threshold));
            if (options.Rule != ThresholdRule.BestF1)
                throw new ArgumentException($"Reference mode uses the best-F1 rule, not {options.Rule}.", nameof(options));
        }
        if (threshold is double t && double.IsNaN(t))
            throw new ArgumentException("The threshold is NaN.", nameof(threshold));

    }

    internal static void ValidateOptions(MetricsOptions options)
    {
        if (options.EceBins < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.EceBins, "EceBins must be at least 1.");
        if (!(options.TargetSpecificity > 0 && options.TargetSpecificity <= 1))
            throw new ArgumentOutOfRangeException(nameof(options), options.TargetSpecificity, "TargetSpecificity must be in (0, 1].");
    }

    /// <summary>
    /// Chooses a decision threshold on (probs, labels).
    /// <see cref="ThresholdRule.BestF1"/> is FairMedFM's <c>find_threshold</c>: over sklearn's PR curve (thresholds = the
    /// distinct scores, positive iff p ≥ t), F1 = 2PR/(P + R + 1e-8), the lowest threshold among the maxima.
    /// <see cref="ThresholdRule.Youden"/>: the distinct score t maximising TPR − FPR with positive iff p &gt; t (the rule the
    /// counts then use), lowest among ties. <see cref="ThresholdRule.Fixed"/>: 0.5.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid input, or the rule is undefined on it (best-F1 without a positive label,
    /// Youden with one class); see <see cref="ChooseThresholdOrUndefined"/> for a typed result.</exception>
    public static double ChooseThreshold(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, ThresholdRule rule)
    {
        var v = ChooseThresholdOrUndefined(probs, labels, rule);
        if (!v.IsDefined)
            throw new ArgumentException($"No {rule} threshold on this set: {MetricValue.ReasonText(v.Reason!.Value)}. {v.Detail}", nameof(labels));
        return v.Value;
    }

    /// <summary>As <see cref="ChooseThreshold"/>, but an undefined threshold is returned typed instead of thrown.</summary>
    public static MetricValue ChooseThresholdOrUndefined(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, ThresholdRule rule) =>
        ChooseThresholdOrUndefined(probs, labels, rule, 0.9);

    /// <summary>As <see cref="ChooseThreshold"/> with the rule and specificity target of <paramref name="options"/>
    /// (<see cref="ThresholdRule.FixedSpecificity"/> needs the target).</summary>
    public static double ChooseThreshold(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, MetricsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var v = ChooseThresholdOrUndefined(probs, labels, options.Rule, options.TargetSpecificity);
        if (!v.IsDefined)
            throw new ArgumentException($"No {options.Rule} threshold on this set: {MetricValue.ReasonText(v.Reason!.Value)}. {v.Detail}", nameof(labels));
        return v.Value;
    }

    /// <summary>Typed threshold choice; <paramref name="targetSpecificity"/> is used by <see cref="ThresholdRule.FixedSpecificity"/> only.</summary>
    public static MetricValue ChooseThresholdOrUndefined(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, ThresholdRule rule, double targetSpecificity)
    {
        Check.SameLength(probs.Length, labels.Length);
        Check.BinaryLabels(labels);
        BinaryMetrics.RequireNoNaN(probs);
        return ChooseSorted(probs, labels, Core.SortAscending(probs), rule, targetSpecificity);
    }

    private static MetricValue ChooseSorted(ReadOnlySpan<float> p, ReadOnlySpan<int> y, int[] order, ThresholdRule rule, double targetSpecificity) => rule switch
    {
        ThresholdRule.Fixed => MetricValue.Of(0.5),
        ThresholdRule.BestF1 => Core.BestF1Sorted(p, y, order),
        ThresholdRule.Youden => Core.YoudenSorted(p, y, order),
        ThresholdRule.FixedSpecificity => Core.FixedSpecificitySorted(p, y, order, targetSpecificity),
        _ => throw new ArgumentOutOfRangeException(nameof(rule), rule, null),
    };

    internal static GroupReport Report(string name, ReadOnlySpan<float> p, ReadOnlySpan<int> y, int[] dataIdx, int[] sortedIdx,
        double thr, MetricsOptions options)
    {
        var at = Core.Confusion(p, y, dataIdx, thr);
        var half = Core.Confusion(p, y, dataIdx, 0.5);
        var v = new Dictionary<string, MetricValue>(GroupReport.Keys.Count, StringComparer.Ordinal)
        {
            ["auc"] = Core.AucSorted(p, y, sortedIdx),
            ["acc"] = at.Accuracy,
            ["acc@0.5"] = half.Accuracy,
            ["bce"] = Core.Bce(p, y, dataIdx),
            ["ece"] = Core.Ece(p, y, dataIdx, options.EceBins, options.Mode),
        };
        AddRates(v, at, "");
        AddRates(v, half, "@0.5");
        return new GroupReport(name, new GroupCounts(at.N, at.Positives, at.Negatives), v);
    }

    internal static void AddRates(Dictionary<string, MetricValue> v, ConfusionCounts c, string suffix)
    {
        v["tpr" + suffix] = c.Tpr;
        v["tnr" + suffix] = c.Tnr;
        v["fpr" + suffix] = c.Fpr;
        v["fnr" + suffix] = c.Fnr;
        v["tp" + suffix] = MetricValue.Of(c.Tp);
        v["fp" + suffix] = MetricValue.Of(c.Fp);
        v["tn" + suffix] = MetricValue.Of(c.Tn);
        v["fn" + suffix] = MetricValue.Of(c.Fn);
        v["ppv" + suffix] = c.Ppv;
        v["selection-rate" + suffix] = c.SelectionRate;
    }

    /// <summary>Distinct labels sorted (numeric if all are integers, ordinal otherwise) and each sample's index into them.</summary>
    internal static (string[] Names, int[] Code) CodeGroups(IReadOnlyList<string> groups)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        var raw = new int[groups.Count];
        for (int i = 0; i < groups.Count; i++)
        {
            if (!first.TryGetValue(groups[i], out int c)) { c = first.Count; first.Add(groups[i], c); }
            raw[i] = c;
        }
        var names = first.Keys.ToArray();
        var numeric = new long[names.Length];
        bool allIntegers = true;
        for (int j = 0; j < names.Length && allIntegers; j++)
            allIntegers = long.TryParse(names[j], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out numeric[j]);

        var perm = Core.Identity(names.Length);
        Array.Sort(perm, (a, b) =>
        {
            if (allIntegers)
            {
                int byValue = numeric[a].CompareTo(numeric[b]);
                if (byValue != 0) return byValue;
            }
            return string.CompareOrdinal(names[a], names[b]); // "01" vs "1": same number, still two groups
        });
        var rank = new int[names.Length];
        var sorted = new string[names.Length];
        for (int r = 0; r < perm.Length; r++) { rank[perm[r]] = r; sorted[r] = names[perm[r]]; }
        for (int i = 0; i < raw.Length; i++) raw[i] = rank[raw[i]];
        return (sorted, raw);
    }
}
