using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using FairMedFM.Engine.Cells;

namespace FairMedFM.Engine.Reports;

/// <summary>What to report on and where to write it.</summary>
public sealed record ReportOptions
{
    /// <summary>A results folder (holding results.json) or a results.json file.</summary>
    public required string Results { get; init; }
    /// <summary>The HTML file to write (default: report.html beside results.json). Exports go beside it.</summary>
    public string? Out { get; init; }
    /// <summary>Per-group bars for this cell (id or unique prefix) instead of the first done cell of each attribute.</summary>
    public string? CellId { get; init; }
    /// <summary>Heatmap metrics (default per slice: <see cref="ResultWriter.HeadlineMetrics"/> for classification,
    /// <see cref="ResultWriter.SegHeadlineMetrics"/> for segmentation).</summary>
    public IReadOnlyList<string>? Metrics { get; init; }
    /// <summary>x of the trade-off scatter (default per slice: overall-auc for classification, mean_dice for segmentation).</summary>
    public string? UtilityMetric { get; init; }
    /// <summary>y of the trade-off scatter (default per slice: auc-gap for classification, delta_dice for segmentation).</summary>
    public string? FairnessMetric { get; init; }
    /// <summary>The report's title (default: the sweep name from summary.md beside results.json, else the folder's name).</summary>
    public string? Title { get; init; }
    /// <summary>Report date (tests pin it; default now).</summary>
    public DateTimeOffset? Now { get; init; }
}

/// <summary>What <see cref="HtmlReport.Write"/> produced.</summary>
public sealed record ReportOutput(string Html, string FiguresDir, string Csv, string Json, IReadOnlyList<ReportFigure> Figures,
    int DoneCells, int FailedCells, bool HasIntervals);

/// <summary>
/// The self-contained HTML fairness report of a sweep: datasets × models heatmaps per metric and slice, the utility–fairness
/// trade-off per slice, per-group bars for chosen cells, failed cells, and the configuration, hashes and versions needed to
/// reproduce every number. Figures are inline SVG (no script, no stylesheet or font from anywhere else); beside the HTML go
/// figures/*.svg and *.png, report.csv (the matrix) and report.json (the matrix, trade-off points, per-group values and provenance).
/// </summary>
public static class HtmlReport
{
    public static string EngineVersion => typeof(HtmlReport).Assembly.GetName().Version?.ToString() ?? "0";

    public static ReportOutput Write(ReportOptions o)
    {
        var input = ReportInput.Load(o.Results, o.Title);
        var model = ReportModel.Build(input, o.Metrics, o.CellId, o.UtilityMetric, o.FairnessMetric);

        var html = Path.GetFullPath(o.Out ?? Path.Combine(Path.GetDirectoryName(input.Source)!, "report.html"));
        var dir = Path.GetDirectoryName(html)!;
        var figDir = Path.Combine(dir, "figures");
        Directory.CreateDirectory(figDir);

        var figures = new List<ReportFigure>();
        figures.AddRange(model.Matrices.Select(ReportFigures.Heatmap));
        figures.AddRange(model.TradeOffs.Select(ReportFigures.TradeOffPlot));
        figures.AddRange(model.Bars.Select(ReportFigures.GroupBarsPlot));
        var svgs = new Dictionary<ReportFigure, string>();
        foreach (var f in figures)
        {
            var svg = f.Svg();
            svgs[f] = svg;
            Workspace.WriteAllTextAtomic(Path.Combine(figDir, f.Id + ".svg"), svg);
            var png = Path.Combine(figDir, f.Id + ".png");
            File.WriteAllBytes(png + ".tmp", f.Png());
            File.Move(png + ".tmp", png, overwrite: true);
        }

        var now = o.Now ?? DateTimeOffset.UtcNow;
        var csv = Path.Combine(dir, "report.csv");
        var json = Path.Combine(dir, "report.json");
        Workspace.WriteAllTextAtomic(csv, Csv(model));
        Workspace.WriteAllTextAtomic(json, Json(model, figures, o, now));
        Workspace.WriteAllTextAtomic(html, Html(model, figures, svgs, o, now, Path.GetRelativePath(dir, figDir)));
        return new ReportOutput(html, figDir, csv, json, figures, input.Done.Count(), input.Failed.Count(), input.HasIntervals);
    }

