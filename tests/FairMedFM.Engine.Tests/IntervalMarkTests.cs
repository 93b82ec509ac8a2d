using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;
using Xunit;

namespace FairMedFM.Engine.Tests;

/// <summary>An estimate outside its own percentile interval (the upward bias of a bootstrapped max − min gap) is flagged
/// in every table that prints intervals, and the summary explains the flag.</summary>
public sealed class IntervalMarkTests
{
    private static MatrixCell Cell(double mean, double lo, double hi) =>
        new("d", "m", mean, null, 1, 0, [], [], lo, hi);

    [Fact]
    public void An_estimate_outside_its_interval_is_marked_and_one_inside_or_on_a_bound_is_not()
    {
        Assert.Equal("0.014 [0.032, 0.654] †", Cell(0.014, 0.032, 0.654).Format());
        Assert.EndsWith("†", Cell(0.70, 0.032, 0.654).Format());
        Assert.Equal("0.100 [0.032, 0.654]", Cell(0.1, 0.032, 0.654).Format());
        Assert.Equal("0.032 [0.032, 0.654]", Cell(0.032, 0.032, 0.654).Format());
        Assert.Equal("0.100", (Cell(0.1, 0, 0) with { Lower = null, Upper = null }).Format());
    }

    [Fact]
    public void The_summary_explains_the_mark_only_when_a_value_carries_it()
    {
        static CellResult Result(string attribute, double value, double lo, double hi)
        {
            var spec = new CellSpec { Dataset = "/x/card.yaml", Model = "m", Usage = "lp", Method = "erm", Attribute = attribute, Seed = 0 };
            return new CellResult
            {
                CellId = spec.CellId, Spec = spec, Status = "done", DatasetName = "d",
                Summary = new Dictionary<string, MetricEntry> { ["auc-gap"] = new(value, Lower: lo, Upper: hi), ["overall-auc"] = new(0.6, Lower: 0.5, Upper: 0.7) },
                Intervals = new IntervalInfo(200, "percentile", 0.95, 1, true, 10),
            };
        }
        var outside = ResultWriter.Markdown("g", [Result("sex", 0.014, 0.032, 0.654)]);
        Assert.Contains("0.014 [0.032, 0.654] †", outside);
        Assert.Contains(MatrixCell.OutsideIntervalNote, outside);
        var inside = ResultWriter.Markdown("g", [Result("sex", 0.1, 0.032, 0.654)]);
        Assert.DoesNotContain("†", inside);
    }
}

/// <summary>A metric whose interval the bootstrap could not give (one patient in a group) says so in the tables.</summary>
public sealed class NoIntervalTests
{
    [Fact]
    public void The_matrix_says_why_an_estimate_has_no_interval()
    {
        var v = Metrics.MetricValue.Of(0.96);
        var ci = Metrics.ConfidenceInterval.Undefined(Metrics.UndefinedReason.TooFewUnits, 0.95, Metrics.CiMethod.Percentile, 100, 100, "every resample gives the same value");
        var entry = CellRunner.ToEntry(v, ci);
        Assert.Null(entry.Lower);
        Assert.StartsWith("no interval (TooFewUnits)", entry.Detail);
        var input = new MatrixInput("d", "m", "seg-bbox", "erm", "sex", 0, new Dictionary<string, MetricEntry> { ["mean_dice"] = entry }, []);
        var cell = FairnessMatrix.Build([input], "seg-bbox", "erm", "sex", "mean_dice").Cells[("d", "m")];
        Assert.Equal("0.960 [no interval: 1 patient]", cell.Format());
    }
}
