using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FairMedFM.Engine.Cells;

namespace FairMedFM.Engine.Reports;

/// <summary>A report input or option that cannot be used (missing file, bad JSON, unknown cell id); the message names it.</summary>
/// <param name="unknownMetric">For a metric the results do not have (--metrics, --tradeoff-metric): its name, with
/// <paramref name="known"/> the metrics they do have, so the command line can suggest the nearest.</param>
public sealed class ReportException(string message, string? unknownMetric = null, IReadOnlyList<string>? known = null) : Exception(message)
{
    public string? UnknownMetric { get; } = unknownMetric;
    public IReadOnlyList<string> Known { get; } = known ?? [];

    public static ReportException MetricNotInResults(string metric, IReadOnlyList<string> known) =>
        new($"metric '{metric}' is not in these results; they have: {string.Join(", ", known)}", metric, known);
}

/// <summary>A confidence interval read from a metric entry (bootstrap CIs, when the results carry them).</summary>
public sealed record ConfidenceInterval(double Lower, double Upper, double? Level = null)
{
    public string Format(string fmt = "0.000") =>
        $"[{Lower.ToString(fmt, CultureInfo.InvariantCulture)}, {Upper.ToString(fmt, CultureInfo.InvariantCulture)}]";
}

/// <summary>
/// Reads optional confidence-interval fields of a metric entry by name from the raw JSON, so the report works on results
/// written before CIs existed and lights up once they are there. Accepted shapes (names case-insensitive):
/// <c>{"value", "lower", "upper"}</c>, <c>ci_lower/ci_upper</c>, <c>ci_low/ci_high</c>, <c>low/high</c>,
/// <c>{"ci": {"lower", "upper"}}</c> or <c>{"ci": [lower, upper]}</c>; an optional <c>level</c>/<c>ci_level</c>.
/// Anything else (absent, null, non-finite, lower &gt; upper) is "no CI".
/// </summary>
public static class CiAdapter
{
    private static readonly (string Lower, string Upper)[] Pairs =
        { ("lower", "upper"), ("ci_lower", "ci_upper"), ("ci_low", "ci_high"), ("low", "high"), ("lo", "hi") };

    private static readonly string[] LevelNames = { "level", "ci_level", "confidence", "confidence_level" };

    public static ConfidenceInterval? Read(JsonNode? entry)
    {
        if (entry is not JsonObject o) return null;
        foreach (var (ln, un) in Pairs)
        {
            if (Number(Get(o, ln)) is { } l && Number(Get(o, un)) is { } u) return Make(l, u, o);
        }
        var ci = Get(o, "ci") ?? Get(o, "confidence_interval");
        if (ci is JsonObject co) return Read(co) is { } inner ? inner with { Level = inner.Level ?? Level(o) } : null;
        if (ci is JsonArray a && a.Count == 2 && Number(a[0]) is { } al && Number(a[1]) is { } au) return Make(al, au, o);
        return null;
    }

    private static ConfidenceInterval? Make(double l, double u, JsonObject o) => l <= u ? new ConfidenceInterval(l, u, Level(o)) : null;

    private static double? Level(JsonObject o)
    {
        foreach (var n in LevelNames) if (Number(Get(o, n)) is { } v) return v;
        return null;
    }

    private static JsonNode? Get(JsonObject o, string name)
    {
        foreach (var kv in o) if (string.Equals(kv.Key, name, StringComparison.OrdinalIgnoreCase)) return kv.Value;
        return null;
    }

    private static double? Number(JsonNode? n)
    {
        if (n is not JsonValue v) return null;
        if (v.TryGetValue<double>(out var d)) return double.IsFinite(d) ? d : null;
        // Numbers written as strings ("NaN" is undefined, not a bound).
        if (v.TryGetValue<string>(out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) && double.IsFinite(p)) return p;
        return null;
    }
}

/// <summary>The CIs of one cell, by scope: the summary metrics, the overall row and each group's values.</summary>
public sealed class CellIntervals
{
    public static readonly CellIntervals None = new();
    private readonly Dictionary<string, ConfidenceInterval> _summary = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Group, string Key), ConfidenceInterval> _groups = new();

    public int Count => _summary.Count + _groups.Count;

    public ConfidenceInterval? Summary(string metric) => _summary.GetValueOrDefault(metric);

    /// <summary>Per-group value CI; the overall row is the group named <see cref="OverallGroup"/>.</summary>
    public ConfidenceInterval? Group(string group, string key) => _groups.GetValueOrDefault((group, key));

    public const string OverallGroup = "\u0000overall";

    internal static CellIntervals From(JsonObject cell)
    {
        var ci = new CellIntervals();
        if (Prop(cell, "summary") is JsonObject summary)
            foreach (var (k, v) in summary) if (CiAdapter.Read(v) is { } c) ci._summary[k] = c;
        if (Prop(cell, "overall") is JsonObject overall) ci.AddGroup(OverallGroup, overall);
        if (Prop(cell, "groups") is JsonArray groups)
            foreach (var g in groups.OfType<JsonObject>())
                if (Prop(g, "group") is JsonValue v && v.TryGetValue<string>(out var name)) ci.AddGroup(name, g);
        return ci;
    }

    private void AddGroup(string name, JsonObject g)
    {
        if (Prop(g, "values") is not JsonObject values) return;
        foreach (var (k, v) in values) if (CiAdapter.Read(v) is { } c) _groups[(name, k)] = c;
    }

    private static JsonNode? Prop(JsonObject o, string name) => o.TryGetPropertyValue(name, out var v) ? v : null;
}

