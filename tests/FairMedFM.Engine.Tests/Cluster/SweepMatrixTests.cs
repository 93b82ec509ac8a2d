using FairMedFM.Client;
using FairMedFM.Grains;
using Spectre.Console;

namespace FairMedFM.Engine.Tests.Cluster;

/// <summary><c>fairmedfm matrix</c> over the real aggregator grain's logic (no cluster): default metrics per task, unknown
/// metric and filter values, and the cells that are not in the tables.</summary>
public sealed class SweepMatrixTests
{
    private sealed class MemoryState<T> : IPersistentState<T> where T : new()
    {
        public T State { get; set; } = new();
        public string? Etag => null;
        public bool RecordExists => true;
        public Task ClearStateAsync() => Task.CompletedTask;
        public Task WriteStateAsync() => Task.CompletedTask;
        public Task ReadStateAsync() => Task.CompletedTask;
    }

    private static readonly GroupSizeDto[] Groups = [new("F", 10, 4, 6), new("M", 12, 5, 7)];

    private static CellSummary Seg(string id, int seed, JobPhase phase = JobPhase.Done) => new(id, "seg_ds", "sam_vit_b", "seg-center", "none", "sex", seed, phase, null,
        new Dictionary<string, MetricDto>
        {
            ["mean_dice"] = new(0.80 + seed * 0.01, null), ["delta_dice"] = new(0.05, null), ["es_dice"] = new(0.76, null),
            ["mean_hd95"] = new(4.5, null), ["mean_iou"] = new(0.7, null), ["skewness_dice"] = new(0.1, null),
        }, Groups, null);

    private static CellSummary Cls(string id, int seed) => new(id, "nih", "resnet18", "lp", "erm", "sex", seed, JobPhase.Done, null,
        new Dictionary<string, MetricDto> { ["overall-auc"] = new(0.7 + seed * 0.01, null), ["auc-gap"] = new(0.04, null), ["eod"] = new(0.9, null) },
        Groups, null);

    private static SweepCellView View(string id, string label, string state) =>
        new(id, label, state, 1, null, null, state == "failed" ? "boom" : null, Array.Empty<string>(), null, "cpu", null);

    private static async Task<(int Code, string Output)> Matrix(IEnumerable<CellSummary> cells, IEnumerable<SweepCellView> ledger, SweepCommands.MatrixFilter filter)
    {
        var state = new MemoryState<AggregatorState>();
        foreach (var c in cells) state.State.Cells[c.CellId] = c;
        var agg = new AggregatorGrain(state);
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 240;
        var code = await new SweepCommands(console).PrintMatrixAsync(agg, ledger.ToList(), "s", filter);
        // Table titles wrap at the table's width: compare with runs of white space collapsed.
        return (code, System.Text.RegularExpressions.Regex.Replace(writer.ToString(), @"\s+", " "));
    }

    private static readonly CellSummary[] SegCells = [Seg("a000000000000001", 0), Seg("a000000000000002", 1)];
    private static readonly SweepCellView[] SegLedger =
    [
        View("a000000000000001", "seg_ds × sam_vit_b × seg-center × none × sex × seed 0", "done"),
        View("a000000000000002", "seg_ds × sam_vit_b × seg-center × none × sex × seed 1", "done"),
    ];

    [Fact]
    public async Task A_segmentation_sweep_shows_the_segmentation_metrics_by_default()
    {
        var (code, output) = await Matrix(SegCells, SegLedger, new());
        Assert.Equal(0, code);
        foreach (var m in SweepCommands.SegmentationMatrixMetrics) Assert.Contains("seg-center · none · sex · " + m, output);
        Assert.Contains("0.805 ± 0.007", output);
        Assert.DoesNotContain("overall-auc", output);
        Assert.DoesNotContain("not computed", output);
        Assert.DoesNotContain("skewness_dice", output);
    }

    [Fact]
    public async Task A_mixed_sweep_shows_each_tasks_defaults()
    {
        var cells = SegCells.Append(Cls("b000000000000001", 0)).ToList();
        var ledger = SegLedger.Append(View("b000000000000001", "nih × resnet18 × lp × erm × sex × seed 0", "done")).ToList();
        var (code, output) = await Matrix(cells, ledger, new());
        Assert.Equal(0, code);
        Assert.Contains("seg-center · none · sex · mean_dice", output);
        Assert.Contains("lp · erm · sex · overall-auc", output);
        Assert.Contains("lp · erm · sex · eod", output);
        Assert.DoesNotContain("lp · erm · sex · mean_dice", output);
        Assert.DoesNotContain("seg-center · none · sex · auc-gap", output);
    }

