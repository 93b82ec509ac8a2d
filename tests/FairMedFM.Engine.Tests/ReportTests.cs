using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Engine.Tests;

/// <summary>The synthetic results folder reported once (3 heatmap metrics), shared by the tests that read the report.</summary>
public sealed class ReportOutputFixture : IDisposable
{
    public static readonly string[] Metrics = { "overall-auc", "auc-gap", "eod" };
    public TempDir Tmp { get; } = new();
    public string ResultsDir { get; }
    public ReportOutput Output { get; }
    public string Html { get; }

    public ReportOutputFixture()
    {
        ResultsDir = ReportFixture.Write(Tmp.Sub("results"));
        Output = HtmlReport.Write(new ReportOptions
        {
            Results = ResultsDir, Out = Path.Combine(Tmp.Sub("site"), "report.html"), Metrics = Metrics,
            Now = new DateTimeOffset(2026, 2, 3, 4, 5, 6, TimeSpan.Zero),
        });
        Html = File.ReadAllText(Output.Html);
    }

    public void Dispose() => Tmp.Dispose();
}

public sealed class ReportTests(ReportOutputFixture fx) : IClassFixture<ReportOutputFixture>
{
    // 2 attributes × 3 metrics heatmaps + 2 trade-off scatters + 2 per-group bar charts (first done cell of each attribute).
    private const int ExpectedFigures = 2 * 3 + 2 + 2;

    [Fact]
    public void Html_has_the_expected_titles_and_figure_count()
    {
        var h = fx.Html;
        Assert.Contains($"FairMedFM.NET fairness report — {ReportFixture.Title}", h);
        foreach (var a in ReportFixture.Attributes)
        {
            Assert.Contains($"AUC · {a} · higher is better", h);
            Assert.Contains($"AUC gap · {a} · lower is better", h);
            Assert.Contains($"EOD · {a} · higher is better", h);
            Assert.Contains($"Utility–fairness trade-off · lp · erm · {a}", h);
        }
        Assert.Contains("Per-group results · chest_a × fm-alpha · sex · seed 0", h);
        Assert.Contains("Per-group results · chest_a × fm-alpha · age60 · seed 0", h);

        Assert.Equal(ExpectedFigures, fx.Output.Figures.Count);
        Assert.Equal(ExpectedFigures, Regex.Matches(h, "<figure ").Count);
        Assert.Equal(ExpectedFigures, Regex.Matches(h, "<svg[ >]").Count);
        Assert.Equal(ExpectedFigures, Regex.Matches(h, "<figcaption>").Count);
        Assert.Equal(6, fx.Output.Figures.Count(f => f.Kind == "heatmap"));
        Assert.Equal(2, fx.Output.Figures.Count(f => f.Kind == "tradeoff"));
        Assert.Equal(2, fx.Output.Figures.Count(f => f.Kind == "groups"));
        // Each figure carries its title inside its SVG (rendered text and the accessible <title>).
        foreach (var f in fx.Output.Figures) Assert.Contains($"<title>{f.Title}</title>", h);
        // Every dataset and model appears in the figures' tick labels.
        var texts = ReportFixture.SvgTexts(h);
        foreach (var n in ReportFixture.Datasets.Concat(ReportFixture.Models)) Assert.Contains(n, texts);
    }

    [Fact]
    public void Html_is_self_contained()
    {
        var h = fx.Html;
        Assert.DoesNotMatch(new Regex(@"(src|href|xlink:href|action|poster|srcset)\s*=\s*[""']?\s*(https?:|//|ftp:|file:)", RegexOptions.IgnoreCase), h);
        Assert.DoesNotMatch(new Regex(@"url\(\s*[""']?\s*(https?:|//|file:)", RegexOptions.IgnoreCase), h);
        Assert.DoesNotMatch(new Regex(@"<(script|link|iframe|object|embed)\b", RegexOptions.IgnoreCase), h);
        Assert.DoesNotContain("@import", h);
        // Every link is an in-page anchor, every image a data: URI.
        foreach (Match m in Regex.Matches(h, @"\bhref=""([^""]*)"""))
            Assert.True(m.Groups[1].Value.StartsWith('#') || m.Groups[1].Value.StartsWith("data:image/png;base64,"), m.Groups[1].Value[..Math.Min(40, m.Groups[1].Value.Length)]);
        foreach (Match m in Regex.Matches(h, @"<img\b[^>]*src=""([^""]*)""")) Assert.StartsWith("data:", m.Groups[1].Value);
        // Ids are unique (several inline SVGs in one page must not share clip paths or images).
        var ids = Regex.Matches(h, @"\bid=""([^""]+)""").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (Match m in Regex.Matches(h, @"(?:href=""#|url\(#)([^"")]+)")) Assert.Contains(m.Groups[1].Value, ids);
    }

