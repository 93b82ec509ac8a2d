using FairMedFM.Metrics.Internal;
using MathNet.Numerics.Distributions;

namespace FairMedFM.Metrics;

/// <summary>DeLong's test for two correlated AUCs on the same samples.</summary>
/// <param name="Difference">AucA − AucB.</param>
/// <param name="StandardError">DeLong standard error of the difference.</param>
/// <param name="Lower">Lower bound of the normal-approximation interval of the difference at <see cref="Level"/>.</param>
public sealed record DeLongResult(double AucA, double AucB, double Difference, double StandardError, double Z, double PValue,
    double Lower, double Upper, double Level, int Positives, int Negatives);

/// <summary>A paired comparison of one statistic between two models on the same test samples.</summary>
/// <param name="Key">The summary key compared (e.g. "auc-gap").</param>
/// <param name="Difference">Estimate of A − B (undefined when either estimate is).</param>
/// <param name="Interval">Bootstrap interval of A − B (paired bootstrap only; undefined for a permutation test).</param>
/// <param name="PValue">Two-sided p-value of "no difference".</param>
/// <param name="Method">"paired-bootstrap" or "permutation".</param>
/// <param name="Iterations">Resamples or permutations run; <see cref="DefinedIterations"/> of them defined the statistic for both models.</param>
public sealed record PairedComparison(string Key, MetricValue A, MetricValue B, MetricValue Difference, ConfidenceInterval? Interval,
    double PValue, string Method, int Iterations, int DefinedIterations);

/// <summary>Friedman's test of k models over N data sets, with Nemenyi's post-hoc comparison of average ranks (Demšar 2006,
/// as MEDFAIR reports).</summary>
/// <param name="AverageRanks">Per model, rank 1 = best on a data set (ties share the average rank).</param>
/// <param name="ChiSquare">Friedman's χ²_F with k − 1 degrees of freedom.</param>
/// <param name="ImanDavenportF">Iman–Davenport's F_F with (k − 1, (k − 1)(N − 1)) degrees of freedom (less conservative).</param>
/// <param name="CriticalDifference">Nemenyi critical difference of average ranks at <see cref="Alpha"/>: q_α / √2 · √(k(k+1)/(6N)).</param>
/// <param name="NemenyiPValues">[i, j]: Nemenyi p-value of models i and j differing (1 on the diagonal).</param>
public sealed record FriedmanResult(IReadOnlyList<string> Models, int Datasets, double[] AverageRanks, double ChiSquare, double PValue,
    double ImanDavenportF, double ImanDavenportPValue, double Alpha, double CriticalDifference, double[,] NemenyiPValues);

/// <summary>Tests of significance: DeLong, paired bootstrap and permutation tests of fairness gaps, multiple-comparison
/// corrections, Friedman + Nemenyi.</summary>
public static class Significance
{
    /// <summary>
    /// DeLong, DeLong and Clarke-Pearson (1988) in the fast midrank form of Sun and Xu (2014): the covariance of the two AUCs
    /// from the structural components V10 (per positive) and V01 (per negative); z = (A − B)/SE, two-sided normal p.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ, labels not 0/1, NaN scores, or a class is absent.</exception>
    public static DeLongResult DeLong(ReadOnlySpan<float> scoresA, ReadOnlySpan<float> scoresB, ReadOnlySpan<int> labels, double level = 0.95)
    {
        Check.SameLength(scoresA.Length, labels.Length);
        Check.SameLength(scoresB.Length, labels.Length, "scoresB");
        Check.BinaryLabels(labels);
        BinaryMetrics.RequireNoNaN(scoresA);
        BinaryMetrics.RequireNoNaN(scoresB);
        if (!(level > 0 && level < 1)) throw new ArgumentOutOfRangeException(nameof(level));
        int m = 0, n = 0;
        foreach (int y in labels) if (y == 1) m++; else n++;
        if (m == 0 || n == 0)
            throw new ArgumentException($"DeLong's test needs both classes ({m} positives, {n} negatives).", nameof(labels));
        var (aucA, v10A, v01A) = Components(scoresA, labels, m, n);
        var (aucB, v10B, v01B) = Components(scoresB, labels, m, n);
        double s10aa = Cov(v10A, v10A), s10bb = Cov(v10B, v10B), s10ab = Cov(v10A, v10B);
        double s01aa = Cov(v01A, v01A), s01bb = Cov(v01B, v01B), s01ab = Cov(v01A, v01B);
        double var = (s10aa + s10bb - 2 * s10ab) / m + (s01aa + s01bb - 2 * s01ab) / n;
        double diff = aucA - aucB;
        double se = Math.Sqrt(Math.Max(var, 0));
        double z = se > 0 ? diff / se : diff == 0 ? 0 : double.PositiveInfinity * Math.Sign(diff);
        double p = se > 0 ? 2 * Normal.CDF(0, 1, -Math.Abs(z)) : diff == 0 ? 1 : 0;
        double zc = Normal.InvCDF(0, 1, 1 - (1 - level) / 2);
        return new DeLongResult(aucA, aucB, diff, se, z, Math.Min(1, p), diff - zc * se, diff + zc * se, level, m, n);
    }

