using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.AggregatorState")]
public sealed class AggregatorState
{
    [Id(0)] public Dictionary<string, CellSummary> Cells { get; set; } = new();
}

public sealed class AggregatorGrain(
    [PersistentState("matrix", FairMedFMSilo.StorageName)] IPersistentState<AggregatorState> state) : Grain, IAggregatorGrain
{
    public async Task Report(CellSummary cell)
    {
        using var activity = FairMedFM.Engine.Telemetry.Source.StartActivity("aggregation");
        activity?.SetTag("fairmedfm.cell_id", cell.CellId);
        activity?.SetTag("fairmedfm.aggregator", this.GetPrimaryKeyString());
        state.State.Cells[cell.CellId] = cell; // a re-reported cell replaces itself: reports are idempotent
        await state.WriteStateAsync();
    }

    public Task<IReadOnlyList<CellSummary>> GetCells() =>
        Task.FromResult<IReadOnlyList<CellSummary>>(state.State.Cells.Values.OrderBy(c => c.CellId, StringComparer.Ordinal).ToList());

    public Task<MatrixView> GetMatrix(string usage, string method, string attribute, string metric)
    {
        var inputs = state.State.Cells.Values.Where(c => c.Phase == JobPhase.Done).Select(c => new MatrixInput(c.Dataset, c.Model, c.Usage, c.Method, c.Attribute, c.Seed,
            c.Metrics.ToDictionary(kv => kv.Key, kv => new MetricEntry(kv.Value.Value, kv.Value.Undefined, Lower: kv.Value.Lower, Upper: kv.Value.Upper)),
            c.Groups.Select(g => new GroupSize(g.Group, g.N, g.Positives, g.Negatives)).ToList()));
        var slice = FairnessMatrix.Build(inputs, usage, method, attribute, metric);
        var cells = slice.Cells.Values.Select(c => new MatrixCellDto(c.Dataset, c.Model, c.Mean, c.Std, c.Seeds, c.UndefinedSeeds, c.UndefinedReasons,
            c.GroupSizes.Select(g => new GroupSizeDto(g.Group, g.N, g.Positives, g.Negatives)).ToList(), c.Format())).ToList();
        return Task.FromResult(new MatrixView(usage, method, attribute, metric, slice.Datasets, slice.Models, cells));
    }
}
