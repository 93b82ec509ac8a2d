using System.Text.Json.Nodes;

namespace FairMedFM.Engine.Tests;

/// <summary>`fairmedfm report` end to end, in-process, on the synthetic results folder.</summary>
public sealed class ReportCliTests
{
    [Fact]
    public async Task Report_command_writes_the_html_and_its_exports()
    {
        using var tmp = new TempDir();
        var results = ReportFixture.Write(tmp.Sub("results"));
        var cell = ReportFixture.Cells().First(c => c.Spec.Attribute == "age60" && c.DatasetName == "chest_b" && c.Spec.Model == "fm-beta" && c.Spec.Seed == 1);
        var html = tmp.File("site/fairness.html");
        var (code, output) = await CliRunner.Run("report", "--results", Path.Combine(results, "results.json"), "--out", html,
            "--metrics", "overall-auc, eod", "--cell", cell.CellId[..10], "--tradeoff-metric", "eo");
        Assert.True(code == 0, output);
        Assert.Contains("report: " + html, output);
        Assert.Contains("16 done and 1 failed cells", output);
        Assert.Contains("no CI in these results", output);

        var h = File.ReadAllText(html);
        Assert.Contains("AUC · age60 · higher is better", h);
        Assert.Contains("EOD · sex · higher is better", h);
        Assert.DoesNotContain("AUC gap · sex", h);                                   // not asked for
        Assert.Contains("Per-group results · chest_b × fm-beta · age60 · seed 1", h); // --cell
        Assert.Contains($"For cell <code>{cell.CellId[..10]}</code>", h);
        var json = JsonNode.Parse(File.ReadAllText(tmp.File("site/report.json")))!;
        Assert.Equal("eo", (string)json["tradeoff"]![0]!["y_metric"]!);
        // 2 attributes × 2 metrics + 2 trade-offs + 1 chosen cell.
        Assert.Equal(7, json["figures"]!.AsArray().Count);
        Assert.Equal(7, Directory.GetFiles(tmp.File("site/figures"), "*.png").Length);
        Assert.Equal(7, Directory.GetFiles(tmp.File("site/figures"), "*.svg").Length);
        Assert.True(new FileInfo(tmp.File("site/report.csv")).Length > 0);
    }

    [Fact]
    public async Task Report_command_defaults_to_report_html_beside_the_results()
    {
        using var tmp = new TempDir();
        var results = ReportFixture.Write(tmp.Sub("results"));
        var (code, output) = await CliRunner.Run("report", "--results", results);
        Assert.True(code == 0, output);
        Assert.True(File.Exists(Path.Combine(results, "report.html")));
        // The default heatmap metrics are the summary's headline metrics (9), for 2 attributes.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(results, "report.json")))!;
        Assert.Equal(2 * 9 + 2 + 2, json["figures"]!.AsArray().Count);
    }

    [Fact]
    public async Task Report_command_errors_name_the_problem()
    {
        using var tmp = new TempDir();
        var (code, output) = await CliRunner.Run("report", "--results", tmp.File("nowhere"));
        Assert.Equal(2, code);
        Assert.Contains("file not found", output);

        var results = ReportFixture.Write(tmp.Sub("results"));
        (code, output) = await CliRunner.Run("report", "--results", results, "--metrics", "auc-gapp");
        Assert.Equal(2, code);
        Assert.Contains("metric 'auc-gapp' is not in these results", output);

        (code, output) = await CliRunner.Run("report", "--results", results, "--cell", "0000000000000000");
        Assert.Equal(2, code);
        Assert.Contains("no cell with this id", output);

        var failed = ReportFixture.Cells().Single(c => c.Status == "failed");
        (code, output) = await CliRunner.Run("report", "--results", results, "--cell", failed.CellId);
        Assert.Equal(2, code);
        Assert.Contains("the cell failed", output);

        // System.CommandLine reports the missing required option itself (on stderr) and exits non-zero.
        (code, _) = await CliRunner.Run("report");
        Assert.NotEqual(0, code);
    }
}
