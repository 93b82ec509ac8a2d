using System.Globalization;
using System.Text;
using System.Text.Json;
using CsvHelper;
using FairMedFM.Engine.Cells;

namespace FairMedFM.Engine.Reports;

/// <summary>Writes a sweep's output folder: every cell as JSON and CSV, per-group rows, per-sample predictions and a Markdown summary.</summary>
public static class ResultWriter
{
    /// <summary>Metrics printed in the matrix and the Markdown summary (FairMedFM's names).</summary>
    public static readonly string[] HeadlineMetrics = { "overall-auc", "auc-gap", "eod", "worst-auc", "overall-acc", "acc-gap", "eo", "overall-ece", "ece-gap" };

    /// <summary>Further fairness summaries shown in a second table per slice of summary.md.</summary>
    public static readonly string[] MoreMetrics = { "dp-diff", "dp-ratio", "eqodds-diff", "eqodds-ratio", "eopp-diff", "auc-es", "auc-es-fairclip", "acc-es", "acc-es-fairclip" };

    /// <summary>Segmentation slices (usages seg-*): Dice and its group spread (spec §6.4), IoU, HD95 and the per-volume Dice.</summary>
    public static readonly string[] SegHeadlineMetrics = { "mean_dice", "delta_dice", "es_dice", "skewness_dice", "min_dice", "mean_iou", "es_iou", "mean_hd95", "vol_mean_dice", "vol_es_dice" };

    /// <summary>Further segmentation summaries: FairMedFM's own Dice (column 0 dropped, logit ≥ 0.5), spreads of IoU/HD95, per-volume IoU.</summary>
    public static readonly string[] SegMoreMetrics = { "mean_dice-ref", "delta_dice-ref", "es_dice-ref", "delta_iou", "skewness_iou", "delta_hd95", "vol_delta_dice", "vol_mean_iou" };

    public static void Write(string outputDir, string gridName, IReadOnlyList<CellResult> results)
    {
        Directory.CreateDirectory(outputDir);
        Workspace.WriteAllTextAtomic(Path.Combine(outputDir, "results.json"), JsonSerializer.Serialize(results, JsonDefaults.Pretty));

        var cellsDir = Path.Combine(outputDir, "cells");
        Directory.CreateDirectory(cellsDir);
        foreach (var r in results)
        {
            Workspace.WriteAllTextAtomic(Path.Combine(cellsDir, r.CellId + ".json"), JsonSerializer.Serialize(r, JsonDefaults.Pretty));
            if (r.PredictionsFile is { } pf && File.Exists(pf))
                File.Copy(pf, Path.Combine(cellsDir, r.CellId + ".predictions.csv"), overwrite: true);
        }

        WriteCellsCsv(Path.Combine(outputDir, "results.csv"), results);
        WriteGroupsCsv(Path.Combine(outputDir, "groups.csv"), results);
        Workspace.WriteAllTextAtomic(Path.Combine(outputDir, "summary.md"), Markdown(gridName, results));
        CopyAttribution(outputDir, results);
    }