    [Theory]
    [InlineData("nonsense", "unknown metric 'nonsense'", "delta_dice, es_dice")]
    [InlineData("dice", "did you mean mean_dice", "the metrics in this sweep's results")]
    public async Task An_unknown_metric_exits_2_naming_the_valid_ones(string metric, string expected, string alsoExpected)
    {
        var (code, output) = await Matrix(SegCells, SegLedger, new(Metric: metric));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains(expected, output);
        Assert.Contains(alsoExpected, output);
        Assert.DoesNotContain("not computed", output);
    }

    [Fact]
    public async Task A_filter_value_the_sweep_does_not_have_exits_2_naming_its_values()
    {
        var (code, output) = await Matrix(SegCells, SegLedger, new(Attribute: "nosuch"));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("--attribute 'nosuch' does not occur in sweep s; its values: sex", output);
        (code, output) = await Matrix(SegCells, SegLedger, new(Usage: "seg-centre"));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("did you mean seg-center", output);
        // A value only pending cells have is a valid filter: nothing finished matches yet, which is not an error.
        var ledger = SegLedger.Append(View("c000000000000001", "seg_ds × sam_vit_b × seg-center × none × age60 × seed 0", "pending")).ToList();
        (code, output) = await Matrix(SegCells, ledger, new(Attribute: "age60"));
        Assert.Equal(0, code);
        Assert.Contains("no finished cells match", output);
    }

    [Fact]
    public async Task Failed_and_unfinished_cells_are_named_after_the_tables()
    {
        var ledger = SegLedger.Concat(new[]
        {
            View("d000000000000001", "brats × sam_vit_b × seg-center × none × sex × seed 0", "failed"),
            View("d000000000000002", "brats × sam_vit_b × seg-center × none × sex × seed 1", "failed"),
            View("d000000000000003", "kits × sam_vit_b × seg-center × none × sex × seed 0", "pending"),
        }).ToList();
        var (code, output) = await Matrix(SegCells, ledger, new());
        Assert.Equal(0, code);
        Assert.Contains("2 cells failed (datasets: brats)", output);
        Assert.Contains("1 cell still pending or running (datasets: kits)", output);
        Assert.Contains("see `fairmedfm status s`", output);
        Assert.True(output.IndexOf("mean_hd95", StringComparison.Ordinal) < output.IndexOf("2 cells failed", StringComparison.Ordinal));
        (_, output) = await Matrix(SegCells, SegLedger, new());
        Assert.DoesNotContain("failed", output);
    }

    [Fact]
    public void Labels_parse_back_into_their_parts()
    {
        Assert.Equal(("a × b", "m", "lp", "erm", "sex"), SweepCommands.ParseLabel("a × b × m × lp × erm × sex × seed 3"));
        Assert.Null(SweepCommands.ParseLabel("not a label"));
    }

