using System.Globalization;
using FairMedFM.Engine.Cells;

namespace FairMedFM.Engine.Reports;

public enum MetricDirection { HigherIsBetter, LowerIsBetter, Unknown }

/// <summary>How a metric reads: its label, which direction is better and what it means.</summary>
public sealed record MetricInfo(string Key, string Label, MetricDirection Direction, string Meaning)
{
    public string DirectionText => Direction switch
    {
        MetricDirection.HigherIsBetter => "higher is better",
        MetricDirection.LowerIsBetter => "lower is better",
        _ => "direction not declared",
    };
}

/// <summary>FairMedFM's summary metrics (the names in results.json) with their direction.</summary>
public static class MetricCatalog
{
    private static readonly Dictionary<string, MetricInfo> Known = new MetricInfo[]
    {
        new("overall-auc", "AUC", MetricDirection.HigherIsBetter, "overall test AUC (utility)"),
        new("overall-acc", "ACC", MetricDirection.HigherIsBetter, "overall test accuracy at the chosen threshold"),
        new("overall-bce", "BCE", MetricDirection.LowerIsBetter, "overall binary cross-entropy"),
        new("overall-ece", "ECE", MetricDirection.LowerIsBetter, "overall expected calibration error"),
        new("worst-auc", "worst-group AUC", MetricDirection.HigherIsBetter, "lowest AUC over the groups"),
        new("auc-gap", "AUC gap", MetricDirection.LowerIsBetter, "max − min AUC over groups"),
        new("acc-gap", "ACC gap", MetricDirection.LowerIsBetter, "max − min accuracy over groups"),
        new("bce-gap", "BCE gap", MetricDirection.LowerIsBetter, "max − min BCE over groups"),
        new("ece-gap", "ECE gap", MetricDirection.LowerIsBetter, "max − min ECE over groups"),
        new("eod", "EOD", MetricDirection.HigherIsBetter, "equalized-odds score 1 − (ΔTPR + ΔTNR)/2, 1 = equal"),
        new("eo", "EO (ΔTPR)", MetricDirection.LowerIsBetter, "max − min TPR over groups"),
        // Segmentation (usages seg-*): per-sample Dice/IoU/HD95 averaged within groups, then spread over the group means.
        new("mean_dice", "Dice", MetricDirection.HigherIsBetter, "mean Dice over the scored samples (utility)"),
        new("delta_dice", "Dice gap", MetricDirection.LowerIsBetter, "max − min group mean Dice"),
        new("es_dice", "ES-Dice", MetricDirection.HigherIsBetter, "equity-scaled Dice: Dice / (1 + std of the group means)"),
        new("skewness_dice", "Dice skewness", MetricDirection.Unknown, "skewness of the group mean Dice values"),
        new("min_dice", "worst-group Dice", MetricDirection.HigherIsBetter, "lowest group mean Dice"),
        new("mean_iou", "IoU", MetricDirection.HigherIsBetter, "mean IoU over the scored samples"),
        new("delta_iou", "IoU gap", MetricDirection.LowerIsBetter, "max − min group mean IoU"),
        new("es_iou", "ES-IoU", MetricDirection.HigherIsBetter, "equity-scaled IoU"),
        new("mean_hd95", "HD95 (px)", MetricDirection.LowerIsBetter, "mean 95th-percentile Hausdorff distance in pixels"),
        new("delta_hd95", "HD95 gap", MetricDirection.LowerIsBetter, "max − min group mean HD95"),
        new("vol_mean_dice", "Dice per volume", MetricDirection.HigherIsBetter, "mean Dice of whole volumes (sliced 3-D data)"),
        new("vol_delta_dice", "Dice gap per volume", MetricDirection.LowerIsBetter, "max − min group mean per-volume Dice"),
        new("vol_es_dice", "ES-Dice per volume", MetricDirection.HigherIsBetter, "equity-scaled per-volume Dice"),
        new("vol_mean_iou", "IoU per volume", MetricDirection.HigherIsBetter, "mean IoU of whole volumes"),
    }.ToDictionary(m => m.Key, StringComparer.Ordinal);

    public static MetricInfo Get(string key) => Known.TryGetValue(key, out var m) ? m : new MetricInfo(key, key, Guess(key), key);

