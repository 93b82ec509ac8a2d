using FairMedFM.Metrics.Internal;
using MathNet.Numerics.Distributions;

namespace FairMedFM.Metrics;

/// <summary>
/// Bootstrap confidence intervals for every per-group value and every summary of
/// <see cref="ClassificationMetrics.Evaluate"/>.
/// </summary>
/// <remarks>
/// <para><b>Resampling.</b> Stratified by group × label: within each (group, label) stratum as many units are drawn, with
/// replacement, as the stratum holds, so every resample keeps each group's size and class balance (a group never
/// vanishes from a resample). With <c>clusters</c> (patient ids) the units are whole patients — all images of a drawn
/// patient enter together — and a patient's stratum is its most frequent (group, label). Each resample is a weight vector
/// on the original samples evaluated in O(n) after one sort (see the benchmark), and draws from its own random stream,
/// so results depend only on the seed.</para>
/// <para><b>Threshold.</b> A threshold passed in (chosen on validation) stays frozen in every resample; a threshold chosen
/// on the evaluated set (Reference mode, or Default mode without one) is chosen again in every resample, so its
/// variability is part of the interval.</para>
/// <para><b>Intervals</b> are percentile or BCa (<see cref="CiMethod"/>). BCa falls back to percentile, and says so in
/// the detail, when the bias correction is infinite (every resample on one side of the estimate).</para>
/// </remarks>
public static class Bootstrap
{
    /// <summary>Evaluates (exactly as <see cref="ClassificationMetrics.Evaluate"/>) and adds bootstrap intervals.</summary>
    /// <param name="clusters">Patient id per sample (null: every sample is its own unit). A missing id is an error naming the row.</param>
    public static ClassificationBootstrapReport Classification(ReadOnlySpan<float> probs, ReadOnlySpan<int> labels, IReadOnlyList<string> groups,
        MetricsOptions options, BootstrapOptions bootstrap, double? threshold = null, IReadOnlyList<string>? clusters = null)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        bootstrap.Validate();
        var estimate = ClassificationMetrics.Evaluate(probs, labels, groups, options, threshold);
        var data = new WeightedClassification(probs, labels, groups, options, threshold);
        var resampler = new Resampler(data.Code, labels, clusters);
        var keys = StatisticKeys.For(estimate);
        var reps = Replicate(resampler, bootstrap, keys.Count, w => keys.Extract(data.Evaluate(w)));
        var self = keys.Extract(data.Evaluate(Ones(data.Count)));
        double[][]? jack = bootstrap.Method == CiMethod.Bca ? Jackknife(resampler, bootstrap, data.Count, w => keys.Extract(data.Evaluate(w))) : null;

