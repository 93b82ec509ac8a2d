using FairMedFM.Metrics.Internal;

namespace FairMedFM.Metrics;

/// <summary>Sensitive attributes: several at once, their intersections, and an explicit policy for missing values.</summary>
public static class Grouping
{
    /// <summary>Separator of intersection labels ("F|60+"), as the dataset cards use.</summary>
    public const string Separator = "|";

    /// <summary>
    /// Checks one attribute's per-sample values. A missing value (null, empty or whitespace) is an error naming the
    /// attribute and the row, unless <paramref name="missingLabel"/> maps it to a group of its own.
    /// </summary>
    public static string[] Resolve(IReadOnlyList<string?> values, string attribute, string? missingLabel = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        var r = new string[values.Count];
        for (int i = 0; i < r.Length; i++)
        {
            var v = values[i];
            if (string.IsNullOrWhiteSpace(v))
            {
                if (string.IsNullOrEmpty(missingLabel))
                    throw new ArgumentException($"attribute '{attribute}' is missing at row {i}; map missing values to a group explicitly (missingLabel) or drop the row.", nameof(values));
                r[i] = missingLabel;
            }
            else r[i] = v;
        }
        return r;
    }

    /// <summary>Per-sample intersection labels of several attributes, e.g. "F|60+".</summary>
    public static string[] Intersect(IReadOnlyList<IReadOnlyList<string>> attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (attributes.Count == 0) throw new ArgumentException("No attributes to intersect.", nameof(attributes));
        int n = attributes[0].Count;
        foreach (var a in attributes) if (a.Count != n) throw new ArgumentException("Attributes of different lengths.", nameof(attributes));
        var r = new string[n];
        for (int i = 0; i < n; i++) r[i] = string.Join(Separator, attributes.Select(a => a[i]));
        return r;
    }

    /// <summary>
    /// Evaluates every attribute and, with <paramref name="intersections"/>, the intersection of all of them (key "a×b",
    /// labels "x|y") at one shared threshold (the frozen one, or the one the rule chooses on all samples).
    /// </summary>
    public static IReadOnlyDictionary<string, ClassificationReport> EvaluateAttributes(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels,
        IReadOnlyDictionary<string, IReadOnlyList<string?>> attributes, MetricsOptions options, double? threshold = null,
        bool intersections = false, string? missingLabel = null)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (attributes.Count == 0) throw new ArgumentException("No attributes given.", nameof(attributes));
        var resolved = attributes.ToDictionary(kv => kv.Key, kv => Resolve(kv.Value, kv.Key, missingLabel));
        var result = new Dictionary<string, ClassificationReport>(StringComparer.Ordinal);
        foreach (var (name, g) in resolved) result[name] = ClassificationMetrics.Evaluate(probs, labels, g, options, threshold);
        if (intersections && resolved.Count > 1)
            result[string.Join("×", resolved.Keys)] = ClassificationMetrics.Evaluate(probs, labels, Intersect(resolved.Values.ToArray()), options, threshold);
        return result;
    }
}

/// <summary>Multi-class predictions, one-vs-rest: class c against the rest, with score = P(class c).</summary>
public static class MulticlassMetrics
{
    /// <summary>
    /// One binary report per class (label == c vs label ≠ c, score = <paramref name="classScores"/>[i][c]). The binary API
    /// refuses labels outside {0, 1} with an error naming the row; this is the documented way to evaluate more classes.
    /// </summary>
    /// <param name="thresholds">Per-class frozen thresholds (Default mode), or null to choose each on this set.</param>
    public static IReadOnlyList<ClassificationReport> OneVsRest(IReadOnlyList<float[]> classScores, ReadOnlySpan<int> labels,
        IReadOnlyList<string> groups, MetricsOptions options, IReadOnlyList<double>? thresholds = null)
    {
        ArgumentNullException.ThrowIfNull(classScores);
        Check.SameLength(classScores.Count, labels.Length, "labels");
        if (classScores.Count == 0) throw new ArgumentException("No samples to evaluate.", nameof(classScores));
        int k = classScores[0].Length;
        if (k < 2) throw new ArgumentException("One-vs-rest needs at least two classes.", nameof(classScores));
        for (int i = 0; i < classScores.Count; i++)
        {
            if (classScores[i] is null || classScores[i].Length != k)
                throw new ArgumentException($"classScores[{i}] has {classScores[i]?.Length ?? 0} scores; expected {k}.", nameof(classScores));
            if (labels[i] < 0 || labels[i] >= k)
                throw new ArgumentException($"labels[{i}] = {labels[i]} is not a class index in 0..{k - 1}.", "labels");
        }
        if (thresholds is not null && thresholds.Count != k) throw new ArgumentException($"{thresholds.Count} thresholds for {k} classes.", nameof(thresholds));
        var reports = new ClassificationReport[k];
        var y = new int[labels.Length];
        var p = new float[labels.Length];
        for (int c = 0; c < k; c++)
        {
            for (int i = 0; i < y.Length; i++) { y[i] = labels[i] == c ? 1 : 0; p[i] = classScores[i][c]; }
            reports[c] = ClassificationMetrics.Evaluate(p, y, groups, options, thresholds?[c]);
        }
        return reports;
    }
}

/// <summary>
/// Collects scores batch by batch and evaluates once at the end, so the result never depends on how the data was
/// batched (torchmetrics#1989, anomalib#2003). Scores are kept as given: no sigmoid or other transform is ever applied,
/// so raw logits are fine for AUC; probabilities are needed for BCE/ECE (outside [0, 1] they are typed undefined).
/// </summary>
public sealed class ScoreCollector
{
    private readonly List<float> _p = new();
    private readonly List<int> _y = new();
    private readonly List<string> _g = new();

    public int Count => _p.Count;

    public void Add(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels, IReadOnlyList<string>? groups = null)
    {
        Check.SameLength(scores.Length, labels.Length);
        if (groups is not null) Check.SameLength(scores.Length, groups.Count, "groups");
        for (int i = 0; i < scores.Length; i++) { _p.Add(scores[i]); _y.Add(labels[i]); _g.Add(groups?[i] ?? "all"); }
    }

    /// <summary>AUC of everything added so far.</summary>
    public MetricValue Auc() => BinaryMetrics.RocAuc(_p.ToArray(), _y.ToArray());

    public ClassificationReport Evaluate(MetricsOptions options, double? threshold = null) =>
        ClassificationMetrics.Evaluate(_p.ToArray(), _y.ToArray(), _g, options, threshold);
}