    private static string F(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";

    private static void WriteCellsCsv(string path, IReadOnlyList<CellResult> results)
    {
        var metricKeys = results.Where(r => r.Summary is not null).SelectMany(r => r.Summary!.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var header = new List<string> { "cell_id", "dataset", "model", "usage", "method", "attribute", "seed", "status", "error", "threshold", "threshold_chosen_on",
            "n_train", "n_validation", "n_test", "data_hash", "split_hash", "weights_hash", "config_hash", "embedding_key" };
        foreach (var m in metricKeys) { header.Add(m); header.Add(m + ":undefined"); header.Add(m + ":lo"); header.Add(m + ":hi"); }
        header.Add("ci_resamples"); header.Add("ci_method"); header.Add("ci_level");
        var rows = results.Select(r =>
        {
            var row = new List<string> { r.CellId, r.DatasetName ?? r.Spec.Dataset, r.Spec.Model, r.Spec.Usage, r.Spec.Method, r.Spec.Attribute,
                r.Spec.Seed.ToString(CultureInfo.InvariantCulture), r.Status, r.Error ?? "", F(r.Threshold), r.ThresholdChosenOn ?? "",
                r.Sizes?.Train.ToString(CultureInfo.InvariantCulture) ?? "", r.Sizes?.Validation.ToString(CultureInfo.InvariantCulture) ?? "",
                r.Sizes?.Test.ToString(CultureInfo.InvariantCulture) ?? "", r.DataHash ?? "", r.SplitHash ?? "", r.WeightsHash ?? "", r.ConfigHash, r.EmbeddingKey ?? "" };
            foreach (var m in metricKeys)
            {
                var e = r.Summary is not null && r.Summary.TryGetValue(m, out var x) ? x : null;
                row.Add(F(e?.Value)); row.Add(e?.Undefined ?? ""); row.Add(F(e?.Lower)); row.Add(F(e?.Upper));
            }
            row.Add(r.Intervals?.Resamples.ToString(CultureInfo.InvariantCulture) ?? ""); row.Add(r.Intervals?.Method ?? ""); row.Add(F(r.Intervals?.Level));
            return row;
        });
        WriteCsv(path, header, rows);
    }

    private static void WriteGroupsCsv(string path, IReadOnlyList<CellResult> results)
    {
        var valueKeys = results.SelectMany(r => (r.Groups ?? Array.Empty<GroupResult>()).SelectMany(g => g.Values.Keys)).Distinct().Order(StringComparer.Ordinal).ToList();
        var header = new List<string> { "cell_id", "dataset", "model", "usage", "method", "attribute", "seed", "group", "n", "positives", "negatives" };
        foreach (var k in valueKeys) { header.Add(k); header.Add(k + ":undefined"); header.Add(k + ":lo"); header.Add(k + ":hi"); }
        var rows = results.SelectMany(r => (r.Overall is null ? Array.Empty<GroupResult>() : new[] { r.Overall }).Concat(r.Groups ?? Array.Empty<GroupResult>())
            .Select(g =>
            {
                var row = new List<string> { r.CellId, r.DatasetName ?? "", r.Spec.Model, r.Spec.Usage, r.Spec.Method, r.Spec.Attribute,
                    r.Spec.Seed.ToString(CultureInfo.InvariantCulture), g.Group, g.N.ToString(CultureInfo.InvariantCulture),
                    g.Positives.ToString(CultureInfo.InvariantCulture), g.Negatives.ToString(CultureInfo.InvariantCulture) };
                foreach (var k in valueKeys)
                {
                    var e = g.Values.TryGetValue(k, out var x) ? x : null;
                    row.Add(F(e?.Value)); row.Add(e?.Undefined ?? ""); row.Add(F(e?.Lower)); row.Add(F(e?.Upper));
                }
                return row;
            }));
        WriteCsv(path, header, rows);
    }

    private static void WriteCsv(string path, List<string> header, IEnumerable<List<string>> rows)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = CsvWriter.Create(text, null, true))
        {
            csv.WriteRecord(header.ToArray());
            foreach (var row in rows) csv.WriteRecord(row.ToArray());
            csv.Flush();
        }
        Workspace.WriteAllTextAtomic(path, text.ToString());
    }