    private static (SweepCommands Commands, StringWriter Writer) Console240()
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 240;
        return (new SweepCommands(console), writer);
    }

    private static AggregatorGrain Aggregator(params CellSummary[] cells)
    {
        var state = new MemoryState<AggregatorState>();
        foreach (var c in cells) state.State.Cells[c.CellId] = c;
        return new AggregatorGrain(state);
    }

    [Fact]
    public async Task The_drill_down_of_a_segmentation_cell_shows_its_per_sample_segmentation_records()
    {
        using var tmp = new TempDir();
        const string id = "e000000000000001";
        var result = tmp.File(id + ".json");
        File.WriteAllText(result, "{}");
        File.WriteAllText(tmp.File(id + ".predictions.csv"),
            "index,sample_id,row,patient_id,volume_id,slice,group,prompt_type,prompt,status,skip_reason,dice,dice_ref,iou,hd95,hd95_undefined,best_mask,predicted_iou,predicted_area,target_area,intersection,height,width\n" +
            "0,img/a.png,0,P1,,,F,center,points 3:4,scored,,0.8125,0.8125,0.6842,2.5,,1,0.9,10,12,9,64,64\n" +
            "1,img/b.png,1,P2,,,M,center,,skipped,empty target mask,,,,,,,,0,0,0,64,64\n");
        var cell = Seg(id, 0) with { ResultFile = result };
        var (commands, writer) = Console240();
        var code = await commands.PrintDrillDownAsync(Aggregator(cell), "s", id, 20);
        var output = writer.ToString();
        Assert.Equal(0, code);
        Assert.Contains("per-sample records (2 of 2)", output);
        foreach (var column in new[] { "sample", "patient", "group", "prompt", "status", "dice", "iou", "hd95" }) Assert.Contains(column, output);
        Assert.Contains("0.8125", output);
        Assert.Contains("0.6842", output);
        Assert.Contains("center points 3:4", output);
        Assert.Contains("skipped: empty target mask", output);
        Assert.DoesNotContain("P(y=1)", output);
        Assert.DoesNotContain("NaN", output);
    }

    [Fact]
    public async Task The_drill_down_marks_an_estimate_outside_its_interval_with_the_note()
    {
        const string id = "f000000000000001";
        var cell = Cls(id, 0) with
        {
            Metrics = new Dictionary<string, MetricDto> { ["ece-gap"] = new(0.0032, null, 0.0041, 0.2178), ["overall-auc"] = new(0.7, null, 0.6, 0.8) },
        };
        var (commands, writer) = Console240();
        Assert.Equal(0, await commands.PrintDrillDownAsync(Aggregator(cell), "s", id, 5));
        var output = writer.ToString();
        Assert.Contains("0.0032 [0.0041, 0.2178] " + FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalMark, output);
        Assert.DoesNotContain("0.7000 [0.6000, 0.8000] " + FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalMark, output);
        Assert.Contains(FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalNote[..40], output);
        Assert.Equal(SweepCommands.ExitBadInput, await commands.PrintDrillDownAsync(Aggregator(cell), "s", id, -2));
    }

    [Fact]
    public async Task A_cluster_sweeps_cells_make_an_html_report()
    {
        using var tmp = new TempDir();
        var cells = ReportFixture.Cells();
        var done = cells.Where(c => c.Status == "done").Take(3).ToList();
        var summaries = new List<CellSummary>();
        foreach (var (c, i) in done.Select((c, i) => (c, i)))
        {
            string? file = null;
            if (i < 2) { file = tmp.File(c.CellId + ".json"); File.WriteAllText(file, System.Text.Json.JsonSerializer.Serialize(c, JsonDefaults.Pretty)); }
            summaries.Add(ExperimentGrain.ToSummary(c, file)); // the third cell's file is not readable: it comes from its summary
        }
        var ledger = done.Select(c => View(c.CellId, c.Spec.Label, "done"))
            .Append(View("f00000000000000f", "chest_a × fm-alpha × lp × erm × sex × seed 9", "failed")).ToList();
        var (results, summaryOnly) = await SweepCommands.FetchResultsAsync(Aggregator(summaries.ToArray()), ledger);
        Assert.Equal(4, results.Count);
        Assert.Equal(1, summaryOnly);
        Assert.Equal(done[0].Groups!.Count, results[0].Groups!.Count);
        Assert.Equal("failed", results[3].Status);
        Assert.Equal("boom", results[3].Error);
        var json = tmp.File("sweep-results.json");
        File.WriteAllText(json, System.Text.Json.JsonSerializer.Serialize(results, JsonDefaults.Pretty));
        var r = FairMedFM.Engine.Reports.HtmlReport.Write(new FairMedFM.Engine.Reports.ReportOptions { Results = json, Title = "sweep-x" });
        Assert.Equal(3, r.DoneCells);
        Assert.Equal(1, r.FailedCells);
        Assert.Contains("fairness report — sweep-x", File.ReadAllText(r.Html));
    }

    [Fact]
    public async Task A_results_export_given_to_report_says_what_was_expected_in_the_users_words()
    {
        using var tmp = new TempDir();
        var cell = Cls("a100000000000001", 0);
        var export = tmp.File("x.json");
        File.WriteAllText(export, SweepCommands.ResultsJson("sweep-d1", [View(cell.CellId, "nih × resnet18 × lp × erm × sex × seed 0", "done")],
            new Dictionary<string, CellSummary> { [cell.CellId] = cell }));
        var (code, output) = await CliRunner.Run("report", "--results", export);
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("sweep export of `fairmedfm results`", output);
        Assert.Contains("report --sweep sweep-d1", output);
        Assert.DoesNotContain("FairMedFM.Engine", output);

        File.WriteAllText(export, """[{"cell_id": "x", "spec": {"dataset": "d"}, "status": "done", "summary": {"auc": 3}}]""");
        (code, output) = await CliRunner.Run("report", "--results", export);
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("entry 1 is not a cell result as `fairmedfm run` writes them", output);
        Assert.DoesNotContain("FairMedFM.Engine", output);
        Assert.DoesNotContain("System.", output);
    }

    [Fact]
    public async Task Report_suggests_the_nearest_metric_and_needs_results_or_a_sweep()
    {
        using var tmp = new TempDir();
        var results = ReportFixture.Write(tmp.Sub("results"));
        var (code, output) = await CliRunner.Run("report", "--results", results, "--metrics", "overal-auc");
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("(did you mean overall-auc", System.Text.RegularExpressions.Regex.Replace(output, @"\s+", " "));
        (code, output) = await CliRunner.Run("report");
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("--sweep", output);
        (code, output) = await CliRunner.Run("report", "--sweep", "s1");
        Assert.Equal(SweepCommands.ExitUnreachable, code);
        Assert.Contains("needs a running cluster", output);
    }
}