    /// <summary>Unlisted metrics: a gap or error is lower-is-better; otherwise the direction is not declared.</summary>
    private static MetricDirection Guess(string key) =>
        key.EndsWith("-gap", StringComparison.Ordinal) || key.StartsWith("delta_", StringComparison.Ordinal) || key.Contains("ece", StringComparison.Ordinal) || key.Contains("bce", StringComparison.Ordinal)
            ? MetricDirection.LowerIsBetter : MetricDirection.Unknown;

    /// <summary>The per-group values shown in the per-group bars.</summary>
    public static readonly (string Key, string Label)[] GroupBarMetrics = { ("auc", "AUC"), ("acc", "ACC"), ("tpr", "TPR"), ("tnr", "TNR") };

    /// <summary>The per-group values of a segmentation cell's bars (both on [0, 1]; HD95 is in pixels and stays in the tables).</summary>
    public static readonly (string Key, string Label)[] SegGroupBarMetrics = { ("dice", "Dice"), ("iou", "IoU") };
}

/// <summary>What a slice's cells are: classification (AUC on the trade-off's x axis) or segmentation (mean Dice).</summary>
public sealed record TaskMetrics(string Task, IReadOnlyList<string> Headline, string Utility, string Fairness, IReadOnlyList<(string Key, string Label)> GroupBars)
{
    public static readonly TaskMetrics Classification = new("classification", ResultWriter.HeadlineMetrics, "overall-auc", "auc-gap", MetricCatalog.GroupBarMetrics);
    public static readonly TaskMetrics Segmentation = new("segmentation", ResultWriter.SegHeadlineMetrics, "mean_dice", "delta_dice", MetricCatalog.SegGroupBarMetrics);

    public static TaskMetrics Of(string usage) => FairMedFM.Engine.Segmentation.SegUsages.IsSegmentation(usage) ? Segmentation : Classification;
}

/// <summary>One usage · method · attribute slice of a sweep.</summary>
public sealed record SliceKey(string Usage, string Method, string Attribute)
{
    public TaskMetrics Task => TaskMetrics.Of(Usage);
    public string Label => $"{Usage} · {Method} · {Attribute}";
    public string Slug => ReportText.Slug($"{Usage}-{Method}-{Attribute}");
}

/// <summary>One seed's value of a metric in a matrix cell.</summary>
public sealed record SeedValue(int Seed, string CellId, double? Value, string? Undefined, ConfidenceInterval? Ci);

/// <summary>A datasets × models matrix entry: mean ± sd over seeds (from <see cref="FairnessMatrix"/>) and, when the results carry
/// them, the per-seed CIs averaged over the seeds that have one.</summary>
public sealed record ReportMatrixCell(string Dataset, string Model, MatrixCell Stats, IReadOnlyList<SeedValue> Seeds)
{
    public ConfidenceInterval? Ci
    {
        get
        {
            // An entry the matrix refused to aggregate (several datasets under one name) has no interval either.
            if (Stats.UndefinedReasons.Any(r => r.StartsWith(FairnessMatrix.AmbiguousDataset, StringComparison.Ordinal))) return null;
            var cis = Seeds.Where(s => s.Value is not null && s.Ci is not null).Select(s => s.Ci!).ToList();
            return cis.Count == 0 ? null : new ConfidenceInterval(cis.Average(c => c.Lower), cis.Average(c => c.Upper), cis[0].Level);
        }
    }

    public int CiSeeds => Ci is null ? 0 : Seeds.Count(s => s.Value is not null && s.Ci is not null);

    /// <summary>Value text: "0.572 ± 0.055", "undefined (NoPositives)" (never 0), with "(1 of 3 undefined)" when some seeds are.</summary>
    public string ValueText => Stats.Format();

    public string CiText => Ci is { } c ? (Seeds.Count > 1 ? $"CI {c.Format()} (mean of {CiSeeds})" : $"CI {c.Format()}") : "no CI";
}

public sealed record ReportMatrix(SliceKey Slice, MetricInfo Metric, IReadOnlyList<string> Datasets, IReadOnlyList<string> Models,
    IReadOnlyDictionary<(string Dataset, string Model), ReportMatrixCell> Cells);