    private static string F(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";

    // ---------------------------------------------------------------- exports

    /// <summary>report.csv: one row per slice × metric × dataset × model (the matrix), undefined values empty with their reasons.</summary>
    public static string Csv(ReportModel model)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = CsvWriter.Create(text, null, true))
        {
            csv.WriteRecord(new[] { "usage", "method", "attribute", "metric", "direction", "dataset", "model", "mean", "sd", "seeds", "undefined_seeds",
                "undefined_reasons", "ci_lower", "ci_upper", "ci_seeds", "text", "cell_ids" });
            foreach (var m in model.Matrices)
            foreach (var d in m.Datasets)
            foreach (var mo in m.Models)
            {
                if (!m.Cells.TryGetValue((d, mo), out var c)) continue;
                csv.WriteRecord(new[] { m.Slice.Usage, m.Slice.Method, m.Slice.Attribute, m.Metric.Key, m.Metric.DirectionText, d, mo,
                    F(c.Stats.Mean), F(c.Stats.Std), c.Stats.Seeds.ToString(CultureInfo.InvariantCulture), c.Stats.UndefinedSeeds.ToString(CultureInfo.InvariantCulture),
                    string.Join("; ", c.Stats.UndefinedReasons.Distinct()), F(c.Ci?.Lower), F(c.Ci?.Upper), c.CiSeeds.ToString(CultureInfo.InvariantCulture),
                    c.ValueText, string.Join(" ", c.Seeds.Select(s => s.CellId)) });
            }
            csv.Flush();
        }
        return text.ToString();
    }

    private static JsonNode? Num(double? v) => v is { } d && double.IsFinite(d) ? JsonValue.Create(d) : null;

    private static JsonObject Ci(ConfidenceInterval? c) => c is null ? new JsonObject { ["lower"] = null, ["upper"] = null }
        : new JsonObject { ["lower"] = Num(c.Lower), ["upper"] = Num(c.Upper), ["level"] = Num(c.Level) };

    /// <summary>report.json: what the report shows, as data.</summary>
    public static string Json(ReportModel model, IReadOnlyList<ReportFigure> figures, ReportOptions o, DateTimeOffset now)
    {
        var input = model.Input;
        var root = new JsonObject
        {
            ["title"] = input.Title,
            ["source"] = input.Source,
            ["generated_utc"] = now.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
            ["report_engine_version"] = EngineVersion,
            ["cells_done"] = input.Done.Count(),
            ["cells_failed"] = input.Failed.Count(),
            ["has_confidence_intervals"] = input.HasIntervals,
            ["metrics"] = new JsonArray(model.Metrics.Select(m => (JsonNode)new JsonObject
                { ["key"] = m.Key, ["label"] = m.Label, ["direction"] = m.DirectionText, ["meaning"] = m.Meaning }).ToArray()),
            ["matrix"] = new JsonArray(model.Matrices.SelectMany(m => m.Cells.Values.Select(c => (JsonNode)new JsonObject
            {
                ["usage"] = m.Slice.Usage, ["method"] = m.Slice.Method, ["attribute"] = m.Slice.Attribute, ["metric"] = m.Metric.Key,
                ["dataset"] = c.Dataset, ["model"] = c.Model, ["mean"] = Num(c.Stats.Mean), ["sd"] = Num(c.Stats.Std),
                ["seeds"] = c.Stats.Seeds, ["undefined_seeds"] = c.Stats.UndefinedSeeds,
                ["undefined_reasons"] = new JsonArray(c.Stats.UndefinedReasons.Distinct().Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
                ["ci"] = Ci(c.Ci), ["text"] = c.ValueText,
                ["per_seed"] = new JsonArray(c.Seeds.Select(s => (JsonNode)new JsonObject
                    { ["seed"] = s.Seed, ["cell_id"] = s.CellId, ["value"] = Num(s.Value), ["undefined"] = s.Undefined, ["ci"] = Ci(s.Ci) }).ToArray()),
            })).ToArray()),
            ["tradeoff"] = new JsonArray(model.TradeOffs.SelectMany(t => t.Points.Select(p => (JsonNode)new JsonObject
            {
                ["usage"] = t.Slice.Usage, ["method"] = t.Slice.Method, ["attribute"] = t.Slice.Attribute, ["dataset"] = p.Dataset, ["model"] = p.Model,
                ["x_metric"] = t.XMetric.Key, ["x"] = Num(p.X.Stats.Mean), ["x_sd"] = Num(p.X.Stats.Std), ["x_text"] = p.X.ValueText,
                ["y_metric"] = t.YMetric.Key, ["y"] = Num(p.Y.Stats.Mean), ["y_sd"] = Num(p.Y.Stats.Std), ["y_text"] = p.Y.ValueText,
            })).ToArray()),
            ["groups"] = new JsonArray(model.Bars.Select(b => (JsonNode)new JsonObject
            {
                ["cell_id"] = b.Cell.CellId, ["dataset"] = b.Dataset, ["model"] = b.Cell.Spec.Model, ["usage"] = b.Slice.Usage, ["method"] = b.Slice.Method,
                ["attribute"] = b.Slice.Attribute, ["seed"] = b.Cell.Spec.Seed, ["threshold"] = Num(b.Cell.Threshold), ["threshold_chosen_on"] = b.Cell.ThresholdChosenOn,
                ["rows"] = new JsonArray(b.Rows.Select(r => (JsonNode)new JsonObject
                {
                    ["group"] = r.Group, ["n"] = r.N, ["positives"] = r.Positives, ["negatives"] = r.Negatives,
                    ["values"] = new JsonObject(r.Values.Select(v => KeyValuePair.Create(v.Key, (JsonNode?)new JsonObject
                        { ["value"] = Num(v.Entry?.Value), ["undefined"] = v.Entry is null ? "not computed" : v.Entry.Undefined, ["ci"] = Ci(v.Ci) }))),
                }).ToArray()),
            }).ToArray()),
            ["failed"] = new JsonArray(input.Failed.Select(f => (JsonNode)new JsonObject
                { ["cell_id"] = f.CellId, ["label"] = f.Spec.Label, ["error"] = f.Error }).ToArray()),
            ["provenance"] = new JsonArray(input.Cells.Select(c => (JsonNode)new JsonObject
            {
                ["cell_id"] = c.CellId, ["status"] = c.Status, ["dataset"] = ReportInput.DatasetName(c), ["model"] = c.Spec.Model, ["usage"] = c.Spec.Usage,
                ["method"] = c.Spec.Method, ["attribute"] = c.Spec.Attribute, ["seed"] = c.Spec.Seed, ["data_hash"] = c.DataHash, ["split_hash"] = c.SplitHash,
                ["weights_hash"] = c.WeightsHash, ["config_hash"] = c.ConfigHash, ["embedding_key"] = c.EmbeddingKey, ["engine_version"] = c.EngineVersion,
                ["finished_utc"] = c.FinishedUtc.ToString("O", CultureInfo.InvariantCulture),
            }).ToArray()),
            ["figures"] = new JsonArray(figures.Select(f => (JsonNode)new JsonObject
                { ["id"] = f.Id, ["kind"] = f.Kind, ["title"] = f.Title, ["svg"] = $"figures/{f.Id}.svg", ["png"] = $"figures/{f.Id}.png" }).ToArray()),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    // ---------------------------------------------------------------- HTML

    /// <summary>Escapes the five HTML-significant characters only; the page is UTF-8, so "·", "×", "−" stay readable in the source.</summary>
    internal static string H(string? s) => (s ?? "").Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;").Replace("'", "&#39;");

    private const string Css = """
        :root { --fg:#1b1f24; --muted:#5b636e; --line:#d8dde3; --bg:#ffffff; --soft:#f4f6f8; --bad:#b42318; }
        * { box-sizing: border-box; }
        body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: var(--fg); background: var(--bg); margin: 0 auto; padding: 24px 24px 64px; max-width: 1600px; line-height: 1.45; font-size: 14px; }
        h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
        h3 { font-size: 16px; margin: 24px 0 8px; } .muted { color: var(--muted); } code { font-size: 12px; background: var(--soft); padding: 1px 4px; border-radius: 3px; }
        .meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0; }
        .meta dt { color: var(--muted); } .meta dd { margin: 0; }
        nav ul { columns: 3; padding-left: 18px; margin: 4px 0; }
        .figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
        figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; max-width: 100%; }
        figure svg { display: block; max-width: 100%; height: auto; }
        figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
        figcaption .fig-title { display: block; color: var(--fg); font-weight: bold; font-size: 13px; }
        table { border-collapse: collapse; margin: 8px 0 16px; font-size: 12.5px; }
        th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
        th { background: var(--soft); } td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
        td.undef { color: var(--bad); } td.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 11px; word-break: break-all; }
        td[title] { cursor: help; text-decoration: underline dotted var(--muted); }
        details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
        pre.attribution { white-space: pre-wrap; background: var(--soft); padding: 12px; border-radius: 6px; font-size: 12px; max-height: 420px; overflow: auto; }
        .failed td.err { color: var(--bad); }
        """;

    public static string Html(ReportModel model, IReadOnlyList<ReportFigure> figures, IReadOnlyDictionary<ReportFigure, string> svgs,
        ReportOptions o, DateTimeOffset now, string figuresRel)
    {
        var input = model.Input;
        var done = input.Done.ToList();
        var failed = input.Failed.ToList();
        var sb = new StringBuilder();
        var figNo = 0;
        void Figure(ReportFigure f)
        {
            figNo++;
            var rel = figuresRel.Replace('\\', '/');
            sb.AppendLine($"<figure class=\"fig fig-{f.Kind}\" id=\"{H(f.Id)}\" data-title=\"{H(f.Title)}\" style=\"max-width:{f.Width + 18}px\">");
            sb.AppendLine(ReportFigures.InlineSvg(svgs[f], $"f{figNo}", f.Title));
            sb.AppendLine($"<figcaption><span class=\"fig-title\">Figure {figNo}. {H(f.Title)}</span>{H(f.Caption)} " +
                          $"<span class=\"muted\">Files: <code>{H(rel)}/{H(f.Id)}.svg</code>, <code>{H(rel)}/{H(f.Id)}.png</code></span></figcaption>");
            sb.AppendLine("</figure>");
        }

        sb.AppendLine("<!DOCTYPE html>");
        sb.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        sb.AppendLine($"<title>FairMedFM.NET fairness report — {H(input.Title)}</title>");
        sb.AppendLine($"<style>{Css}</style></head><body>");
        sb.AppendLine($"<h1>FairMedFM.NET fairness report — {H(input.Title)}</h1>");
        sb.AppendLine("<p class=\"muted\">How much worse does each foundation model do for each group? Self-contained: figures are inline SVG; " +
                      "nothing is loaded from anywhere else.</p>");

        var datasets = done.Select(ReportInput.DatasetName).Distinct().ToList();
        var models = done.Select(c => c.Spec.Model).Distinct().ToList();
        sb.AppendLine("<dl class=\"meta\">");
        void Meta(string k, string v) => sb.AppendLine($"<dt>{H(k)}</dt><dd>{v}</dd>");
        Meta("results", $"<code>{H(input.Source)}</code>");
        Meta("cells", $"{done.Count} done, {failed.Count} failed");
        Meta("datasets", H(string.Join(", ", datasets)));
        Meta("models", H(string.Join(", ", models)));
        Meta("usages · methods", H(string.Join(", ", input.Cells.Select(c => $"{c.Spec.Usage} · {c.Spec.Method}").Distinct())));
        Meta("attributes", H(string.Join(", ", input.Cells.Select(c => c.Spec.Attribute).Distinct())));
        Meta("seeds", H(string.Join(", ", input.Cells.Select(c => c.Spec.Seed).Distinct().Order())));
        Meta("confidence intervals", input.HasIntervals ? "bootstrap CIs present in the results" : "no CI in these results (values are shown without intervals)");
        Meta("generated", H(now.ToUniversalTime().ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture)) + $" by FairMedFM.NET engine {H(EngineVersion)}");
        sb.AppendLine("</dl>");

        sb.AppendLine("<nav><b>Contents</b><ul>");
        sb.AppendLine("<li><a href=\"#heatmaps\">Datasets × models heatmaps</a></li><li><a href=\"#tradeoff\">Utility–fairness trade-off</a></li>");
        sb.AppendLine("<li><a href=\"#groups\">Per-group results</a></li><li><a href=\"#failed\">Failed cells</a></li>");
        sb.AppendLine("<li><a href=\"#reproducibility\">Reproducibility</a></li><li><a href=\"#exports\">Exports</a></li></ul></nav>");

        sb.AppendLine("<h2 id=\"how-to-read\">How to read</h2><ul>");
        sb.AppendLine("<li>Values are the mean ± sample standard deviation over seeds of the cell's test-set metric.</li>");
        sb.AppendLine("<li>Colour: brighter is better in every heatmap; for gaps and EO lower is better, for AUC, ACC, worst-group AUC and EOD higher is better " +
                      "(each title says which).</li>");
        sb.AppendLine("<li>EOD is FairMedFM's equalized-odds score 1 − (ΔTPR + ΔTNR)/2 (1 = equal); gaps are max − min over groups.</li>");
        if (model.Slices.Any(s => s.Task == TaskMetrics.Segmentation))
            sb.AppendLine("<li>Segmentation slices: Dice is the mean over scored samples (samples without the target are skipped), the Dice gap is " +
                          "max − min group mean Dice, ES-Dice = Dice / (1 + std of the group means); the trade-off plots mean Dice against the Dice gap.</li>");
        sb.AppendLine("<li>An undefined value (for example a group without positives) is shown as <i>undefined (reason)</i>, never as 0.</li>");
        sb.AppendLine(input.HasIntervals
            ? "<li>Brackets are 95% bootstrap confidence intervals (for several seeds: the per-seed bounds averaged).</li>"
            : "<li>These results carry no confidence intervals: values are shown without them (no CI).</li>");
        sb.AppendLine("</ul>");

        // Heatmaps
        sb.AppendLine("<h2 id=\"heatmaps\">Datasets × models heatmaps</h2>");
        if (model.Slices.Count == 0) sb.AppendLine("<p>No cell finished: nothing to show.</p>");
        foreach (var slice in model.Slices)
        {
            sb.AppendLine($"<h3 id=\"slice-{H(slice.Slug)}\">{H(slice.Usage)} · {H(slice.Method)} · attribute <code>{H(slice.Attribute)}</code></h3>");
            var mats = model.Matrices.Where(m => m.Slice == slice).ToList();
            sb.AppendLine("<div class=\"figures\">");
            foreach (var m in mats) Figure(figures.First(f => f.Kind == "heatmap" && f.Id == ReportText.Slug($"heatmap-{m.Slice.Slug}-{m.Metric.Key}")));
            sb.AppendLine("</div>");
            MatrixTable(sb, mats, done, slice);
        }

        // Trade-off
        sb.AppendLine("<h2 id=\"tradeoff\">Utility–fairness trade-off</h2>");
        sb.AppendLine("<div class=\"figures\">");
        foreach (var f in figures.Where(f => f.Kind == "tradeoff")) Figure(f);
        sb.AppendLine("</div>");

        // Per-group bars
        sb.AppendLine("<h2 id=\"groups\">Per-group results</h2>");
        sb.AppendLine(o.CellId is null
            ? "<p class=\"muted\">For the first finished cell of each attribute (choose another with <code>--cell CELL_ID</code>).</p>"
            : $"<p class=\"muted\">For cell <code>{H(o.CellId)}</code>.</p>");
        foreach (var (b, f) in model.Bars.Zip(figures.Where(f => f.Kind == "groups")))
        {
            sb.AppendLine("<div class=\"figures\">");
            Figure(f);
            GroupTable(sb, b); // beside its figure
            sb.AppendLine("</div>");
        }

        // Failed cells
        sb.AppendLine("<h2 id=\"failed\">Failed cells</h2>");
        if (failed.Count == 0) sb.AppendLine("<p>None.</p>");
        else
        {
            sb.AppendLine($"<p>{failed.Count} cell(s) failed; the rest of the sweep is reported above.</p>");
            sb.AppendLine("<table class=\"failed\"><tr><th>cell</th><th>dataset</th><th>model</th><th>usage · method</th><th>attribute</th><th>seed</th><th>reason</th></tr>");
            foreach (var f in failed)
                sb.AppendLine($"<tr><td class=\"hash\">{H(f.CellId)}</td><td>{H(ReportInput.DatasetName(f))}</td><td>{H(f.Spec.Model)}</td>" +
                              $"<td>{H(f.Spec.Usage)} · {H(f.Spec.Method)}</td><td>{H(f.Spec.Attribute)}</td><td>{f.Spec.Seed}</td><td class=\"err\">{H(f.Error)}</td></tr>");
            sb.AppendLine("</table>");
        }

        Reproducibility(sb, input, now);

        sb.AppendLine("<h2 id=\"exports\">Exports</h2><ul>");
        sb.AppendLine($"<li><code>report.csv</code>: the matrix, one row per slice × metric × dataset × model (mean, sd, seeds, undefined reasons, CI).</li>");
        sb.AppendLine($"<li><code>report.json</code>: the matrix with per-seed values, trade-off points, per-group values, failed cells and provenance.</li>");
        sb.AppendLine($"<li><code>{H(figuresRel.Replace('\\', '/'))}/</code>: every figure as SVG and PNG ({figures.Count} figures).</li>");
        sb.AppendLine("</ul>");
        sb.AppendLine("</body></html>");
        return sb.ToString();
    }

    private static void MatrixTable(StringBuilder sb, IReadOnlyList<ReportMatrix> mats, IReadOnlyList<CellResult> done, SliceKey slice)
    {
        if (mats.Count == 0) return;
        sb.AppendLine("<details open><summary>Values (hover a value for its seeds, CIs and group sizes)</summary>");
        sb.Append("<table class=\"matrix\"><tr><th>dataset</th><th>model</th>");
        foreach (var m in mats) sb.Append($"<th>{H(m.Metric.Label)}<br><span class=\"muted\">{H(m.Metric.DirectionText)}</span></th>");
        sb.AppendLine(slice.Task == TaskMetrics.Segmentation ? "<th>groups: n (+scored/−skipped)</th></tr>" : "<th>test groups: n (+pos/−neg)</th></tr>");
        foreach (var d in mats[0].Datasets)
        foreach (var mo in mats[0].Models)
        {
            if (!mats[0].Cells.TryGetValue((d, mo), out var first)) continue;
            sb.Append($"<tr><td>{H(d)}</td><td>{H(mo)}</td>");
            foreach (var m in mats)
            {
                if (!m.Cells.TryGetValue((d, mo), out var c)) { sb.Append("<td>–</td>"); continue; }
                var tip = string.Join("\n", c.Seeds.Select(s => $"seed {s.Seed} ({s.CellId}): " +
                    (s.Value is { } v ? ReportText.F(v, "0.0000") + (s.Ci is { } ci ? " CI " + ci.Format("0.0000") : " (no CI)") : $"undefined ({s.Undefined})")));
                var cls = c.Stats.Mean is null ? "num undef" : "num";
                sb.Append($"<td class=\"{cls}\" title=\"{H(tip)}\">{H(c.ValueText)}<br><span class=\"muted\">{H(c.CiText)}</span></td>");
            }
            sb.AppendLine($"<td>{H(string.Join("; ", first.Stats.GroupSizes.Select(g => $"{g.Group}: {g.N} (+{g.Positives}/−{g.Negatives})")))}</td></tr>");
        }
        sb.AppendLine("</table></details>");
    }

    private static void GroupTable(StringBuilder sb, GroupBars b)
    {
        sb.Append(b.Segmentation ? "<table class=\"groups\"><tr><th>group</th><th>n</th><th>+scored</th><th>−skipped</th>"
                                 : "<table class=\"groups\"><tr><th>group</th><th>n</th><th>+pos</th><th>−neg</th>");
        foreach (var (_, label) in b.Metrics) sb.Append($"<th>{H(label)}</th>");
        sb.AppendLine("</tr>");
        foreach (var r in b.Rows)
        {
            sb.Append($"<tr><td>{H(r.Group)}</td><td class=\"num\">{r.N}</td><td class=\"num\">{r.Positives}</td><td class=\"num\">{r.Negatives}</td>");
            foreach (var (_, e, ci) in r.Values)
            {
                if (e?.Value is { } v)
                    sb.Append($"<td class=\"num\">{ReportText.F(v)}<br><span class=\"muted\">{(ci is null ? "no CI" : "CI " + H(ci.Format()))}</span></td>");
                else sb.Append($"<td class=\"num undef\">{H(e is null ? "not computed" : $"undefined ({e.Undefined})")}</td>");
            }
            sb.AppendLine("</tr>");
        }
        sb.AppendLine("</table>");
    }

    private static void Reproducibility(StringBuilder sb, ReportInput input, DateTimeOffset now)
    {
        sb.AppendLine("<h2 id=\"reproducibility\">Reproducibility</h2>");
        sb.AppendLine($"<p>Report generated {H(now.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture))} by FairMedFM.NET engine {H(EngineVersion)} " +
                      $"(.NET {H(Environment.Version.ToString())}) from <code>{H(input.Source)}</code>. Cells were computed by engine version(s) " +
                      $"{H(string.Join(", ", input.Cells.Select(c => c.EngineVersion).Distinct()))}.</p>");

        // Grid configuration: every spec field, one value when all cells agree, else the distinct values.
        sb.AppendLine("<h3>Grid and cell configuration</h3>");
        var flat = input.Cells.Select(c => Flatten(JsonSerializer.SerializeToNode(c.Spec, JsonDefaults.Pretty))).ToList();
        var keys = flat.SelectMany(f => f.Keys).Distinct().ToList();
        sb.AppendLine("<table class=\"config\"><tr><th>setting</th><th>value(s)</th></tr>");
        foreach (var k in keys)
        {
            var values = flat.Select(f => f.GetValueOrDefault(k) ?? "").Distinct().ToList();
            sb.AppendLine($"<tr><td><code>{H(k)}</code></td><td>{H(string.Join(", ", values))}</td></tr>");
        }
        sb.AppendLine("</table>");

        sb.AppendLine("<h3>Data, split, weights and configuration hashes</h3>");
        var prov = input.Cells.Where(c => c.DataHash is not null || c.WeightsHash is not null)
            .Select(c => (Dataset: ReportInput.DatasetName(c), c.DataHash, c.Spec.Model, c.WeightsHash)).Distinct().ToList();
        if (prov.Count > 0)
        {
            sb.AppendLine("<table class=\"provenance\"><tr><th>dataset</th><th>data hash</th><th>model</th><th>weights hash</th></tr>");
            foreach (var p in prov)
                sb.AppendLine($"<tr><td>{H(p.Dataset)}</td><td class=\"hash\">{H(p.DataHash)}</td><td>{H(p.Model)}</td><td class=\"hash\">{H(p.WeightsHash)}</td></tr>");
            sb.AppendLine("</table>");
        }
        sb.AppendLine("<details><summary>Every cell: id, status, split, configuration and embedding hashes</summary>");
        sb.AppendLine("<table class=\"cells\"><tr><th>cell</th><th>status</th><th>dataset</th><th>model</th><th>usage · method</th><th>attribute</th><th>seed</th>" +
                      "<th>split hash</th><th>config hash</th><th>embedding key</th><th>threshold</th><th>n train/val/test</th><th>engine</th><th>finished (UTC)</th></tr>");
        foreach (var c in input.Cells)
        {
            var sizes = c.Sizes is { } s ? $"{s.Train}/{s.Validation}/{s.Test}" : "";
            var th = c.Threshold is { } t ? $"{ReportText.F(t, "0.####")} ({c.ThresholdChosenOn})" : "";
            sb.AppendLine($"<tr><td class=\"hash\">{H(c.CellId)}</td><td>{H(c.Status)}</td><td>{H(ReportInput.DatasetName(c))}</td><td>{H(c.Spec.Model)}</td>" +
                          $"<td>{H(c.Spec.Usage)} · {H(c.Spec.Method)}</td><td>{H(c.Spec.Attribute)}</td><td>{c.Spec.Seed}</td><td class=\"hash\">{H(c.SplitHash)}</td>" +
                          $"<td class=\"hash\">{H(c.ConfigHash)}</td><td class=\"hash\">{H(c.EmbeddingKey)}</td><td>{H(th)}</td><td>{H(sizes)}</td>" +
                          $"<td>{H(c.EngineVersion)}</td><td>{H(c.FinishedUtc.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture))}</td></tr>");
        }
        sb.AppendLine("</table></details>");

        sb.AppendLine("<h3>Data attribution</h3>");
        if (input.Attributions.Count == 0)
            sb.AppendLine("<p class=\"muted\">No LICENSE_AND_ATTRIBUTION file beside the results; see each dataset card's source for its licence.</p>");
        foreach (var (file, text) in input.Attributions)
            sb.AppendLine($"<p><code>{H(file)}</code></p><pre class=\"attribution\">{H(text)}</pre>");
    }

    private static Dictionary<string, string> Flatten(JsonNode? node, string prefix = "")
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o) foreach (var kv in Flatten(v, prefix.Length == 0 ? k : $"{prefix}.{k}")) d[kv.Key] = kv.Value;
                break;
            case JsonArray a:
                d[prefix] = a.ToJsonString();
                break;
            case null:
                d[prefix] = "null";
                break;
            default:
                d[prefix] = node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : node.ToJsonString();
                break;
        }
        return d;
    }
}