    private static (double Auc, double[] V10, double[] V01) Components(ReadOnlySpan<float> s, ReadOnlySpan<int> y, int m, int n)
    {
        var pos = new double[m]; var neg = new double[n];
        int a = 0, b = 0;
        for (int i = 0; i < s.Length; i++) { if (y[i] == 1) pos[a++] = s[i]; else neg[b++] = s[i]; }
        var all = pos.Concat(neg).ToArray();
        var tz = MidRanks(all); var tx = MidRanks(pos); var ty = MidRanks(neg);
        var v10 = new double[m]; var v01 = new double[n];
        double sumPos = 0;
        for (int i = 0; i < m; i++) { v10[i] = (tz[i] - tx[i]) / n; sumPos += tz[i]; }
        for (int j = 0; j < n; j++) v01[j] = 1 - (tz[m + j] - ty[j]) / m;
        double auc = (sumPos - m * (m + 1) / 2.0) / ((double)m * n);
        return (auc, v10, v01);
    }

    /// <summary>1-based ranks with ties sharing their average rank.</summary>
    internal static double[] MidRanks(double[] x)
    {
        int n = x.Length;
        var idx = Enumerable.Range(0, n).ToArray();
        var keys = (double[])x.Clone();
        Array.Sort(keys, idx);
        var r = new double[n];
        int i = 0;
        while (i < n)
        {
            int j = i;
            while (j < n && keys[j] == keys[i]) j++;
            double mid = (i + 1 + j) / 2.0; // average of ranks i+1 .. j
            for (int k = i; k < j; k++) r[idx[k]] = mid;
            i = j;
        }
        return r;
    }

    private static double Cov(double[] a, double[] b)
    {
        if (a.Length < 2) return 0;
        double ma = a.Average(), mb = b.Average(), s = 0;
        for (int i = 0; i < a.Length; i++) s += (a[i] - ma) * (b[i] - mb);
        return s / (a.Length - 1);
    }