/// <summary>One (dataset, model) point of a utility–fairness trade-off plot.</summary>
public sealed record TradeOffPoint(string Dataset, string Model, ReportMatrixCell X, ReportMatrixCell Y)
{
    public bool Defined => X.Stats.Mean is not null && Y.Stats.Mean is not null;
}

public sealed record TradeOff(SliceKey Slice, MetricInfo XMetric, MetricInfo YMetric, IReadOnlyList<TradeOffPoint> Points);

/// <summary>One group's bar values for a chosen cell (the overall row first).</summary>
public sealed record GroupBarRow(string Group, int N, int Positives, int Negatives, IReadOnlyList<(string Key, MetricEntry? Entry, ConfidenceInterval? Ci)> Values);

public sealed record GroupBars(CellResult Cell, SliceKey Slice, string Dataset, IReadOnlyList<GroupBarRow> Rows)
{
    /// <summary>The per-group metrics of the bars, in the order of each row's values.</summary>
    public IReadOnlyList<(string Key, string Label)> Metrics => Slice.Task.GroupBars;
    public bool Segmentation => Slice.Task == TaskMetrics.Segmentation;
}

/// <summary>Everything the figures, tables and exports show, computed once from a <see cref="ReportInput"/>.</summary>
public sealed class ReportModel
{
    public required ReportInput Input { get; init; }
    public required IReadOnlyList<MetricInfo> Metrics { get; init; }
    public required IReadOnlyList<SliceKey> Slices { get; init; }
    public required IReadOnlyList<ReportMatrix> Matrices { get; init; }
    public required IReadOnlyList<TradeOff> TradeOffs { get; init; }
    public required IReadOnlyList<GroupBars> Bars { get; init; }

