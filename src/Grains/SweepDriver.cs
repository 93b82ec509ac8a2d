using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;

namespace FairMedFM.Grains;

/// <summary>Snapshot of a sweep for progress displays.</summary>
public sealed record SweepProgress(int Total, int Done, int Failed, int Running, IReadOnlyList<CellStatus> Cells);

public sealed record SweepOutcome(string AggregatorKey, IReadOnlyList<CellSpec> Specs, IReadOnlyList<CellResult> Results);

/// <summary>
/// Client side of a sweep: expands the grid, starts every cell on its experiment grain (idempotent), then observes the
/// cells until each is done or failed. Nothing here blocks a grain call: long work is started, then polled.
/// </summary>
public static class SweepDriver
{
    public static string AggregatorKeyFor(GridSpec grid) => grid.Name;

    public static async Task<SweepOutcome> RunAsync(IGrainFactory grains, GridSpec grid, IProgress<SweepProgress>? progress = null,
        TimeSpan? pollInterval = null, CancellationToken ct = default)
    {
        var specs = grid.Expand();
        var aggregator = AggregatorKeyFor(grid);
        // The root of the sweep's trace: every cell span joins it through the grain calls below.
        using var activity = FairMedFM.Engine.Telemetry.Source.StartActivity("sweep", System.Diagnostics.ActivityKind.Client);
        activity?.SetTag("fairmedfm.grid", grid.Name);
        activity?.SetTag("fairmedfm.cells", specs.Count);
        var poll = pollInterval ?? TimeSpan.FromMilliseconds(300);
        var statuses = new Dictionary<string, CellStatus>();
        foreach (var spec in specs.DistinctBy(s => s.CellId))
        {
            var request = new CellRequest(spec.CellId, JsonSerializer.Serialize(spec, JsonDefaults.Canonical), aggregator);
            statuses[spec.CellId] = await grains.GetGrain<IExperimentGrain>(spec.CellId).Start(request);
        }

        while (true)
        {
            ct.ThrowIfCancellationRequested();
            foreach (var id in statuses.Where(kv => !kv.Value.IsFinished).Select(kv => kv.Key).ToList())
                statuses[id] = await grains.GetGrain<IExperimentGrain>(id).GetStatus();
            var all = statuses.Values.ToList();
            progress?.Report(new SweepProgress(all.Count, all.Count(s => s.Phase == JobPhase.Done), all.Count(s => s.Phase == JobPhase.Failed),
                all.Count(s => !s.IsFinished), all));
            if (all.All(s => s.IsFinished)) break;
            await Task.Delay(poll, ct);
        }

        var results = new List<CellResult>();
        foreach (var spec in specs.DistinctBy(s => s.CellId))
        {
            var st = statuses[spec.CellId];
            CellResult? r = null;
            if (st.ResultFile is { } f && File.Exists(f))
                r = JsonSerializer.Deserialize<CellResult>(File.ReadAllText(f), JsonDefaults.Pretty);
            results.Add(r ?? CellResult.Failed(spec, st.Error ?? "the cell finished without a result file", DateTimeOffset.UtcNow));
        }
        return new SweepOutcome(aggregator, specs, results);
    }
}
