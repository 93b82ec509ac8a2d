using System.Globalization;
using FairMedFM.Engine.Cells;

namespace FairMedFM.Engine.Reports;

/// <summary>What the matrix needs of one finished cell. <see cref="Card"/>: the dataset card's path (null when unknown), so
/// two cards that share a <c>name:</c> are never averaged together as if they were seeds of one dataset.</summary>
public sealed record MatrixInput(string Dataset, string Model, string Usage, string Method, string Attribute, int Seed,
    IReadOnlyDictionary<string, MetricEntry> Summary, IReadOnlyList<GroupSize> Groups, string? Card = null)
{
    public static MatrixInput From(CellResult r) => new(r.DatasetName ?? Config.DatasetNames.Of(r.Spec.Dataset), r.Spec.Model,
        r.Spec.Usage, r.Spec.Method, r.Spec.Attribute, r.Spec.Seed, r.Summary ?? new Dictionary<string, MetricEntry>(),
        (r.Groups ?? Array.Empty<GroupResult>()).Select(g => new GroupSize(g.Group, g.N, g.Positives, g.Negatives)).ToList(), r.Spec.Dataset);
}

public sealed record GroupSize(string Group, int N, int Positives, int Negatives);

/// <summary>One dataset × model entry of the matrix, aggregated over seeds. Undefined seeds are counted, not averaged in.
/// <see cref="Lower"/>/<see cref="Upper"/>: the bootstrap interval of a single seed, or with several seeds the mean of the
/// per-seed bounds (null when the cells computed none).</summary>
public sealed record MatrixCell(string Dataset, string Model, double? Mean, double? Std, int Seeds, int UndefinedSeeds,
    IReadOnlyList<string> UndefinedReasons, IReadOnlyList<GroupSize> GroupSizes, double? Lower = null, double? Upper = null,
    string? NoInterval = null)
{
    /// <summary>Marks an estimate that lies outside its own (percentile) interval.</summary>
    public const string OutsideIntervalMark = "†";

    /// <summary>The legend line for <see cref="OutsideIntervalMark"/>.</summary>
    public const string OutsideIntervalNote = "† the estimate lies outside its percentile interval: the bootstrap of a max − min gap is biased " +
                                              "upward (README, Confidence intervals); read the estimate, or use BCa intervals.";

    /// <summary>Whether <paramref name="estimate"/> lies outside [<paramref name="lower"/>, <paramref name="upper"/>] (false without both bounds).</summary>
    public static bool IsOutside(double estimate, double? lower, double? upper) =>
        lower is { } lo && upper is { } hi && (estimate < lo || estimate > hi);

    public string Format()
    {
        if (Mean is not { } m) return UndefinedSeeds > 0 ? $"undefined ({string.Join("; ", UndefinedReasons.Distinct())})" : "–";
        var s = m.ToString("0.000", CultureInfo.InvariantCulture);
        if (Seeds > 1 && Std is { } sd) s += " ± " + sd.ToString("0.000", CultureInfo.InvariantCulture);
        if (Lower is { } lo && Upper is { } hi)
        {
            s += string.Create(CultureInfo.InvariantCulture, $" [{lo:0.000}, {hi:0.000}]");
            // A percentile interval of a max − min gap is biased upward and can miss its own estimate: flag it, never hide it.
            if (IsOutside(m, lo, hi)) s += " " + OutsideIntervalMark;
        }
        else if (NoInterval is not null) s += $" [no interval: {NoInterval}]";
        if (UndefinedSeeds > 0) s += $" ({UndefinedSeeds} undefined)";
        return s;
    }
}

public sealed record MatrixSlice(string Usage, string Method, string Attribute, string Metric,
    IReadOnlyList<string> Datasets, IReadOnlyList<string> Models, IReadOnlyDictionary<(string Dataset, string Model), MatrixCell> Cells);

