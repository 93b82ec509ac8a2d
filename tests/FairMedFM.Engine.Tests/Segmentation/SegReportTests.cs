using System.Text.Json;
using System.Text.Json.Nodes;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Reports;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>
/// `fairmedfm report` on the results of a real segmentation run (a tiny grid on synthetic data with the weight-free
/// baseline): Dice heatmaps and tables, mean Dice against the Dice gap in the trade-off, per-group Dice/IoU bars; and a
/// results file mixing segmentation and classification cells renders both.
/// </summary>
[Collection(SegCollection.Name)]
public sealed class SegReportTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Report_of_a_segmentation_run_shows_Dice_tables_and_the_Dice_trade_off()
    {
        var card = SegTestSupport.Synth2D(_tmp.Sub("data"), patients: 6, name: "seg_report_data").CardPath;
        var grid = _tmp.File("grid.yaml");
        File.WriteAllText(grid, $$"""
            name: seg-report
            datasets: ["{{card}}"]
            models: [{{OtsuBaseline.Id}}]
            usages: [seg-bbox, seg-center]
            attributes: [sex]
            seeds: [0, 1]
            normalization: dataset
            metrics: {bootstrap: 20}
            """);
        var outDir = _tmp.File("out");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", _tmp.File("cache"), "--plain");
        Assert.True(code == 0, output);

        (code, output) = await CliRunner.Run("report", "--results", outDir);
        Assert.True(code == 0, output);
        var html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        var results = JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(outDir, "results.json")), JsonDefaults.Pretty)!;
        Assert.Equal(4, results.Count(r => r.Status == "done"));
        foreach (var usage in new[] { SegUsages.Box, SegUsages.Center })
        {
            Assert.Contains($"{usage} · erm · attribute <code>sex</code>", html);
            // The Dice table holds the results' own numbers (mean ± sd over the two seeds).
            var dice = results.Where(r => r.Spec.Usage == usage).Select(r => r.Summary!["mean_dice"].Value!.Value).ToList();
            Assert.Contains(ReportFixture.Inv(dice.Average()) + " ± ", html);
        }
        Assert.Contains("<th>Dice<br>", html);
        Assert.Contains("<th>Dice gap<br>", html);
        Assert.Contains("<th>ES-Dice<br>", html);
        Assert.Contains("groups: n (+scored/−skipped)", html);
        Assert.Contains("<th>+scored</th><th>−skipped</th><th>Dice</th><th>IoU</th>", html);
        Assert.DoesNotContain("<th>AUC<br>", html);
        // One trade-off per slice: mean Dice (x) against the Dice gap (y).
        Assert.Equal(2, CountOf(html, "class=\"fig fig-tradeoff\""));
        Assert.Contains("x: Dice (mean Dice over the scored samples (utility)); y: Dice gap (max − min group mean Dice)", html);
        var tradeoffSvg = File.ReadAllText(Directory.GetFiles(Path.Combine(outDir, "figures"), "tradeoff-*.svg")[0]);
        Assert.Contains(ReportFixture.SvgTexts(tradeoffSvg), t => t.StartsWith("Dice (utility", StringComparison.Ordinal));
        Assert.Equal(4, CountOf(html, "class=\"fig fig-groups\"") + CountOf(html, "class=\"fig fig-tradeoff\""));

        // Segmentation metric names on the command line.
        var picked = _tmp.File("picked.html");
        (code, output) = await CliRunner.Run("report", "--results", outDir, "--out", picked, "--metrics", "mean_dice,delta_dice", "--tradeoff-metric", "delta_dice");
        Assert.True(code == 0, output);
        var pickedHtml = File.ReadAllText(picked);
        Assert.Contains("<th>Dice<br>", pickedHtml);
        Assert.DoesNotContain("<th>ES-Dice<br>", pickedHtml);
        Assert.Equal(2 * 2, CountOf(pickedHtml, "class=\"fig fig-heatmap\""));

        // Mixed results: classification slices keep AUC against the AUC gap, segmentation slices Dice against the Dice gap.
        var mixedDir = _tmp.Sub("mixed");
        var mixed = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")))!.AsArray();
        foreach (var c in JsonNode.Parse(JsonSerializer.Serialize(ReportFixture.Cells(), JsonDefaults.Pretty))!.AsArray()) mixed.Add(c!.DeepClone());
        File.WriteAllText(Path.Combine(mixedDir, "results.json"), mixed.ToJsonString());
        var o = HtmlReport.Write(new ReportOptions { Results = mixedDir });
        var mixedHtml = File.ReadAllText(o.Html);
        Assert.Contains("x: Dice (mean Dice over the scored samples (utility)); y: Dice gap", mixedHtml);
        Assert.Contains("x: AUC (overall test AUC (utility)); y: AUC gap", mixedHtml);
        Assert.Contains("<th>Dice gap<br>", mixedHtml);
        Assert.Contains("<th>AUC gap<br>", mixedHtml);
        Assert.Contains("<th>+pos</th><th>−neg</th><th>AUC</th>", mixedHtml);
        Assert.Contains("<th>+scored</th><th>−skipped</th><th>Dice</th>", mixedHtml);
        // An asked-for metric of one task only still reports the other task's slices with their defaults.
        o = HtmlReport.Write(new ReportOptions { Results = mixedDir, Out = Path.Combine(mixedDir, "dice.html"), Metrics = ["mean_dice"] });
        Assert.Contains("<th>AUC<br>", File.ReadAllText(o.Html));
        var e = Assert.Throws<ReportException>(() => HtmlReport.Write(new ReportOptions { Results = mixedDir, Metrics = ["mean_dicee"] }));
        Assert.Contains("metric 'mean_dicee' is not in these results", e.Message);
    }

    private static int CountOf(string s, string what)
    {
        int n = 0, i = 0;
        while ((i = s.IndexOf(what, i, StringComparison.Ordinal)) >= 0) { n++; i += what.Length; }
        return n;
    }
}
