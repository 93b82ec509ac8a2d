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
}