    /// <summary>
    /// Paired bootstrap of the difference of a summary statistic (a gap, worst-group AUC, EOD, ES, …) between two models
    /// scored on the same samples: each resample (stratified by group × label, clustered by patient when given — the same
    /// scheme as <see cref="Bootstrap.Classification"/>) is applied to both models at once. The interval is the bootstrap
    /// interval of A − B; the p-value is the two-sided percentile p, 2·min(P*(d ≤ 0), P*(d ≥ 0)) with the +1 correction,
    /// which is below α exactly when the (1 − α) percentile interval excludes 0 (up to that correction).
    /// </summary>
    public static PairedComparison PairedBootstrap(ReadOnlySpan<float> probsA, ReadOnlySpan<float> probsB, ReadOnlySpan<int> labels,
        IReadOnlyList<string> groups, string summaryKey, MetricsOptions options, BootstrapOptions bootstrap,
        double? thresholdA = null, double? thresholdB = null, IReadOnlyList<string>? clusters = null)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        bootstrap.Validate();
        RequireSummaryKey(summaryKey);
        Check.SameLength(probsB.Length, probsA.Length, "probsB");
        var estA = ClassificationMetrics.Evaluate(probsA, labels, groups, options, thresholdA).Summary[summaryKey];
        var estB = ClassificationMetrics.Evaluate(probsB, labels, groups, options, thresholdB).Summary[summaryKey];
        var kA = new WeightedClassification(probsA, labels, groups, options, thresholdA);
        var kB = new WeightedClassification(probsB, labels, groups, options, thresholdB);
        var resampler = new Resampler(kA.Code, labels, clusters);
        var rows = Bootstrap.Replicate(resampler, bootstrap, 1, w =>
        {
            var a = kA.Evaluate(w).Summary[summaryKey];
            var b = kB.Evaluate(w).Summary[summaryKey];
            return [a.IsDefined && b.IsDefined ? a.Value - b.Value : double.NaN];
        });
        var d = Bootstrap.Column(rows, 0);
        var diff = Difference(estA, estB);
        double[]? jack = null;
        if (bootstrap.Method == CiMethod.Bca)
            jack = Bootstrap.Column(Bootstrap.Jackknife(resampler, bootstrap, kA.Count, w =>
            {
                var a = kA.Evaluate(w).Summary[summaryKey];
                var b = kB.Evaluate(w).Summary[summaryKey];
                return [a.IsDefined && b.IsDefined ? a.Value - b.Value : double.NaN];
            }), 0);
        var ones = Bootstrap.Ones(kA.Count);
        var sa = kA.Evaluate(ones).Summary[summaryKey]; var sb = kB.Evaluate(ones).Summary[summaryKey];
        double self = sa.IsDefined && sb.IsDefined ? sa.Value - sb.Value : double.NaN;
        var ci = Bootstrap.Interval(diff, self, d, jack, bootstrap);
        var defined = d.Where(x => !double.IsNaN(x)).ToArray();
        double p = 1;
        if (diff.IsDefined && defined.Length > 0)
        {
            int le = defined.Count(x => x <= 0), ge = defined.Count(x => x >= 0);
            p = Math.Min(1, 2 * Math.Min((le + 1.0) / (defined.Length + 1), (ge + 1.0) / (defined.Length + 1)));
        }
        return new PairedComparison(summaryKey, estA, estB, diff, ci, diff.IsDefined ? p : double.NaN, "paired-bootstrap", bootstrap.Resamples, defined.Length);
    }

    /// <summary>
    /// Paired permutation test of "models A and B have the same <paramref name="summaryKey"/>": in each permutation every
    /// unit (patient when <paramref name="clusters"/> is given, else sample) has its two predictions swapped with probability
    /// ½ — each prediction keeps its own model's frozen threshold, or the threshold is chosen again on the permuted set when
    /// none is given. p = (1 + #{|d_perm| ≥ |d_obs|}) / (1 + permutations), over the permutations where both are defined.
    /// Each permutation re-sorts the scores (O(n log n)); the paired bootstrap is the faster test.
    /// </summary>
    public static PairedComparison PermutationTest(ReadOnlySpan<float> probsA, ReadOnlySpan<float> probsB, ReadOnlySpan<int> labels,
        IReadOnlyList<string> groups, string summaryKey, MetricsOptions options, int permutations = 1000, long seed = 0,
        double? thresholdA = null, double? thresholdB = null, IReadOnlyList<string>? clusters = null)
    {
        if (permutations < 1) throw new ArgumentOutOfRangeException(nameof(permutations));
        if ((thresholdA is null) != (thresholdB is null))
            throw new ArgumentException("Give both thresholds (frozen) or neither (chosen on the set).");
        RequireSummaryKey(summaryKey);
        Check.SameLength(probsB.Length, probsA.Length, "probsB");
        var estA = ClassificationMetrics.Evaluate(probsA, labels, groups, options, thresholdA).Summary[summaryKey];
        var estB = ClassificationMetrics.Evaluate(probsB, labels, groups, options, thresholdB).Summary[summaryKey];
        var diff = Difference(estA, estB);
        if (!diff.IsDefined) return new PairedComparison(summaryKey, estA, estB, diff, null, double.NaN, "permutation", 0, 0);
        float[] pa = probsA.ToArray(), pb = probsB.ToArray();
        int[] y = labels.ToArray();
        var codes = ClassificationMetrics.CodeGroups(groups).Code;
        var resampler = new Resampler(codes, y, clusters);
        int n = pa.Length;
        var results = new double[permutations];
        Parallel.For(0, permutations, r =>
        {
            var rng = new Rng(seed, r);
            var a = (float[])pa.Clone(); var b = (float[])pb.Clone();
            double[]? ta = null, tb = null;
            if (thresholdA is double t1 && thresholdB is double t2)
            {
                ta = new double[n]; tb = new double[n];
                Array.Fill(ta, t1); Array.Fill(tb, t2);
            }
            for (int u = 0; u < resampler.Units; u++)
            {
                if ((rng.Next() & 1) == 0) continue;
                foreach (int i in resampler.Members(u))
                {
                    (a[i], b[i]) = (b[i], a[i]);
                    if (ta is not null) (ta[i], tb![i]) = (tb[i], ta[i]);
                }
            }
            var ma = new WeightedClassification(a, y, groups, options, thresholdA, ta).Evaluate(Bootstrap.Ones(n)).Summary[summaryKey];
            var mb = new WeightedClassification(b, y, groups, options, thresholdB, tb).Evaluate(Bootstrap.Ones(n)).Summary[summaryKey];
            results[r] = ma.IsDefined && mb.IsDefined ? ma.Value - mb.Value : double.NaN;
        });
        var defined = results.Where(x => !double.IsNaN(x)).ToArray();
        double obs = Math.Abs(diff.Value);
        // a relative tolerance so that a permutation reproducing |d_obs| up to rounding counts as "as extreme"
        int extreme = defined.Count(x => Math.Abs(x) >= obs - 1e-12 * Math.Max(1, obs));
        double p = (1.0 + extreme) / (1.0 + defined.Length);
        return new PairedComparison(summaryKey, estA, estB, diff, null, p, "permutation", permutations, defined.Length);
    }

    private static MetricValue Difference(MetricValue a, MetricValue b)
    {
        if (a.IsDefined && b.IsDefined) return MetricValue.Of(a.Value - b.Value);
        var u = a.IsDefined ? b : a;
        return MetricValue.Undefined(u.Reason!.Value, $"model {(a.IsDefined ? "B" : "A")}: {u.Detail}");
    }

    private static void RequireSummaryKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!ClassificationReport.SummaryKeys.Contains(key))
            throw new ArgumentException($"'{key}' is not a summary key (known: {string.Join(", ", ClassificationReport.SummaryKeys)}).", nameof(key));
    }

    /// <summary>Holm's step-down adjusted p-values (family-wise error), in the input order.</summary>
    public static double[] Holm(IReadOnlyList<double> pValues)
    {
        var p = CheckP(pValues);
        int m = p.Length;
        var order = Enumerable.Range(0, m).OrderBy(i => p[i]).ToArray();
        var adj = new double[m];
        double running = 0;
        for (int r = 0; r < m; r++)
        {
            running = Math.Max(running, Math.Min(1, (m - r) * p[order[r]]));
            adj[order[r]] = running;
        }
        return adj;
    }

    /// <summary>Benjamini–Hochberg step-up adjusted p-values (false-discovery rate), in the input order.</summary>
    public static double[] BenjaminiHochberg(IReadOnlyList<double> pValues)
    {
        var p = CheckP(pValues);
        int m = p.Length;
        var order = Enumerable.Range(0, m).OrderBy(i => p[i]).ToArray();
        var adj = new double[m];
        double running = 1;
        for (int r = m - 1; r >= 0; r--)
        {
            running = Math.Min(running, Math.Min(1, p[order[r]] * m / (r + 1)));
            adj[order[r]] = running;
        }
        return adj;
    }

    private static double[] CheckP(IReadOnlyList<double> pValues)
    {
        ArgumentNullException.ThrowIfNull(pValues);
        var p = pValues.ToArray();
        for (int i = 0; i < p.Length; i++)
            if (!(p[i] >= 0 && p[i] <= 1)) throw new ArgumentException($"p-value [{i}] = {p[i]} is not in [0, 1].", nameof(pValues));
        return p;
    }

    /// <summary>
    /// Friedman's test with Nemenyi post-hoc over <paramref name="scores"/>[dataset, model]. Ranks per data set, 1 = best
    /// (by <paramref name="direction"/>), ties averaged. Every cell must be a number: a missing result is an error naming it.
    /// </summary>
    public static FriedmanResult Friedman(double[,] scores, MetricDirection direction, IReadOnlyList<string>? models = null, double alpha = 0.05)
    {
        ArgumentNullException.ThrowIfNull(scores);
        int N = scores.GetLength(0), k = scores.GetLength(1);
        if (k < 2 || N < 2) throw new ArgumentException($"Friedman's test needs at least 2 data sets and 2 models (got {N} × {k}).", nameof(scores));
        if (direction == MetricDirection.Neither) throw new ArgumentException("Ranking needs a direction.", nameof(direction));
        if (!(alpha > 0 && alpha < 1)) throw new ArgumentOutOfRangeException(nameof(alpha));
        var names = models?.ToArray() ?? Enumerable.Range(0, k).Select(j => $"model {j}").ToArray();
        if (names.Length != k) throw new ArgumentException($"{names.Length} model names for {k} columns.", nameof(models));
        var avg = new double[k];
        for (int d = 0; d < N; d++)
        {
            var row = new double[k];
            for (int j = 0; j < k; j++)
            {
                double v = scores[d, j];
                if (double.IsNaN(v) || double.IsInfinity(v))
                    throw new ArgumentException($"scores[{d}, {j}] (data set {d}, {names[j]}) is {v}: Friedman's test needs every model scored on every data set.", nameof(scores));
                row[j] = direction == MetricDirection.HigherIsBetter ? -v : v;
            }
            var r = MidRanks(row);
            for (int j = 0; j < k; j++) avg[j] += r[j] / N;
        }
        double sumSq = avg.Sum(r => r * r);
        double chi = 12.0 * N / (k * (k + 1.0)) * (sumSq - k * (k + 1.0) * (k + 1.0) / 4.0);
        chi = Math.Max(chi, 0);
        double p = 1 - ChiSquared.CDF(k - 1, chi);
        double den = N * (k - 1.0) - chi;
        double f = den > 0 ? (N - 1.0) * chi / den : double.PositiveInfinity;
        double pf = den > 0 ? 1 - FisherSnedecor.CDF(k - 1, (k - 1.0) * (N - 1.0), f) : 0;
        double se = Math.Sqrt(k * (k + 1.0) / (6.0 * N));
        double cd = StudentizedRange.Quantile(1 - alpha, k) / Math.Sqrt(2) * se;
        var pn = new double[k, k];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                pn[i, j] = i == j ? 1 : Math.Clamp(1 - StudentizedRange.Cdf(Math.Abs(avg[i] - avg[j]) / se * Math.Sqrt(2), k), 0, 1);
        return new FriedmanResult(names, N, avg, chi, Math.Clamp(p, 0, 1), f, Math.Clamp(pf, 0, 1), alpha, cd, pn);
    }
}