    public static string Markdown(string gridName, IReadOnlyList<CellResult> results)
    {
        var sb = new StringBuilder();
        var done = results.Where(r => r.Status == "done").ToList();
        var failed = results.Where(r => r.Status != "done").ToList();
        sb.AppendLine($"# FairMedFM.NET sweep `{gridName}`");
        sb.AppendLine();
        sb.AppendLine($"{done.Count} cells done, {failed.Count} failed. Values are means ± sample std over seeds; thresholds are chosen on " +
                      "validation and frozen for test unless the grid asked for reference mode. `undefined` values carry their reason.");
        var withIntervals = done.Where(r => r.Intervals is not null).ToList();
        var iv = withIntervals.Select(r => r.Intervals).FirstOrDefault();
        // Segmentation samples have no class label: their resampling is stratified by group only.
        var strata = withIntervals.All(r => r.Segmentation is not null) ? "group" : withIntervals.Any(r => r.Segmentation is not null) ? "group × label (group for segmentation cells)" : "group × label";
        if (iv is not null)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"`[lo, hi]`: {iv.Level:P0} bootstrap interval ({iv.Method}, {iv.Resamples} resamples stratified by {strata}" +
                $"{(iv.ClusteredByPatient ? ", clustered by patient" : "")}); with several seeds, the mean of the per-seed bounds."));
        var inputs = done.Select(MatrixInput.From).ToList();
        var order = results.Select(r => (r.Spec.Usage, r.Spec.Method, r.Spec.Attribute)).Distinct().ToList();
        foreach (var (usage, method, attribute) in order.Where(o => inputs.Any(i => (i.Usage, i.Method, i.Attribute) == o)))
        {
            sb.AppendLine();
            sb.AppendLine($"## {usage} · {method} · attribute `{attribute}`");
            sb.AppendLine();
            bool seg = Segmentation.SegUsages.IsSegmentation(usage);
            foreach (var (metrics, withGroups) in seg ? new[] { (SegHeadlineMetrics, true), (SegMoreMetrics, false) } : new[] { (HeadlineMetrics, true), (MoreMetrics, false) })
            {
                if (!withGroups) sb.AppendLine();
                var slices = metrics.Select(m => FairnessMatrix.Build(inputs, usage, method, attribute, m)).ToList();
                sb.AppendLine($"| dataset | model | {string.Join(" | ", metrics)} |{(withGroups ? seg ? " groups: n (+scored/−skipped, empty mask) |" : " test groups: n (+pos/−neg) |" : "")}");
                sb.AppendLine($"|---|---|{string.Concat(metrics.Select(_ => "---|"))}{(withGroups ? "---|" : "")}");
                foreach (var d in slices[0].Datasets)
                foreach (var m in slices[0].Models)
                {
                    if (!slices[0].Cells.TryGetValue((d, m), out var first)) continue;
                    var values = slices.Select(s => s.Cells.TryGetValue((d, m), out var c) ? c.Format() : "–");
                    var groups = string.Join("; ", first.GroupSizes.Select(g => $"{g.Group}: {g.N} (+{g.Positives}/−{g.Negatives})"));
                    sb.AppendLine($"| {Md(d)} | {Md(m)} | {string.Join(" | ", values.Select(Md))} |{(withGroups ? $" {Md(groups)} |" : "")}");
                }
            }
            if (seg) SegGroupTable(sb, done, usage, method, attribute);
        }
        var skippedVolumes = SkippedVolumeLines(done);
        if (skippedVolumes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Skipped volumes");
            sb.AppendLine();
            sb.AppendLine("Volumes of a card that gave no slice to evaluate: they are in no metric and no group count above.");
            sb.AppendLine();
            foreach (var line in skippedVolumes) sb.AppendLine($"- {Md(line)}");
        }
        if (failed.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Failed cells");
            foreach (var g in FailureGroups(failed))
                sb.AppendLine($"- {string.Join(", ", g.Cells.Select(c => $"`{c.CellId}`"))} {g.Text}");
        }
        if (sb.ToString().Contains(MatrixCell.OutsideIntervalMark, StringComparison.Ordinal))
        {
            sb.AppendLine();
            sb.AppendLine(MatrixCell.OutsideIntervalNote);
        }
        var hashes = done.Select(r => (r.DatasetName, r.DataHash, r.WeightsHash, r.Spec.Model)).Distinct().ToList();
        if (hashes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Provenance");
            foreach (var h in hashes) sb.AppendLine($"- {h.DatasetName}: data `{h.DataHash}`; {h.Model} weights `{h.WeightsHash}`");
        }
        return sb.ToString();
    }

    /// <summary>Per-group values of a segmentation slice (the group means behind Dice gap, ES-Dice and skewness).</summary>
    /// <summary>Failed cells that share a dataset and a reason (a card every cell of that dataset needs), as one entry each.</summary>
    public sealed record FailureGroup(IReadOnlyList<CellResult> Cells, string Text);

    /// <summary>
    /// The failed cells of <paramref name="results"/> grouped by dataset and reason, in the results' order: one cell reads
    /// "dataset × model × usage × method × attribute × seed N: reason"; several that failed the same way (a card whose
    /// metadata cannot be read fails every cell of its dataset) read "dataset: N cells (models …; usages …; attributes …;
    /// seeds …) failed: reason" — the reason once, not once per cell.
    /// </summary>
    public static IReadOnlyList<FailureGroup> FailureGroups(IEnumerable<CellResult> results) =>
        results.Where(r => r.Status != "done")
            .GroupBy(r => (Dataset: r.DatasetName ?? Config.DatasetNames.Of(r.Spec.Dataset), Error: r.Error ?? ""))
            .Select(g =>
            {
                var cells = g.ToList();
                if (cells.Count == 1) return new FailureGroup(cells, $"{cells[0].Spec.Label}: {g.Key.Error}");
                static string List<T>(IEnumerable<T> xs) => string.Join(", ", xs.Distinct());
                return new FailureGroup(cells, $"{g.Key.Dataset}: {cells.Count} cells (models {List(cells.Select(c => c.Spec.Model))}; " +
                    $"usages {List(cells.Select(c => c.Spec.Usage))}; attributes {List(cells.Select(c => c.Spec.Attribute))}; " +
                    $"seeds {List(cells.Select(c => c.Spec.Seed))}) failed: {g.Key.Error}");
            }).ToList();

    /// <summary>The console's failure lines: <see cref="FailureGroups"/> as text, each reason once.</summary>
    public static IReadOnlyList<string> FailureLines(IEnumerable<CellResult> results) => FailureGroups(results).Select(g => g.Text).ToList();

    /// <summary>
    /// One line per volume that a finished segmentation cell's card skipped (no slice kept by the slicing rule), each volume
    /// once however many cells used the card: "dataset 'kits': volume 'image/case_3.nii.gz' (row 4) skipped: no slice along
    /// axis 2 contains label 2". The console prints them after the matrix (summary.md lists them under "Skipped volumes"),
    /// so a volume never leaves the results without a word.
    /// </summary>
    public static IReadOnlyList<string> SkippedVolumeLines(IEnumerable<CellResult> results) =>
        results.Where(r => r.Status == "done" && r.Segmentation is { SkippedVolumes.Count: > 0 })
            .SelectMany(r => r.Segmentation!.SkippedVolumes.Select(v => (Dataset: r.DatasetName ?? Config.DatasetNames.Of(r.Spec.Dataset), v)))
            .DistinctBy(x => (x.Dataset, x.v.VolumeId, x.v.Row, x.v.Reason))
            .Select(x => $"dataset '{x.Dataset}': volume '{x.v.VolumeId}' (row {x.v.Row}) skipped: {x.v.Reason}")
            .ToList();

    private static void SegGroupTable(StringBuilder sb, IReadOnlyList<CellResult> done, string usage, string method, string attribute)
    {
        var metrics = new[] { "dice", "dice-ref", "iou", "hd95", "vol_dice", "vol_iou" }
            .Where(m => done.Any(r => r.Spec.Usage == usage && r.Spec.Attribute == attribute && r.Groups?.Any(g => g.Values.ContainsKey(m)) == true)).ToList();
        if (metrics.Count == 0) return;
        var columns = metrics.Select(m => FairnessMatrix.GroupValues(done, usage, method, attribute, m)).ToList();
        sb.AppendLine();
        sb.AppendLine($"| dataset | model | group | n (+scored/−skipped) | {string.Join(" | ", metrics)} |");
        sb.AppendLine($"|---|---|---|---|{string.Concat(metrics.Select(_ => "---|"))}");
        foreach (var (d, m, g, first) in columns[0])
        {
            var size = first.GroupSizes[0];
            var values = columns.Select(c => c.FirstOrDefault(x => x.Dataset == d && x.Model == m && x.Group == g).Cell?.Format() ?? "–");
            sb.AppendLine($"| {Md(d)} | {Md(m)} | {Md(g)} | {size.N} (+{size.Positives}/−{size.Negatives}) | {string.Join(" | ", values.Select(Md))} |");
        }
    }

    /// <summary>Intersection labels such as "F|60+" would otherwise split a Markdown table cell.</summary>
    private static string Md(string s) => s.Replace("|", "\\|");

    /// <summary>Derived results keep the data's licence and attribution beside them.</summary>
    private static void CopyAttribution(string outputDir, IReadOnlyList<CellResult> results)
    {
        foreach (var card in results.Select(r => r.Spec.Dataset).Distinct())
        {
            try
            {
                string name, csv, root;
                if (Segmentation.DatasetTask.IsSegmentation(card))
                {
                    var s = Segmentation.SegDatasetCatalog.Get(card).Card;
                    (name, csv, root) = (s.Name, s.MetadataCsv, s.DataRoot);
                }
                else
                {
                    var d = DatasetCatalog.Get(card).Card;
                    (name, csv, root) = (d.Name, d.MetadataCsv, d.ImageRoot);
                }
                var folders = new[] { Path.GetDirectoryName(csv), root }.Where(d => d is not null && Directory.Exists(d)).Distinct();
                foreach (var dir in folders)
                foreach (var f in Directory.EnumerateFiles(dir!).Where(f => Path.GetFileName(f).Contains("LICENSE", StringComparison.OrdinalIgnoreCase) || Path.GetFileName(f).Contains("ATTRIBUTION", StringComparison.OrdinalIgnoreCase)))
                    File.Copy(f, Path.Combine(outputDir, $"{name}.{Path.GetFileName(f)}"), overwrite: true);
            }
            catch (Exception) { /* a card that failed to load already failed its cells with the reason */ }
        }
    }
}