    [Fact]
    public void Undefined_values_render_with_their_reason_never_as_zero()
    {
        var h = fx.Html;
        Assert.Contains("undefined (TooFewGroups)", h);   // the AUC gap of chest_b × fm-beta × age60
        Assert.Contains("undefined (NoPositives)", h);    // group M of the first sex cell: AUC and TPR
        // The heatmap draws the reason in the grey cell.
        var svg = File.ReadAllText(Path.Combine(fx.Output.FiguresDir, "heatmap-lp-erm-age60-auc-gap.svg"));
        var texts = ReportFixture.SvgTexts(svg);
        // One <text> per line: "undefined" then "(TooFewGroups)" in the grey cell.
        var i = texts.IndexOf("undefined");
        Assert.True(i >= 0 && texts[i + 1] == "(TooFewGroups)", string.Join(" | ", texts));
        // The matrix export leaves the mean empty and names the reason.
        var row = File.ReadAllLines(fx.Output.Csv).Single(l => l.StartsWith("lp,erm,age60,auc-gap,lower is better,chest_b,fm-beta,"));
        Assert.StartsWith("lp,erm,age60,auc-gap,lower is better,chest_b,fm-beta,,,0,2,TooFewGroups,", row);
        var json = JsonNode.Parse(File.ReadAllText(fx.Output.Json))!;
        var entry = json["matrix"]!.AsArray().Single(e => (string)e!["metric"]! == "auc-gap" && (string)e["attribute"]! == "age60"
                                                          && (string)e["dataset"]! == "chest_b" && (string)e["model"]! == "fm-beta")!;
        Assert.Null(entry["mean"]);
        Assert.Equal("undefined (TooFewGroups)", (string)entry["text"]!);
    }

    [Fact]
    public void Failed_cells_are_listed_with_their_reason()
    {
        Assert.Equal(1, fx.Output.FailedCells);
        Assert.Equal(16, fx.Output.DoneCells);
        Assert.Contains("1 cell(s) failed", fx.Html);
        Assert.Contains(ReportFixture.FailedError.Replace("'", "&#39;"), fx.Html);
        var json = JsonNode.Parse(File.ReadAllText(fx.Output.Json))!;
        Assert.Equal(ReportFixture.FailedError, (string)json["failed"]![0]!["error"]!);
    }

    [Fact]
    public void Reproducibility_section_has_config_hashes_versions_and_attribution()
    {
        var h = fx.Html;
        var cells = ReportFixture.Cells();
        Assert.Contains(cells[0].DataHash!, h);
        Assert.Contains(cells[0].WeightsHash!, h);
        Assert.Contains(cells[0].SplitHash!, h);
        Assert.Contains(cells[0].ConfigHash, h);
        Assert.Contains(cells[0].EmbeddingKey!, h);
        Assert.Contains("<code>training.optimizer</code>", h);
        Assert.Contains("<code>metrics.threshold</code>", h);
        Assert.Contains("2026-02-03T04:05:06", h);
        Assert.Contains($"engine {HtmlReport.EngineVersion}", h);
        Assert.Contains("Synthetic test data. Attribution: made by the FairMedFM.NET report tests.", h);
        Assert.Contains("chest_a.LICENSE_AND_ATTRIBUTION.txt", h);
        Assert.Contains("no CI in these results", h);
    }

    [Fact]
    public void Figure_exports_are_valid_svg_and_non_uniform_png()
    {
        var svgs = Directory.GetFiles(fx.Output.FiguresDir, "*.svg");
        var pngs = Directory.GetFiles(fx.Output.FiguresDir, "*.png");
        Assert.Equal(ExpectedFigures, svgs.Length);
        Assert.Equal(ExpectedFigures, pngs.Length);
        foreach (var f in fx.Output.Figures)
        {
            var svg = XDocument.Load(Path.Combine(fx.Output.FiguresDir, f.Id + ".svg"));
            Assert.Equal("svg", svg.Root!.Name.LocalName);
            Assert.True(svg.Descendants().Count(e => e.Name.LocalName == "text") > 5, f.Id + ": too little text");
            var (w, hgt, distinct, colourful) = ReportFixture.DecodePng(Path.Combine(fx.Output.FiguresDir, f.Id + ".png"));
            Assert.Equal((f.Width, f.Height), (w, hgt));
            Assert.True(distinct > 10, $"{f.Id}: {distinct} distinct colours");
            // Heatmap cells and bars fill large areas; trade-off points are markers (sampled every 2nd pixel each way).
            var least = f.Kind == "tradeoff" ? 40 : 1000;
            Assert.True(colourful > least, $"{f.Id}: only {colourful} coloured pixels: the plot's data did not render");
        }
    }

