using System.Globalization;
using System.Text;
using System.Text.Json;
using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Metrics;

namespace FairMedFM.Engine.Evaluation;

/// <summary>Settings of <c>fairmedfm evaluate</c>.</summary>
public sealed record EvaluateSettings
{
    /// <summary>"default" or "reference".</summary>
    public string Mode { get; init; } = "default";
    /// <summary>"best-f1", "youden", "fixed" (0.5), "fixed-specificity".</summary>
    public string Threshold { get; init; } = "best-f1";
    /// <summary>A given decision threshold (Default mode), overriding the rule.</summary>
    public double? ThresholdValue { get; init; }
    public double Specificity { get; init; } = 0.9;
    public int EceBins { get; init; } = 10;
    /// <summary>Bootstrap resamples (0: no intervals).</summary>
    public int Bootstrap { get; init; } = 1000;
    /// <summary>"percentile" or "bca".</summary>
    public string Ci { get; init; } = "percentile";
    public double CiLevel { get; init; } = 0.95;
    public long Seed { get; init; }
    /// <summary>Also evaluate the intersection of all attributes.</summary>
    public bool Intersections { get; init; }

    public void Validate()
    {
        new MetricsConfig { Mode = Mode, Threshold = Threshold, EceBins = EceBins, Specificity = Specificity, Bootstrap = Bootstrap, Ci = Ci, CiLevel = CiLevel }.Validate(asFlags: true);
        if (ThresholdValue is { } t && (double.IsNaN(t) || Mode == "reference"))
            throw new ConfigException(Mode == "reference" ? "--threshold-value: reference mode chooses its threshold on the evaluated set" : "--threshold-value is NaN");
    }
}

/// <summary>One metric in the JSON: value or null + reason, interval, and the catalogue's direction and kind.</summary>
public sealed record EvaluatedMetric(double? Value, string? Undefined, string? Detail, double? Lower, double? Upper, string? Direction, string? Kind);

public sealed record EvaluatedGroup(string Group, int N, int Positives, int Negatives, IReadOnlyDictionary<string, EvaluatedMetric> Values);

/// <summary>The report of one attribute (or intersection), for one class in a multi-class file.</summary>
public sealed record EvaluatedAttribute(string Attribute, string? Class, IReadOnlyDictionary<string, EvaluatedMetric> Summary,
    EvaluatedGroup Overall, IReadOnlyList<EvaluatedGroup> Groups, double Threshold, string ThresholdChosenOn);

public sealed record EvaluationResult(string File, string Score, int Rows, int TestRows, int ValidationRows, int TrainRowsDropped,
    string Mode, string ThresholdRule, int Bootstrap, string Ci, double CiLevel, long Seed, bool ClusteredByPatient, int? TestPatients,
    IReadOnlyList<EvaluatedAttribute> Reports)
{
    public string ToJson() => JsonSerializer.Serialize(this, JsonDefaults.Pretty);
}

/// <summary>The logic of <c>fairmedfm evaluate</c>: user predictions in, every metric with its interval and counts out.</summary>
public static class PredictionsEvaluator
{
    public static EvaluationResult Run(Predictions p, EvaluateSettings s)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(s);
        s.Validate();
        var config = new MetricsConfig { Mode = s.Mode, Threshold = s.Threshold, EceBins = s.EceBins, Specificity = s.Specificity };
        var options = s.Mode == "reference"
            ? new MetricsOptions(MetricsMode.Reference, ThresholdRule.BestF1, s.EceBins)
            : new MetricsOptions(MetricsMode.Default, config.Rule, s.EceBins, s.Specificity);

        int[] test = Enumerable.Range(0, p.Count).Where(i => p.Splits is null || p.Splits[i] == "test").ToArray();
        int[] val = p.Splits is null ? [] : Enumerable.Range(0, p.Count).Where(i => p.Splits[i] == "validation").ToArray();
        if (test.Length == 0) throw new DataException("no test rows: the split column has only validation (and train) rows", p.File);

