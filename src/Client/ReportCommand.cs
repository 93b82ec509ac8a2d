using System.CommandLine;
using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Reports;
using FairMedFM.Grains;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>`fairmedfm report`: a sweep's results as one self-contained HTML file, with figures (SVG/PNG), CSV and JSON exports beside it —
/// from a results folder that `fairmedfm run` wrote (--results), or from a cluster sweep's cells (--sweep with --redis/--gateway).</summary>
public static class ReportCommand
{
    public static Command Build(IAnsiConsole console)
    {
        var resultsOpt = new Option<string?>("--results") { Description = "A results folder (holding results.json) or a results.json file, as `fairmedfm run` writes them" };
        var sweepOpt = new Option<string?>("--sweep") { Description = "Instead of --results: a cluster sweep's id (with --redis or --gateway); its cells' results are fetched from the cluster" };
        var outOpt = new Option<string?>("--out") { Description = "HTML file to write (default: report.html beside results.json; with --sweep out/<SWEEP>/report.html); figures/, report.csv and report.json go beside it" };
        var cellOpt = new Option<string?>("--cell") { Description = "Per-group bars for this cell id (or a unique prefix) instead of the first finished cell of each attribute" };
        var metricsOpt = new Option<string?>("--metrics") { Description = $"Comma-separated heatmap metrics (default: {string.Join(",", ResultWriter.HeadlineMetrics)} for classification slices, {string.Join(",", ResultWriter.SegHeadlineMetrics)} for segmentation slices)" };
        var fairnessOpt = new Option<string?>("--tradeoff-metric") { Description = "Fairness metric on the y axis of the trade-off scatter (default: auc-gap against overall-auc for classification, delta_dice against mean_dice for segmentation)" };

        var cmd = new Command("report", "Turn a sweep's results into one self-contained HTML report: heatmaps, trade-off, per-group bars, provenance");
        foreach (var o in new Option[] { resultsOpt, sweepOpt, outOpt, cellOpt, metricsOpt, fairnessOpt, Cli.GatewayOpt, Cli.RedisOpt }) cmd.Options.Add(o);
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(resultsOpt) is null) == (r.GetValue(sweepOpt) is null))
                r.AddError("give --results FOLDER_OR_FILE (a run's results) or --sweep SWEEP with --redis/--gateway (a cluster sweep), one of them");
        });
        cmd.SetAction(async (pr, ct) =>
        {
            var metrics = pr.GetValue(metricsOpt)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            ReportOutput Write(string results, string? @out, string? title) => HtmlReport.Write(new ReportOptions
            {
                Results = results, Out = @out, CellId = pr.GetValue(cellOpt), Metrics = metrics, FairnessMetric = pr.GetValue(fairnessOpt), Title = title,
            });
            int Print(ReportOutput r)
            {
                console.MarkupLine($"report: [link]{Markup.Escape(r.Html)}[/] ({r.DoneCells} done and {r.FailedCells} failed cells; {r.Figures.Count} figures; " +
                                   (r.HasIntervals ? "with confidence intervals" : "no CI in these results") + ")");
                console.MarkupLine($"exports: {Markup.Escape(r.FiguresDir)} (*.svg, *.png), {Markup.Escape(r.Csv)}, {Markup.Escape(r.Json)}");
                return 0;
            }
            int Fail(ReportException e)
            {
                var text = e.Message;
                if (e.UnknownMetric is { } metric && Suggest.Near(metric, e.Known) is { Count: > 0 } near) text += $" (did you mean {string.Join(" or ", near)}?)";
                console.MarkupLine($"[red]error:[/] {Markup.Escape(text)}");
                return SweepCommands.ExitBadInput;
            }

            if (pr.GetValue(sweepOpt) is not { } sweepId)
            {
                try { return Print(Write(pr.GetValue(resultsOpt)!, pr.GetValue(outOpt), null)); }
                catch (ReportException e) { return Fail(e); }
            }

            var html = Path.GetFullPath(pr.GetValue(outOpt) ?? Path.Combine("out", sweepId, "report.html"));
            if (Directory.Exists(html)) { console.MarkupLine($"[red]error:[/] --out {Markup.Escape(html)} is a folder; give a file name (e.g. report.html)"); return SweepCommands.ExitBadInput; }
            return await new SweepCommands(console).OnSweepAsync(pr, sweepId, ct, async (client, ledger) =>
            {
                var (results, summaryOnly) = await SweepCommands.FetchResultsAsync(client.GetGrain<IAggregatorGrain>(sweepId), ledger);
                var unfinished = ledger.Count(c => c.State is "pending" or "running");
                var file = Path.Combine(Path.GetDirectoryName(html)!, "sweep-results.json");
                try { Directory.CreateDirectory(Path.GetDirectoryName(html)!); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    console.MarkupLine($"[red]error:[/] cannot create the folder of --out {Markup.Escape(html)}: {Markup.Escape(OutputFolder.Reason(e))}");
                    return SweepCommands.ExitBadInput;
                }
                if (OutputFile.Write(file, JsonSerializer.Serialize(results, JsonDefaults.Pretty), "--out") is { } error)
                {
                    console.MarkupLine($"[red]error:[/] {Markup.Escape(error)}");
                    return SweepCommands.ExitBadInput;
                }
                try
                {
                    var code = Print(Write(file, html, sweepId));
                    console.MarkupLine($"[grey]cell results of sweep {Markup.Escape(sweepId)}: {Markup.Escape(file)} (`fairmedfm report --results` takes it again)[/]");
                    if (summaryOnly > 0)
                        console.MarkupLine($"[yellow]{summaryOnly} cell(s) only from their summary (their result file is not readable where the sweep's aggregator runs): no per-group values for them[/]");
                    if (unfinished > 0) console.MarkupLine($"[yellow]{unfinished} cell(s) still pending or running are not in the report[/]");
                    return code;
                }
                catch (ReportException e) { return Fail(e); }
            });
        });
        return cmd;
    }
}