    [Fact]
    public void Csv_and_json_exports_hold_the_matrix()
    {
        var lines = File.ReadAllLines(fx.Output.Csv);
        Assert.StartsWith("usage,method,attribute,metric,direction,dataset,model,mean,sd,seeds,undefined_seeds,undefined_reasons,ci_lower,ci_upper", lines[0]);
        Assert.Equal(1 + 2 * 3 * 2 * 2, lines.Length); // attributes × metrics × datasets × models
        // chest_a × fm-alpha × sex AUC: seeds 0.62 and 0.63 → mean 0.625.
        var auc = lines.Single(l => l.StartsWith("lp,erm,sex,overall-auc,higher is better,chest_a,fm-alpha,")).Split(',');
        Assert.Equal(0.625, double.Parse(auc[7], CultureInfo.InvariantCulture), 1e-12);
        Assert.Equal("2", auc[9]);

        var json = JsonNode.Parse(File.ReadAllText(fx.Output.Json))!;
        Assert.Equal(ReportFixture.Title, (string)json["title"]!);
        Assert.Equal(24, json["matrix"]!.AsArray().Count);
        Assert.Equal(2 * 2 * 2, json["tradeoff"]!.AsArray().Count);
        Assert.Equal(ExpectedFigures, json["figures"]!.AsArray().Count);
        Assert.Equal(17, json["provenance"]!.AsArray().Count);
        var bars = json["groups"]!.AsArray();
        Assert.Equal(2, bars.Count);
        Assert.Equal(new[] { "overall", "F", "M" }, bars[0]!["rows"]!.AsArray().Select(r => (string)r!["group"]!));
        Assert.Equal("NoPositives", (string)bars[0]!["rows"]![2]!["values"]!["auc"]!["undefined"]!);
        Assert.False((bool)json["has_confidence_intervals"]!);
    }
}

/// <summary>CIs: read by name from results.json when present (the bootstrap's lower/upper), "no CI" otherwise.</summary>
public sealed class ReportCiTests
{
    [Fact]
    public void Adapter_reads_the_known_shapes_and_nothing_else()
    {
        ConfidenceInterval? R(string json) => CiAdapter.Read(JsonNode.Parse(json));
        Assert.Equal(new ConfidenceInterval(0.1, 0.3), R("""{"value": 0.2, "lower": 0.1, "upper": 0.3}"""));
        Assert.Equal(new ConfidenceInterval(0.1, 0.3), R("""{"value": 0.2, "Lower": 0.1, "Upper": 0.3}"""));
        Assert.Equal(new ConfidenceInterval(0.1, 0.3), R("""{"value": 0.2, "ci_lower": 0.1, "ci_upper": 0.3}"""));
        Assert.Equal(new ConfidenceInterval(0.1, 0.3, 0.95), R("""{"value": 0.2, "ci": {"lower": 0.1, "upper": 0.3}, "level": 0.95}"""));
        Assert.Equal(new ConfidenceInterval(0.1, 0.3), R("""{"value": 0.2, "ci": [0.1, 0.3]}"""));
        Assert.Null(R("""{"value": 0.2, "undefined": null, "detail": null}"""));
        Assert.Null(R("""{"value": null, "undefined": "NoPositives", "lower": null, "upper": null}"""));
        Assert.Null(R("""{"value": 0.2, "lower": "NaN", "upper": 0.3}"""));
        Assert.Null(R("""{"value": 0.2, "lower": 0.4, "upper": 0.3}"""));
        Assert.Null(R("""{"value": 0.2, "lower": 0.1}"""));
        Assert.Null(R("0.2"));
    }

