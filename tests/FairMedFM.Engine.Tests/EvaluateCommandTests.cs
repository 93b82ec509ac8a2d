using System.Globalization;
using System.Text.Json;
using FairMedFM.Client;
using FairMedFM.Data;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Evaluation;
using FairMedFM.Engine.Reports;
using FairMedFM.Metrics;
using Spectre.Console;

namespace FairMedFM.Engine.Tests;

/// <summary>`fairmedfm evaluate`: the predictions reader's errors, the evaluation against the library, the CLI; and the
/// sweep-side metrics settings and interval columns.</summary>
public sealed class EvaluateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fairmedfm-eval-").FullName;

    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private string Write(string name, string text)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllText(p, text);
        return p;
    }

    /// <summary>A seeded predictions file: validation and test rows, two patients' images per patient id, sex and site.</summary>
    private string Sample(int n = 400, bool withTrain = false)
    {
        var rng = new Random(3);
        var sb = new System.Text.StringBuilder("split,patient_id,label,prob,sex,site\n");
        for (int i = 0; i < n; i++)
        {
            int y = rng.NextDouble() < 0.4 ? 1 : 0;
            string sex = rng.Next(2) == 0 ? "F" : "M", site = rng.Next(3) switch { 0 => "a", 1 => "b", _ => "c" };
            double z = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) + (y == 1 ? 1.4 : 0) + (sex == "M" ? 0.3 : 0);
            string split = withTrain && i % 10 == 0 ? "train" : i < n / 3 ? "validation" : "test";
            sb.Append(CultureInfo.InvariantCulture, $"{split},p{i / 2},{y},{1 / (1 + Math.Exp(-z)):R},{sex},{site}\n");
        }
        return Write("preds.csv", sb.ToString());
    }

    [Fact]
    public void Evaluation_equals_the_library_with_the_threshold_chosen_on_validation_and_frozen()
    {
        var path = Sample(withTrain: true);
        var p = Predictions.Read(path, new PredictionColumns { Attributes = ["sex", "site"] });
        Assert.True(p.TrainRowsDropped > 0);
        var r = PredictionsEvaluator.Run(p, new EvaluateSettings { Bootstrap = 100, Seed = 4, Intersections = true });
        Assert.Equal(["sex", "site", "sex×site"], r.Reports.Select(a => a.Attribute));
        var val = Enumerable.Range(0, p.Count).Where(i => p.Splits![i] == "validation").ToArray();
        var test = Enumerable.Range(0, p.Count).Where(i => p.Splits![i] == "test").ToArray();
        double thr = ClassificationMetrics.ChooseThreshold(val.Select(i => p.Scores![i]).ToArray(), val.Select(i => p.Labels[i]).ToArray(), ThresholdRule.BestF1);
        var lib = ClassificationMetrics.Evaluate(test.Select(i => p.Scores![i]).ToArray(), test.Select(i => p.Labels[i]).ToArray(),
            test.Select(i => p.Attributes["sex"][i]).ToArray(), new MetricsOptions(), thr);
        var sex = r.Reports[0];
        Assert.Equal(thr, sex.Threshold);
        Assert.Equal("validation", sex.ThresholdChosenOn);
        foreach (var k in ClassificationReport.SummaryKeys)
            Assert.Equal(lib.Summary[k].IsDefined ? lib.Summary[k].Value : null, sex.Summary[k].Value);
        Assert.Equal(lib.Groups.Select(g => (g.Group, g.Counts.N, g.Counts.Positives)), sex.Groups.Select(g => (g.Group, g.N, g.Positives)));
        Assert.True(sex.Summary["auc-gap"].Lower < sex.Summary["auc-gap"].Upper);
        Assert.Equal("LowerIsBetter", sex.Summary["auc-gap"].Direction);
        Assert.Equal("Gap", sex.Summary["auc-gap"].Kind);
        Assert.NotNull(sex.Groups[0].Values["auc"].Lower);
        Assert.True(r.ClusteredByPatient);
        Assert.Equal(test.Select(i => p.Patients![i]).Distinct().Count(), r.TestPatients);
        // the JSON round-trips and carries every metric with its interval and counts
        using var doc = JsonDocument.Parse(r.ToJson());
        var first = doc.RootElement.GetProperty("reports")[0];
        Assert.Equal(lib.Groups[0].Counts.Negatives, first.GetProperty("groups")[0].GetProperty("negatives").GetInt32());
        Assert.True(first.GetProperty("summary").GetProperty("eod").TryGetProperty("lower", out _));
        Assert.Contains("sex×site", PredictionsEvaluator.ToText(r));
    }

    [Fact]
    public void Reference_mode_and_no_split_choose_the_threshold_on_the_evaluated_rows()
    {
        var c = Golden("cls_three_groups");
        var p = Predictions.Read(c, new PredictionColumns());
        var r = PredictionsEvaluator.Run(p, new EvaluateSettings { Mode = "reference", Bootstrap = 0 });
        // FairMedFM's legacy golden through the file path: same numbers as the legacy code
        var legacy = JsonDocument.Parse(File.ReadAllText(TestPathsGolden())).RootElement.GetProperty("cls_three_groups").GetProperty("summary");
        foreach (var k in new[] { "overall-auc", "worst-auc", "auc-gap", "eod", "eo", "acc-gap" })
            Assert.Equal(legacy.GetProperty(k).GetDouble(), r.Reports[0].Summary[k].Value!.Value, 1e-9);
        Assert.StartsWith("test", r.Reports[0].ThresholdChosenOn);
    }

    private static string TestPathsGolden()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "FairMedFM.sln")))
                return Path.Combine(Environment.GetEnvironmentVariable("FAIRMEDFM_SHARED") ?? Path.Combine(d.FullName, "..", "shared"), "golden", "metrics", "fairmedfm_legacy_golden.json");
        throw new DirectoryNotFoundException("FairMedFM.sln");
    }

    /// <summary>A legacy golden case written as a predictions CSV (label, prob, group).</summary>
    private string Golden(string name)
    {
        var c = JsonDocument.Parse(File.ReadAllText(TestPathsGolden())).RootElement.GetProperty(name);
        var sb = new System.Text.StringBuilder("label,prob,group\n");
        var prob = c.GetProperty("prob").EnumerateArray().ToArray();
        var label = c.GetProperty("label").EnumerateArray().ToArray();
        var group = c.GetProperty("group").EnumerateArray().ToArray();
        for (int i = 0; i < prob.Length; i++)
            sb.Append(CultureInfo.InvariantCulture, $"{label[i].GetDouble():0},{((float)prob[i].GetDouble()).ToString("R", CultureInfo.InvariantCulture)},{group[i].GetDouble():0}\n");
        return Write(name + ".csv", sb.ToString());
    }

    [Theory]
    [InlineData("label,prob,group\n1,0.3,a\n0,abc,b\n", 2, "prob", "'abc' is not a number")]
    [InlineData("label,prob,group\n1,0.3,a\n2,0.4,b\n", 2, "label", "not 0 or 1")]
    [InlineData("label,prob,group\n1,0.3,a\n0,NaN,b\n", 2, "prob", "not finite")]
    [InlineData("label,prob,group\n1,0.3,a\n0,0.4,\n", 2, "group", "missing")]
    [InlineData("label,prob,group\n1,0.3,a\n0,0.4,NaN\n", 2, "group", "missing")]
    [InlineData("label,prob,group\n1,0.3,a\n0,0.4\n", 2, null, "2 fields but the header has 3")]
    [InlineData("label,prob,group,split\n1,0.3,a,test\n0,0.4,b,holdout\n", 2, "split", "'holdout'")]
    [InlineData("label,prob,group,patient_id\n1,0.3,a,p1\n0,0.4,b,\n", 2, "patient_id", "empty patient id")]
    public void Bad_files_name_the_row_and_column(string text, int row, string? column, string reason)
    {
        var ex = Assert.Throws<DataException>(() => Predictions.Read(Write("bad.csv", text), new PredictionColumns()));
        Assert.Equal(row, ex.Row);
        Assert.Equal(column, ex.Column);
        Assert.Contains(reason, ex.Message);
    }

    [Fact]
    public void Missing_columns_list_the_header_and_missing_groups_can_be_mapped()
    {
        var ex = Assert.Throws<DataException>(() => Predictions.Read(Write("a.csv", "y,prob,group\n1,0.2,a\n"), new PredictionColumns()));
        Assert.Equal("label", ex.Column);
        Assert.Contains("header has: y, prob, group", ex.Message);
        var ex2 = Assert.Throws<DataException>(() => Predictions.Read(Write("b.csv", "label,p,group\n1,0.2,a\n"), new PredictionColumns()));
        Assert.Contains("--score", ex2.Message);
        var mapped = Predictions.Read(Write("c.csv", "label,prob,group\n1,0.3,a\n0,0.4,\n1,0.8,NA\n"), new PredictionColumns { MissingGroup = "unknown" });
        Assert.Equal(["a", "unknown", "unknown"], mapped.Attributes["group"]);
        Assert.Throws<DataException>(() => Predictions.Read(Write("d.csv", "label,prob,group\n"), new PredictionColumns()));
    }

    [Fact]
    public void Per_class_scores_are_evaluated_one_vs_rest()
    {
        var text = "label,s0,s1,s2,group\n0,0.7,0.2,0.1,a\n1,0.1,0.8,0.1,a\n2,0.2,0.2,0.6,a\n0,0.5,0.3,0.2,b\n1,0.3,0.4,0.3,b\n2,0.1,0.5,0.4,b\n";
        var p = Predictions.Read(Write("mc.csv", text), new PredictionColumns { ClassScores = ["s0", "s1", "s2"] });
        var r = PredictionsEvaluator.Run(p, new EvaluateSettings { Bootstrap = 0, Threshold = "fixed" });
        Assert.Equal(["0", "1", "2"], r.Reports.Select(a => a.Class));
        Assert.Equal(1.0, r.Reports[0].Overall.Values["auc"].Value);
        var ex = Assert.Throws<DataException>(() => Predictions.Read(Write("mc2.csv", text.Replace("\n2,0.1", "\n3,0.1")), new PredictionColumns { ClassScores = ["s0", "s1", "s2"] }));
        Assert.Equal(6, ex.Row);
    }

    [Fact]
    public void Cli_evaluate_prints_a_table_writes_json_and_reports_bad_rows()
    {
        var path = Sample();
        var json = Path.Combine(_dir, "out.json");
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 200;
        int rc = new Cli(console).Build().Parse(["evaluate", "--predictions", path, "--attribute", "sex", "--bootstrap", "50", "--json", json]).Invoke();
        Assert.Equal(0, rc);
        Assert.Contains("auc-gap", text.ToString());
        Assert.Contains("clustered by", text.ToString());
        Assert.True(File.Exists(json));
        var bad = Write("bad.csv", "label,prob,group\n1,0.3,a\n0,x,b\n");
        text.GetStringBuilder().Clear();
        rc = new Cli(console).Build().Parse(["evaluate", "--predictions", bad]).Invoke();
        Assert.Equal(2, rc);
        Assert.Contains("row 2", text.ToString());
        Assert.Contains("prob", text.ToString());
    }

    [Fact]
    public void Grid_metrics_keys_bootstrap_and_ci_are_read_and_validated()
    {
        var g = GridSpec.Parse("name: t\nmetrics: {bootstrap: 50, ci: bca, ci_level: 0.9, threshold: fixed-specificity, specificity: 0.8}\n");
        Assert.Equal((50, "bca", 0.9, ThresholdRule.FixedSpecificity, 0.8), (g.Metrics.Bootstrap, g.Metrics.Ci, g.Metrics.CiLevel, g.Metrics.Rule, g.Metrics.Specificity));
        Assert.Equal(200, new MetricsConfig().Bootstrap);
        Assert.Contains("metrics.ci", Assert.Throws<ConfigException>(() => new MetricsConfig { Ci = "basic" }.Validate()).Message);
        Assert.Throws<ConfigException>(() => new MetricsConfig { Bootstrap = -1 }.Validate());
    }

    [Fact]
    public void Cell_intervals_reach_results_csv_summary_md_and_old_json_still_reads()
    {
        var rng = new Random(1);
        int n = 300;
        var probs = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray();
        var labels = probs.Select(p => rng.NextDouble() < p ? 1 : 0).ToArray();
        var groups = Enumerable.Range(0, n).Select(i => i % 3 == 0 ? "F" : "M").ToArray();
        var patients = Enumerable.Range(0, n).Select(i => "p" + i / 3).ToArray();
        var (report, iv) = CellRunner.EvaluateWithIntervals(probs, labels, groups, patients, new MetricsOptions(), 0.5, new MetricsConfig { Bootstrap = 60 }, 7);
        Assert.NotNull(iv);
        Assert.True(iv!.Clustered);
        var entry = CellRunner.ToEntry(report.Summary["auc-gap"], iv.Summary["auc-gap"]);
        Assert.Equal(iv.Summary["auc-gap"].Lower, entry.Lower);
        var (_, none) = CellRunner.EvaluateWithIntervals(probs, labels, groups, patients, new MetricsOptions(), 0.5, new MetricsConfig { Bootstrap = 0 }, 7);
        Assert.Null(none);

        var spec = new CellSpec { Dataset = "/x/card.yaml", Model = "m", Usage = "lp", Method = "erm", Attribute = "sex", Seed = 0 };
        var result = new CellResult
        {
            CellId = spec.CellId, Spec = spec, Status = "done", DatasetName = "d",
            Summary = report.Summary.ToDictionary(kv => kv.Key, kv => CellRunner.ToEntry(kv.Value, iv.Summary[kv.Key])),
            Groups = [new GroupResult("F", 100, 50, 50, new Dictionary<string, MetricEntry> { ["auc"] = CellRunner.ToEntry(report.Groups[0]["auc"], iv.Groups["F"]["auc"]) })],
            Intervals = new IntervalInfo(60, "percentile", 0.95, 7, true, iv.Units),
        };
        var outDir = Path.Combine(_dir, "out");
        ResultWriter.Write(outDir, "g", [result]);
        var header = File.ReadLines(Path.Combine(outDir, "results.csv")).First().Split(',');
        Assert.Contains("auc-gap:lo", header);
        Assert.Contains("dp-ratio:hi", header);
        Assert.Contains("auc:lo", File.ReadLines(Path.Combine(outDir, "groups.csv")).First().Split(','));
        var md = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{report.Summary["auc-gap"].Value:0.000} [{iv.Summary["auc-gap"].Lower:0.000}, {iv.Summary["auc-gap"].Upper:0.000}]"), md);
        Assert.Contains("bootstrap interval", md);
        Assert.Contains("stratified by group × label", md);
        Assert.Contains("auc-es-fairclip", md);

        // a result written before intervals existed (no lower/upper/intervals keys) still reads
        var old = "{\"value\": 0.5, \"undefined\": null, \"detail\": null}";
        var e = JsonSerializer.Deserialize<MetricEntry>(old, JsonDefaults.Pretty)!;
        Assert.Equal((0.5, (double?)null, (double?)null), (e.Value!.Value, e.Lower, e.Upper));
        var json = JsonSerializer.Serialize(result, JsonDefaults.Pretty).Replace("\"intervals\"", "\"unused_old\"");
        Assert.Null(JsonSerializer.Deserialize<CellResult>(json, JsonDefaults.Pretty)!.Intervals);
    }
}