        int classes = p.ClassScores?[0].Length ?? 1;
        var reports = new List<EvaluatedAttribute>();
        for (int c = 0; c < classes; c++)
        {
            string? cls = p.ClassScores is null ? null : c.ToString(CultureInfo.InvariantCulture);
            float[] score = p.ClassScores is null ? p.Scores! : p.ClassScores.Select(v => v[c]).ToArray();
            int[] label = p.ClassScores is null ? p.Labels : p.Labels.Select(y => y == c ? 1 : 0).ToArray();
            float[] ts = test.Select(i => score[i]).ToArray();
            int[] ty = test.Select(i => label[i]).ToArray();
            string[]? tp = p.Patients is null ? null : test.Select(i => p.Patients[i]).ToArray();

            double? frozen = null;
            string chosenOn;
            if (s.Mode == "reference") chosenOn = "test (reference mode)";
            else if (s.ThresholdValue is { } given) { frozen = given; chosenOn = "given"; }
            else if (options.Rule == ThresholdRule.Fixed) { frozen = 0.5; chosenOn = "fixed"; }
            else if (val.Length > 0)
            {
                var vs = val.Select(i => score[i]).ToArray();
                var vy = val.Select(i => label[i]).ToArray();
                var chosen = ClassificationMetrics.ChooseThresholdOrUndefined(vs, vy, options.Rule, options.TargetSpecificity);
                if (!chosen.IsDefined)
                    throw new DataException($"no {s.Threshold} threshold on the {val.Length} validation rows{(cls is null ? "" : $" (class {cls})")}: {MetricValue.ReasonText(chosen.Reason!.Value)}; use --threshold fixed or --threshold-value", p.File);
                frozen = chosen.Value;
                chosenOn = "validation";
            }
            else chosenOn = "test (no validation rows)";

            var attributes = p.Attributes.ToDictionary(kv => kv.Key, kv => test.Select(i => kv.Value[i]).ToArray());
            if (s.Intersections && attributes.Count > 1)
                attributes[string.Join("×", p.Attributes.Keys)] = Grouping.Intersect(attributes.Values.ToArray());
            foreach (var (name, groups) in attributes)
            {
                ClassificationReport report;
                ClassificationBootstrapReport? iv = null;
                if (s.Bootstrap > 0)
                {
                    iv = Metrics.Bootstrap.Classification(ts, ty, groups, options,
                        new BootstrapOptions(s.Bootstrap, s.Seed, s.Ci == "bca" ? CiMethod.Bca : CiMethod.Percentile, s.CiLevel), frozen, tp);
                    report = iv.Estimate;
                }
                else report = ClassificationMetrics.Evaluate(ts, ty, groups, options, frozen);
                reports.Add(new EvaluatedAttribute(name, cls,
                    report.Summary.ToDictionary(kv => kv.Key, kv => Entry(kv.Key, kv.Value, iv?.Summary.GetValueOrDefault(kv.Key))),
                    Group(report.Overall, iv?.Overall), report.Groups.Select(g => Group(g, iv?.Groups.GetValueOrDefault(g.Group))).ToList(),
                    report.Threshold, report.ThresholdFallbackReason is { } fb ? $"{chosenOn}; rule undefined ({MetricValue.ReasonText(fb)}), 0.5 used" : chosenOn));
            }
        }
        return new EvaluationResult(p.File, p.ScoreDescription, p.Count, test.Length, val.Length, p.TrainRowsDropped, s.Mode,
            s.ThresholdValue is null ? s.Threshold : "given", s.Bootstrap, s.Ci, s.CiLevel, s.Seed, p.Patients is not null,
            p.Patients is null ? null : test.Select(i => p.Patients[i]).Distinct().Count(), reports);
    }

    private static EvaluatedMetric Entry(string key, MetricValue v, ConfidenceInterval? ci)
    {
        var info = MetricCatalog.Get(key);
        return new EvaluatedMetric(v.IsDefined ? v.Value : null, v.IsDefined ? null : v.Reason.ToString(),
            v.Detail ?? (ci is { Detail: { } d } ? "interval: " + d : null),
            ci is { IsDefined: true } ? ci.Lower : null, ci is { IsDefined: true } ? ci.Upper : null,
            info?.Direction.ToString(), info?.Kind.ToString());
    }

    private static EvaluatedGroup Group(GroupReport g, IReadOnlyDictionary<string, ConfidenceInterval>? cis) =>
        new(g.Group, g.Counts.N, g.Counts.Positives, g.Counts.Negatives,
            g.Values.ToDictionary(kv => kv.Key, kv => Entry(kv.Key, kv.Value, cis?.GetValueOrDefault(kv.Key))));

    /// <summary>Plain-text tables: per attribute, the summary metrics with intervals, then the groups with n/pos/neg and main values.</summary>
    public static string ToText(EvaluationResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"{r.File}: {r.TestRows} test rows" + (r.ValidationRows > 0 ? $", {r.ValidationRows} validation rows" : "") +
                      (r.TrainRowsDropped > 0 ? $" ({r.TrainRowsDropped} train rows ignored)" : "") +
                      $"; mode {r.Mode}; threshold {r.ThresholdRule}" +
                      (r.Bootstrap > 0 ? string.Create(ci, $"; {r.CiLevel:P0} {r.Ci} intervals from {r.Bootstrap} resamples (stratified by group × label{(r.ClusteredByPatient ? $", clustered by {r.TestPatients} patients" : "")})") : ""));
        bool marked = false;
        string V(EvaluatedMetric m)
        {
            if (m.Value is not { } v) return $"undefined ({m.Undefined})";
            var s = v.ToString("0.0000", ci);
            if (m.Lower is { } lo && m.Upper is { } hi)
            {
                s += $" [{lo.ToString("0.0000", ci)}, {hi.ToString("0.0000", ci)}]";
                // As in the matrix tables: an estimate outside its own percentile interval is flagged, never shown unmarked.
                if (v < lo || v > hi) { s += " " + Reports.MatrixCell.OutsideIntervalMark; marked = true; }
            }
            return s;
        }
        foreach (var a in r.Reports)
        {
            sb.AppendLine();
            sb.AppendLine($"== attribute {a.Attribute}{(a.Class is null ? "" : $" · class {a.Class} vs rest")} · threshold {a.Threshold.ToString("0.######", ci)} ({a.ThresholdChosenOn})");
            int w = a.Summary.Keys.Max(k => k.Length);
            foreach (var (k, m) in a.Summary)
            {
                var dir = m.Direction switch { "HigherIsBetter" => "↑", "LowerIsBetter" => "↓", _ => " " };
                sb.AppendLine($"  {k.PadRight(w)} {dir} {V(m)}");
            }
            sb.AppendLine();
            string[] cols = ["auc", "acc", "tpr", "tnr", "ppv", "selection-rate", "ece"];
            sb.AppendLine($"  {"group",-16} {"n",6} {"pos",6} {"neg",6}  " + string.Join("  ", cols.Select(c => c.PadRight(10))));
            foreach (var g in new[] { a.Overall }.Concat(a.Groups))
            {
                var vals = cols.Select(c => g.Values.TryGetValue(c, out var m) ? (m.Value is { } v ? v.ToString("0.0000", ci) : "undef.") : "");
                sb.AppendLine($"  {g.Group,-16} {g.N,6} {g.Positives,6} {g.Negatives,6}  " + string.Join("  ", vals.Select(v => v.PadRight(10))));
            }
        }
        if (marked) sb.AppendLine().AppendLine(Reports.MatrixCell.OutsideIntervalNote);
        return sb.ToString();
    }
}