/// <summary>The studentized range distribution with infinite degrees of freedom (what Nemenyi's test uses).</summary>
public static class StudentizedRange
{
    /// <summary>P(Q ≤ q) for the range of k independent standard normals: k ∫ φ(z) [Φ(z) − Φ(z − q)]^{k−1} dz.</summary>
    public static double Cdf(double q, int k)
    {
        if (k < 2) throw new ArgumentOutOfRangeException(nameof(k));
        if (q <= 0) return 0;
        if (double.IsPositiveInfinity(q)) return 1;
        double f(double z) => Normal.PDF(0, 1, z) * Math.Pow(Normal.CDF(0, 1, z) - Normal.CDF(0, 1, z - q), k - 1);
        // the integrand lives in [−9, 9 + q]; split at the two humps for accuracy
        double v = MathNet.Numerics.Integrate.GaussLegendre(f, -9, q / 2, 256) + MathNet.Numerics.Integrate.GaussLegendre(f, q / 2, 9 + q, 256);
        return Math.Clamp(k * v, 0, 1);
    }

    /// <summary>The q with <see cref="Cdf"/>(q, k) = p, by Brent's method.</summary>
    public static double Quantile(double p, int k)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p));
        return MathNet.Numerics.RootFinding.Brent.FindRoot(q => Cdf(q, k) - p, 1e-9, 40, 1e-12, 200);
    }
}
