using System.CommandLine;
using FairMedFM.Engine.Reports;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>`fairmedfm report`: a sweep's results as one self-contained HTML file, with figures (SVG/PNG), CSV and JSON exports beside it.</summary>
public static class ReportCommand
{
    public static Command Build(IAnsiConsole console)
    {
        var resultsOpt = new Option<string>("--results") { Description = "A results folder (holding results.json) or a results.json file", Required = true };
        var outOpt = new Option<string?>("--out") { Description = "HTML file to write (default: report.html beside results.json); figures/, report.csv and report.json go beside it" };
        var cellOpt = new Option<string?>("--cell") { Description = "Per-group bars for this cell id (or a unique prefix) instead of the first finished cell of each attribute" };
        var metricsOpt = new Option<string?>("--metrics") { Description = $"Comma-separated heatmap metrics (default: {string.Join(",", ResultWriter.HeadlineMetrics)} for classification slices, {string.Join(",", ResultWriter.SegHeadlineMetrics)} for segmentation slices)" };
        var fairnessOpt = new Option<string?>("--tradeoff-metric") { Description = "Fairness metric on the y axis of the trade-off scatter (default: auc-gap against overall-auc for classification, delta_dice against mean_dice for segmentation)" };

        var cmd = new Command("report", "Turn a sweep's results into one self-contained HTML report: heatmaps, trade-off, per-group bars, provenance");
        foreach (var o in new Option[] { resultsOpt, outOpt, cellOpt, metricsOpt, fairnessOpt }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var metrics = pr.GetValue(metricsOpt)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            try
            {
                var r = HtmlReport.Write(new ReportOptions
                {
                    Results = pr.GetValue(resultsOpt)!, Out = pr.GetValue(outOpt), CellId = pr.GetValue(cellOpt), Metrics = metrics,
                    FairnessMetric = pr.GetValue(fairnessOpt),
                });
                console.MarkupLine($"report: [link]{Markup.Escape(r.Html)}[/] ({r.DoneCells} done and {r.FailedCells} failed cells; {r.Figures.Count} figures; " +
                                   (r.HasIntervals ? "with confidence intervals" : "no CI in these results") + ")");
                console.MarkupLine($"exports: {Markup.Escape(r.FiguresDir)} (*.svg, *.png), {Markup.Escape(r.Csv)}, {Markup.Escape(r.Json)}");
                return 0;
            }
            catch (ReportException e)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        });
        return cmd;
    }
}