        var estimateValues = keys.ExtractValues(estimate);
        var cis = new ConfidenceInterval[keys.Count];
        for (int s = 0; s < keys.Count; s++)
            cis[s] = Interval(estimateValues[s], self[s], Column(reps, s), jack is null ? null : Column(jack, s), bootstrap, resampler.SingletonStrata);
        return new ClassificationBootstrapReport(estimate, bootstrap, resampler.Units, resampler.Clustered, resampler.Strata, keys, cis, reps);
    }

    internal static int[] Ones(int n) { var w = new int[n]; Array.Fill(w, 1); return w; }

    /// <summary>Runs the resamples in parallel; row r holds the statistics of resample r (NaN where undefined).</summary>
    internal static double[][] Replicate(Resampler resampler, BootstrapOptions o, int stats, Func<int[], double[]> evaluate)
    {
        var rows = new double[o.Resamples][];
        var po = new ParallelOptions { MaxDegreeOfParallelism = o.MaxDegreeOfParallelism ?? Environment.ProcessorCount };
        Parallel.For(0, o.Resamples, po, () => new int[resampler.Samples], (r, _, w) =>
        {
            var rng = new Rng(o.Seed, r);
            resampler.Draw(ref rng, w);
            rows[r] = evaluate(w);
            return w;
        }, _ => { });
        return rows;
    }

    internal static double[][] Jackknife(Resampler resampler, BootstrapOptions o, int n, Func<int[], double[]> evaluate)
    {
        var blocks = resampler.JackknifeBlocks(o.MaxJackknifeBlocks, o.Seed);
        var rows = new double[blocks.Length][];
        var po = new ParallelOptions { MaxDegreeOfParallelism = o.MaxDegreeOfParallelism ?? Environment.ProcessorCount };
        Parallel.For(0, blocks.Length, po, () => new int[n], (b, _, w) =>
        {
            Array.Fill(w, 1);
            foreach (int i in blocks[b]) w[i] = 0;
            rows[b] = evaluate(w);
            return w;
        }, _ => { });
        return rows;
    }

    internal static double[] Column(double[][] rows, int s)
    {
        var c = new double[rows.Length];
        for (int r = 0; r < rows.Length; r++) c[r] = rows[r][s];
        return c;
    }

    /// <summary>
    /// The interval of one statistic. <paramref name="estimate"/> is the reported value (undefined → undefined interval);
    /// <paramref name="selfValue"/> is the same statistic from the resampling kernel at unit weights (used for BCa's z₀ so
    /// that rounding differences between the two code paths cannot move it).
    /// </summary>
    /// <param name="singletonStrata">Strata of the resampler that hold a single unit (<see cref="Resampler.SingletonStrata"/>):
    /// when there are any and every resample gives one value, the interval is undefined (<see cref="UndefinedReason.TooFewUnits"/>)
    /// rather than of zero width; when the replicates still vary, the interval says that it understates the uncertainty.</param>
    internal static ConfidenceInterval Interval(MetricValue estimate, double selfValue, double[] replicates, double[]? jackknife, BootstrapOptions o,
        int singletonStrata = 0)
    {
        int b = replicates.Length;
        var defined = replicates.Where(x => !double.IsNaN(x)).ToArray();
        if (!estimate.IsDefined)
            return ConfidenceInterval.Undefined(estimate.Reason!.Value, o.Level, o.Method, b, defined.Length, "the estimate itself is undefined: " + estimate.Detail);
        if (defined.Length == 0)
            return ConfidenceInterval.Undefined(UndefinedReason.NoDefinedResamples, o.Level, o.Method, b, 0, $"undefined in all {b} resamples");
        Array.Sort(defined);
        if (singletonStrata > 0 && defined[0] == defined[^1])
            return ConfidenceInterval.Undefined(UndefinedReason.TooFewUnits, o.Level, o.Method, b, defined.Length,
                $"every resample gives the same value: {singletonStrata} stratum(s) (group × label) hold a single patient or sample, which every resample keeps as it is");
        string? note = defined.Length < b ? $"{b - defined.Length} of {b} resamples undefined and left out" : null;
        if (singletonStrata > 0)
            note = Summaries.Join(note, $"{singletonStrata} stratum(s) hold a single unit and do not vary across resamples: the interval understates the uncertainty");
        double alpha = (1 - o.Level) / 2;
        if (o.Method == CiMethod.Bca)
        {
            double theta = double.IsNaN(selfValue) ? estimate.Value : selfValue;
            int below = 0, equal = 0;
            foreach (var x in defined) { if (x < theta) below++; else if (x == theta) equal++; }
            double prop = (below + 0.5 * equal) / defined.Length;
            double a = Acceleration(jackknife);
            if (prop > 0 && prop < 1 && !double.IsNaN(a))
            {
                double z0 = Normal.InvCDF(0, 1, prop);
                double zl = Normal.InvCDF(0, 1, alpha), zu = Normal.InvCDF(0, 1, 1 - alpha);
                double a1 = Normal.CDF(0, 1, z0 + (z0 + zl) / (1 - a * (z0 + zl)));
                double a2 = Normal.CDF(0, 1, z0 + (z0 + zu) / (1 - a * (z0 + zu)));
                if (!double.IsNaN(a1) && !double.IsNaN(a2))
                    return new ConfidenceInterval(Quantile(defined, a1), Quantile(defined, a2), o.Level, CiMethod.Bca, b, defined.Length, null, note);
            }
            note = Summaries.Join(note, prop <= 0 || prop >= 1
                ? "BCa bias correction is infinite (all resamples on one side of the estimate); percentile interval given"
                : "BCa acceleration is undefined; percentile interval given");
            return new ConfidenceInterval(Quantile(defined, alpha), Quantile(defined, 1 - alpha), o.Level, CiMethod.Percentile, b, defined.Length, null, note);
        }
        return new ConfidenceInterval(Quantile(defined, alpha), Quantile(defined, 1 - alpha), o.Level, CiMethod.Percentile, b, defined.Length, null, note);
    }

    /// <summary>Jackknife acceleration a = Σ(θ̄ − θᵢ)³ / (6 (Σ(θ̄ − θᵢ)²)^{3/2}); 0 when the jackknife values are all equal.</summary>
    internal static double Acceleration(double[]? jack)
    {
        if (jack is null) return double.NaN;
        var v = jack.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length < 2) return double.NaN;
        double mean = v.Average(), s2 = 0, s3 = 0;
        foreach (var x in v) { double d = mean - x; s2 += d * d; s3 += d * d * d; }
        return s2 == 0 ? 0 : s3 / (6 * Math.Pow(s2, 1.5));
    }

    /// <summary>Quantile of sorted data with linear interpolation (numpy's default, Hyndman–Fan type 7).</summary>
    internal static double Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 1) return sorted[0];
        double h = (sorted.Length - 1) * Math.Clamp(q, 0, 1);
        int lo = (int)Math.Floor(h);
        if (lo >= sorted.Length - 1) return sorted[^1];
        return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]);
    }
}