/// <summary>A sweep's results as the report reads them: the cells, their optional CIs, the sweep's name and the data attribution.</summary>
public sealed class ReportInput
{
    private readonly Dictionary<CellResult, CellIntervals> _intervals;

    private ReportInput(string source, string title, IReadOnlyList<CellResult> cells, Dictionary<CellResult, CellIntervals> intervals,
        IReadOnlyList<(string File, string Text)> attributions)
    {
        Source = source; Title = title; Cells = cells; _intervals = intervals; Attributions = attributions;
    }

    /// <summary>The results.json the report was made from (absolute path).</summary>
    public string Source { get; }
    /// <summary>The sweep's name (from summary.md beside results.json) or the folder's name.</summary>
    public string Title { get; }
    public IReadOnlyList<CellResult> Cells { get; }
    /// <summary>Licence and attribution files found beside results.json (the ResultWriter copies them there).</summary>
    public IReadOnlyList<(string File, string Text)> Attributions { get; }

    public IEnumerable<CellResult> Done => Cells.Where(c => c.Status == "done");
    public IEnumerable<CellResult> Failed => Cells.Where(c => c.Status != "done");

    public CellIntervals Intervals(CellResult cell) => _intervals.GetValueOrDefault(cell) ?? CellIntervals.None;

    /// <summary>True when at least one metric entry of the results carries a CI.</summary>
    public bool HasIntervals => _intervals.Values.Any(i => i.Count > 0);

    public static string DatasetName(CellResult r) => r.DatasetName ?? Config.DatasetNames.Of(r.Spec.Dataset);

    /// <summary>Reads a results folder (its results.json) or a results.json file (a list of cells, or one cell).</summary>
    public static ReportInput Load(string path) => Load(path, null);

    /// <summary>As <see cref="Load(string)"/>, with the report's title given (null: from summary.md or the folder's name).</summary>
    public static ReportInput Load(string path, string? title)
    {
        var full = Path.GetFullPath(path);
        var file = Directory.Exists(full) ? Path.Combine(full, "results.json") : full;
        if (!File.Exists(file))
            throw new ReportException(Directory.Exists(full) ? $"{full}: no results.json in this folder" : $"{full}: file not found");

        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(file), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new ReportException($"{file}: not valid JSON ({e.Message})"); }

        // `fairmedfm results --format json` writes a sweep's ledger with per-cell summaries, not the cell results this reads.
        if (root is JsonObject export && export.ContainsKey("sweep") && export["cells"] is JsonArray exported && exported.FirstOrDefault() is JsonObject first && first.ContainsKey("state"))
            throw new ReportException($"{file} is a sweep export of `fairmedfm results` (cell states and summary metrics), not a results.json of cell results; " +
                                      $"for a cluster sweep use `fairmedfm report --sweep {(string?)export["sweep"] ?? "SWEEP"} --redis …` (or --gateway), " +
                                      "or give the results folder that `fairmedfm run` wrote");
        var nodes = root switch
        {
            JsonArray a => a.ToList(),
            JsonObject o when o.TryGetPropertyValue("cells", out var c) && c is JsonArray ca => ca.ToList(),
            JsonObject o when o.ContainsKey("cell_id") => new List<JsonNode?> { o },
            _ => throw new ReportException($"{file}: expected a list of cell results (results.json), found {root?.GetValueKind().ToString() ?? "null"}"),
        };

        var cells = new List<CellResult>();
        var intervals = new Dictionary<CellResult, CellIntervals>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < nodes.Count; i++)
        {
            if (nodes[i] is not JsonObject o) throw new ReportException($"{file}: entry {i + 1} is not a cell result object");
            CellResult? cell;
            try { cell = o.Deserialize<CellResult>(JsonDefaults.Pretty); }
            // The runtime's message names .NET types: say which key holds what a results.json cell does not.
            catch (JsonException e) { throw new ReportException($"{file}: entry {i + 1} is not a cell result as `fairmedfm run` writes them in results.json" +
                                                                (e.Path is { Length: > 2 } p ? $" (its key '{p.TrimStart('$').TrimStart('.')}' does not hold what a cell result holds there)" : "")); }
            if (cell?.Spec is null) throw new ReportException($"{file}: entry {i + 1} has no spec");
            cells.Add(cell);
            intervals[cell] = CellIntervals.From(o);
        }

        var dir = Path.GetDirectoryName(file)!;
        return new ReportInput(file, title ?? SweepName(dir), cells, intervals, ReadAttributions(dir));
    }

    private static string SweepName(string dir)
    {
        var md = Path.Combine(dir, "summary.md");
        if (File.Exists(md))
        {
            var first = File.ReadLines(md).FirstOrDefault() ?? "";
            var a = first.IndexOf('`'); var b = first.LastIndexOf('`');
            if (a >= 0 && b > a + 1) return first[(a + 1)..b];
        }
        return new DirectoryInfo(dir).Name;
    }

    private static List<(string, string)> ReadAttributions(string dir) =>
        Directory.EnumerateFiles(dir)
            .Where(f => Path.GetFileName(f).Contains("LICENSE_AND_ATTRIBUTION", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(f => (Path.GetFileName(f), File.ReadAllText(f)))
            .ToList();
}