/// <summary>The datasets × models fairness matrix per usage, method, attribute and metric.</summary>
public static class FairnessMatrix
{
    public static MatrixSlice Build(IEnumerable<MatrixInput> cells, string usage, string method, string attribute, string metric)
    {
        var sel = cells.Where(c => c.Usage == usage && c.Method == method && c.Attribute == attribute).ToList();
        var datasets = sel.Select(c => c.Dataset).Distinct().Order(StringComparer.Ordinal).ToList();
        var models = sel.Select(c => c.Model).Distinct().Order(StringComparer.Ordinal).ToList();
        var dict = new Dictionary<(string, string), MatrixCell>();
        foreach (var g in sel.GroupBy(c => (c.Dataset, c.Model)))
        {
            // Several cards with one name, or two cells for one seed (e.g. a sweep extended with other settings): their spread
            // is not a spread over seeds. The entry is undefined with the reason, never a silently averaged number.
            if (Ambiguity(g.ToList()) is { } clash)
            {
                dict[g.Key] = new MatrixCell(g.Key.Dataset, g.Key.Model, null, null, 0, g.Count(), [clash], g.OrderBy(c => c.Seed).First().Groups);
                continue;
            }
            var values = new List<double>();
            var reasons = new List<string>();
            var lows = new List<double>(); var highs = new List<double>();
            string? noInterval = null;
            foreach (var c in g)
            {
                if (c.Summary.TryGetValue(metric, out var e) && e.Value is { } v)
                {
                    values.Add(v);
                    if (e.Lower is { } lo && e.Upper is { } hi) { lows.Add(lo); highs.Add(hi); }
                    else if (e.NoIntervalOnePatient) noInterval = "1 patient";
                }
                else reasons.Add(c.Summary.TryGetValue(metric, out var u) ? u.Undefined ?? "missing" : "not computed");
            }
            double? mean = values.Count > 0 ? values.Average() : null;
            double? std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean!.Value) * (v - mean.Value)) / (values.Count - 1)) : null;
            // Group sizes of the first seed: splits differ slightly per seed, the sizes tell the reader how much data each group had.
            var sizes = g.OrderBy(c => c.Seed).First().Groups;
            bool allIntervals = lows.Count > 0 && lows.Count == values.Count;
            dict[g.Key] = new MatrixCell(g.Key.Dataset, g.Key.Model, mean, std, values.Count, reasons.Count, reasons, sizes,
                allIntervals ? lows.Average() : null, allIntervals ? highs.Average() : null, allIntervals ? null : noInterval);
        }
        return new MatrixSlice(usage, method, attribute, metric, datasets, models, dict);
    }

    /// <summary>The undefined reason of an entry that mixes several datasets (or several cells of one seed).</summary>
    public const string AmbiguousDataset = "AmbiguousDataset";

    /// <summary>The reason a dataset × model entry cannot be aggregated over seeds, or null when it can.</summary>
    internal static string? Ambiguity(IReadOnlyList<MatrixInput> entry)
    {
        var cards = entry.Select(c => c.Card).Where(c => c is not null).Distinct().ToList();
        if (cards.Count > 1)
            return $"{AmbiguousDataset}: {cards.Count} dataset cards are named '{entry[0].Dataset}' ({string.Join(", ", cards)}); give each card its own name";
        var seed = entry.GroupBy(c => c.Seed).FirstOrDefault(s => s.Count() > 1);
        return seed is null ? null
            : $"{AmbiguousDataset}: {seed.Count()} results for seed {seed.Key} of '{entry[0].Dataset}' × {entry[0].Model} (several datasets share this name, or the sweep holds cells with other settings); give each card its own name or split the sweep";
    }

    /// <summary>
    /// One metric per group of each dataset × model (segmentation cells: <c>dice</c>, <c>iou</c>, <c>hd95</c>,
    /// <c>vol_dice</c> …), aggregated over seeds exactly as <see cref="Build"/> aggregates a summary metric. Groups come in
    /// the order of the first cell (the card's label order); the sizes are each group's own.
    /// </summary>
    public static IReadOnlyList<(string Dataset, string Model, string Group, MatrixCell Cell)> GroupValues(IEnumerable<CellResult> results,
        string usage, string method, string attribute, string metric)
    {
        var rows = new List<(string, string, string, MatrixCell)>();
        var perGroup = results.Where(r => r.Status == "done" && r.Spec.Usage == usage && r.Spec.Method == method && r.Spec.Attribute == attribute)
            .SelectMany(r => (r.Groups ?? Array.Empty<GroupResult>()).Select(g => (Input: MatrixInput.From(r), Group: g)))
            .GroupBy(x => (x.Input.Dataset, x.Input.Model, x.Group.Group))
            .OrderBy(g => g.Key.Dataset, StringComparer.Ordinal).ThenBy(g => g.Key.Model, StringComparer.Ordinal);
        foreach (var g in perGroup)
        {
            var inputs = g.Select(x => x.Input with
            {
                Summary = x.Group.Values,
                Groups = [new GroupSize(x.Group.Group, x.Group.N, x.Group.Positives, x.Group.Negatives)],
            });
            rows.Add((g.Key.Dataset, g.Key.Model, g.Key.Group, Build(inputs, usage, method, attribute, metric).Cells[(g.Key.Dataset, g.Key.Model)]));
        }
        return rows;
    }
}