/// <summary>The statistics a classification bootstrap tracks: every summary key, and every non-count per-group key of
/// the overall set and of each group.</summary>
internal sealed class StatisticKeys
{
    public readonly List<(string? Group, string Key)> Items = new();
    public readonly Dictionary<(string? Group, string Key), int> Index = new();
    public int Count => Items.Count;
    /// <summary>"overall" is stored with Group = "overall" too; summaries with Group = null.</summary>
    public static StatisticKeys For(ClassificationReport r)
    {
        var k = new StatisticKeys();
        foreach (var s in ClassificationReport.SummaryKeys) k.Add(null, s);
        foreach (var g in new[] { r.Overall }.Concat(r.Groups))
            foreach (var key in GroupReport.Keys)
                if (MetricCatalog.Get(key) is { Kind: not MetricKind.Count }) k.Add(g.Group == "overall" && ReferenceEquals(g, r.Overall) ? "\0overall" : g.Group, key);
        return k;
    }

    private void Add(string? g, string key) { Index[(g, key)] = Items.Count; Items.Add((g, key)); }

    public double[] Extract(ClassificationReport r)
    {
        var v = ExtractValues(r);
        var d = new double[v.Length];
        for (int i = 0; i < v.Length; i++) d[i] = v[i].IsDefined ? v[i].Value : double.NaN;
        return d;
    }

    public MetricValue[] ExtractValues(ClassificationReport r)
    {
        var v = new MetricValue[Items.Count];
        var byGroup = new Dictionary<string, GroupReport>(StringComparer.Ordinal) { ["\0overall"] = r.Overall };
        foreach (var g in r.Groups) byGroup[g.Group] = g;
        for (int i = 0; i < Items.Count; i++)
        {
            var (g, key) = Items[i];
            v[i] = g is null ? r.Summary[key]
                : byGroup.TryGetValue(g, out var gr) ? gr.Values[key]
                : MetricValue.Undefined(UndefinedReason.EmptyGroup, $"group '{g}' absent");
        }
        return v;
    }
}

/// <summary>Result of <see cref="Bootstrap.Classification"/>: the estimate and an interval for each of its values.</summary>
public sealed class ClassificationBootstrapReport
{
    private readonly StatisticKeys _keys;
    private readonly ConfidenceInterval[] _cis;
    private readonly double[][] _replicates;

    internal ClassificationBootstrapReport(ClassificationReport estimate, BootstrapOptions options, int units, bool clustered, int strata,
        StatisticKeys keys, ConfidenceInterval[] cis, double[][] replicates)
    {
        Estimate = estimate; Options = options; Units = units; Clustered = clustered; Strata = strata;
        _keys = keys; _cis = cis; _replicates = replicates;
        Summary = ClassificationReport.SummaryKeys.ToDictionary(k => k, k => cis[keys.Index[(null, k)]], StringComparer.Ordinal);
        Overall = Slice("\0overall");
        Groups = estimate.Groups.ToDictionary(g => g.Group, g => Slice(g.Group), StringComparer.Ordinal);
    }

    private IReadOnlyDictionary<string, ConfidenceInterval> Slice(string group) =>
        _keys.Items.Where(i => i.Group == group).ToDictionary(i => i.Key, i => _cis[_keys.Index[i]], StringComparer.Ordinal);

    /// <summary>The point estimates: exactly <see cref="ClassificationMetrics.Evaluate"/>'s report.</summary>
    public ClassificationReport Estimate { get; }
    public BootstrapOptions Options { get; }
    /// <summary>Resampling units: patients when clustered, else samples.</summary>
    public int Units { get; }
    public bool Clustered { get; }
    /// <summary>Number of (group, label) strata that held units.</summary>
    public int Strata { get; }
    /// <summary>Interval of each summary key (<see cref="ClassificationReport.SummaryKeys"/>).</summary>
    public IReadOnlyDictionary<string, ConfidenceInterval> Summary { get; }
    /// <summary>Interval of each non-count overall value (auc, acc, …).</summary>
    public IReadOnlyDictionary<string, ConfidenceInterval> Overall { get; }
    /// <summary>Group label → interval of each non-count per-group value.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, ConfidenceInterval>> Groups { get; }

    /// <summary>The bootstrap distribution of a summary key (NaN where a resample left it undefined), in resample order.</summary>
    public double[] Replicates(string summaryKey) => Bootstrap.Column(_replicates, _keys.Index[(null, summaryKey)]);

    /// <summary>The bootstrap distribution of a per-group value ("overall" for all samples).</summary>
    public double[] GroupReplicates(string group, string key) =>
        Bootstrap.Column(_replicates, _keys.Index[(group == "overall" && !Groups.ContainsKey("overall") ? "\0overall" : group, key)]);
}