    /// <summary>
    /// Builds the report's content. Each slice follows its task: classification slices default to the summary's headline
    /// metrics and plot overall AUC against the AUC gap; segmentation slices default to the Dice headline metrics and plot
    /// mean Dice against the Dice gap. <paramref name="metrics"/>, <paramref name="utilityMetric"/> and
    /// <paramref name="fairnessMetric"/> (null: the task's defaults) apply to the slices whose cells have them; each must be
    /// in the results somewhere, else the report fails naming it.
    /// </summary>
    public static ReportModel Build(ReportInput input, IReadOnlyList<string>? metrics, string? cellId = null,
        string? utilityMetric = null, string? fairnessMetric = null)
    {
        if (metrics is { Count: 0 }) metrics = null;
        var done = input.Done.ToList();
        var known = done.Where(c => c.Summary is not null).SelectMany(c => c.Summary!.Keys).ToHashSet(StringComparer.Ordinal);
        if (done.Count > 0)
            foreach (var m in (metrics ?? []).Concat(new[] { utilityMetric, fairnessMetric }.OfType<string>()).Where(m => !known.Contains(m)))
                throw ReportException.MetricNotInResults(m, known.Order(StringComparer.Ordinal).ToList());

        // Slices in the order the sweep listed them (attributes as the grid gave them).
        var slices = input.Cells.Select(c => new SliceKey(c.Spec.Usage, c.Spec.Method, c.Spec.Attribute)).Distinct()
            .Where(s => done.Any(c => Key(c) == s)).ToList();
        var inputs = done.Select(MatrixInput.From).ToList();

        ReportMatrix Matrix(SliceKey s, string metric)
        {
            var slice = FairnessMatrix.Build(inputs, s.Usage, s.Method, s.Attribute, metric);
            var cells = new Dictionary<(string, string), ReportMatrixCell>();
            foreach (var (k, stats) in slice.Cells)
            {
                var seeds = done.Where(c => Key(c) == s && ReportInput.DatasetName(c) == k.Dataset && c.Spec.Model == k.Model).OrderBy(c => c.Spec.Seed)
                    .Select(c =>
                    {
                        var e = c.Summary is not null && c.Summary.TryGetValue(metric, out var x) ? x : null;
                        return new SeedValue(c.Spec.Seed, c.CellId, e?.Value, e is null ? "not computed" : e.Value is null ? e.Undefined ?? "missing" : null,
                            input.Intervals(c).Summary(metric));
                    }).ToList();
                cells[k] = new ReportMatrixCell(k.Dataset, k.Model, stats, seeds);
            }
            return new ReportMatrix(s, MetricCatalog.Get(metric), slice.Datasets, slice.Models, cells);
        }

        // The metrics a slice's cells have; asked-for metrics that none of them has fall back to the slice's task defaults.
        HashSet<string> Has(SliceKey s) => done.Where(c => Key(c) == s && c.Summary is not null).SelectMany(c => c.Summary!.Keys).ToHashSet(StringComparer.Ordinal);
        var sliceMetrics = slices.ToDictionary(s => s, s =>
        {
            var has = Has(s);
            var asked = metrics?.Where(has.Contains).ToList();
            return asked is { Count: > 0 } ? asked : s.Task.Headline.Where(has.Contains).DefaultIfEmpty(s.Task.Headline[0]).ToList();
        });
        var matrices = slices.SelectMany(s => sliceMetrics[s].Select(m => Matrix(s, m))).ToList();
        var tradeOffs = slices.Select(s =>
        {
            var has = Has(s);
            var x = Matrix(s, utilityMetric is not null && has.Contains(utilityMetric) ? utilityMetric : s.Task.Utility);
            var y = Matrix(s, fairnessMetric is not null && has.Contains(fairnessMetric) ? fairnessMetric : s.Task.Fairness);
            var points = x.Datasets.SelectMany(d => x.Models.Select(m => (d, m)))
                .Where(k => x.Cells.ContainsKey(k) && y.Cells.ContainsKey(k))
                .Select(k => new TradeOffPoint(k.d, k.m, x.Cells[k], y.Cells[k])).ToList();
            return new TradeOff(s, x.Metric, y.Metric, points);
        }).ToList();

        List<CellResult> chosen;
        if (cellId is not null)
        {
            var hits = input.Cells.Where(c => c.CellId.StartsWith(cellId, StringComparison.OrdinalIgnoreCase)).ToList();
            if (hits.Count == 0) throw new ReportException($"--cell {cellId}: no cell with this id in {input.Source}");
            if (hits.Count > 1) throw new ReportException($"--cell {cellId}: {hits.Count} cells start with this id; give more of it");
            if (hits[0].Status != "done") throw new ReportException($"--cell {cellId}: the cell failed ({hits[0].Error}); it has no per-group values");
            chosen = hits;
        }
        else chosen = slices.Select(s => done.First(c => Key(c) == s)).ToList();

        var bars = chosen.Select(c =>
        {
            var ci = input.Intervals(c);
            GroupBarRow Row(GroupResult g, string ciGroup) => new(g.Group, g.N, g.Positives, g.Negatives,
                Key(c).Task.GroupBars.Select(m => (m.Key, g.Values.TryGetValue(m.Key, out var e) ? e : null, ci.Group(ciGroup, m.Key))).ToList());
            var rows = new List<GroupBarRow>();
            if (c.Overall is { } o) rows.Add(Row(o with { Group = "overall" }, CellIntervals.OverallGroup));
            rows.AddRange((c.Groups ?? Array.Empty<GroupResult>()).Select(g => Row(g, g.Group)));
            return new GroupBars(c, Key(c), ReportInput.DatasetName(c), rows);
        }).ToList();

        return new ReportModel
        {
            Input = input, Metrics = sliceMetrics.Values.SelectMany(m => m).Distinct().Select(MetricCatalog.Get).ToList(), Slices = slices, Matrices = matrices, TradeOffs = tradeOffs, Bars = bars,
        };
    }

    private static SliceKey Key(CellResult c) => new(c.Spec.Usage, c.Spec.Method, c.Spec.Attribute);
}

internal static class ReportText
{
    public static string F(double v, string fmt = "0.000") => v.ToString(fmt, CultureInfo.InvariantCulture);

    /// <summary>File-name-safe slug: letters, digits, '-', '.'; everything else becomes '_'.</summary>
    public static string Slug(string s)
    {
        var chars = s.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '.' ? ch : '_').ToArray();
        return new string(chars).Trim('_');
    }
}