    [Fact]
    public void Report_shows_cis_when_the_results_carry_them()
    {
        using var tmp = new TempDir();
        var dir = ReportFixture.Write(tmp.Sub("results"), withCis: true);
        var o = HtmlReport.Write(new ReportOptions { Results = Path.Combine(dir, "results.json"), Metrics = new[] { "overall-auc", "auc-gap" } });
        Assert.True(o.HasIntervals);
        Assert.Equal(Path.Combine(dir, "report.html"), o.Html);
        var h = File.ReadAllText(o.Html);
        Assert.Contains("bootstrap CIs present in the results", h);
        Assert.Contains("Whiskers: 95% bootstrap CI.", h);
        // chest_a × fm-alpha × sex AUC: seeds 0.62 [0.59, 0.65] and 0.63 [0.60, 0.66] → mean bounds [0.595, 0.655].
        Assert.Contains("CI [0.595, 0.655] (mean of 2)", h);
        var svg = File.ReadAllText(Path.Combine(o.FiguresDir, "heatmap-lp-erm-sex-overall-auc.svg"));
        Assert.Contains("mean CI [0.595, 0.655]", ReportFixture.SvgTexts(svg));
        var csv = File.ReadAllLines(o.Csv).Single(l => l.StartsWith("lp,erm,sex,overall-auc,higher is better,chest_a,fm-alpha,")).Split(',');
        Assert.Equal(0.595, double.Parse(csv[12], CultureInfo.InvariantCulture), 1e-9);
        Assert.Equal(0.655, double.Parse(csv[13], CultureInfo.InvariantCulture), 1e-9);
        // The undefined AUC gap has no CI, and still says why it is undefined.
        Assert.Contains("undefined (TooFewGroups)", h);
        var json = JsonNode.Parse(File.ReadAllText(o.Json))!;
        var groupAuc = json["groups"]![0]!["rows"]![1]!["values"]!["auc"]!;
        Assert.Equal(0.64 - 0.03, (double)groupAuc["ci"]!["lower"]!, 1e-9);
    }

    [Fact]
    public void Report_without_cis_says_no_ci()
    {
        using var tmp = new TempDir();
        var dir = ReportFixture.Write(tmp.Sub("results"));
        var o = HtmlReport.Write(new ReportOptions { Results = dir, Metrics = new[] { "overall-auc" } });
        Assert.False(o.HasIntervals);
        var h = File.ReadAllText(o.Html);
        Assert.Contains("no CI", h);
        Assert.DoesNotContain("CI [", h);
    }

    [Fact]
    public void Bad_inputs_are_clear_errors()
    {
        using var tmp = new TempDir();
        var e = Assert.Throws<ReportException>(() => HtmlReport.Write(new ReportOptions { Results = tmp.Path }));
        Assert.Contains("no results.json", e.Message);
        File.WriteAllText(tmp.File("results.json"), "{ not json");
        e = Assert.Throws<ReportException>(() => HtmlReport.Write(new ReportOptions { Results = tmp.Path }));
        Assert.Contains("not valid JSON", e.Message);
        var dir = ReportFixture.Write(tmp.Sub("ok"));
        e = Assert.Throws<ReportException>(() => HtmlReport.Write(new ReportOptions { Results = dir, Metrics = new[] { "overall-aucc" } }));
        Assert.Contains("'overall-aucc'", e.Message);
        Assert.Contains("auc-gap", e.Message);
        e = Assert.Throws<ReportException>(() => HtmlReport.Write(new ReportOptions { Results = dir, CellId = "ffffffffff" }));
        Assert.Contains("no cell with this id", e.Message);
    }
}

/// <summary>Sweeps where nothing finished still get a report that says why.</summary>
public sealed class ReportEdgeTests
{
    [Fact]
    public void All_failed_sweep_reports_the_failures_and_no_figures()
    {
        using var tmp = new TempDir();
        var failed = ReportFixture.Cells().Where(c => c.Status == "failed").ToList();
        File.WriteAllText(tmp.File("results.json"), System.Text.Json.JsonSerializer.Serialize(failed, JsonDefaults.Pretty));
        var o = HtmlReport.Write(new ReportOptions { Results = tmp.Path });
        Assert.Empty(o.Figures);
        Assert.Equal((0, 1), (o.DoneCells, o.FailedCells));
        var h = File.ReadAllText(o.Html);
        Assert.Contains("No cell finished: nothing to show.", h);
        Assert.Contains("1 cell(s) failed", h);
        Assert.Contains("ethnicity", h);
        Assert.Single(File.ReadAllLines(o.Csv)); // header only
    }

    [Fact]
    public void A_single_cell_json_file_is_accepted()
    {
        using var tmp = new TempDir();
        var cell = ReportFixture.Cells()[0];
        File.WriteAllText(tmp.File("cell.json"), System.Text.Json.JsonSerializer.Serialize(cell, JsonDefaults.Pretty));
        var o = HtmlReport.Write(new ReportOptions { Results = tmp.File("cell.json"), Metrics = new[] { "overall-auc" } });
        Assert.Equal(3, o.Figures.Count); // one heatmap, one trade-off, one per-group chart
        Assert.Contains("0.620", File.ReadAllText(o.Html));
    }
}
