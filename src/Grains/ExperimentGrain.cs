using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;

namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.ExperimentState")]
public sealed class ExperimentState
{
    [Id(0)] public JobPhase Phase { get; set; } = JobPhase.Pending;
    [Id(1)] public string? Error { get; set; }
    [Id(2)] public string? ResultFile { get; set; }
    [Id(3)] public string? SpecJson { get; set; }
    [Id(4)] public string? AggregatorKey { get; set; }
}

public sealed class ExperimentGrain(
    [PersistentState("cell", FairMedFMSilo.StorageName)] IPersistentState<ExperimentState> state,
    CellRunner runner,
    TrainingSlots slots,
    ILocalSiloDetails silo,
    ComputationLog computations,
    SweepOptions options,
    Microsoft.Extensions.Logging.ILogger<ExperimentGrain> log) : Grain, IExperimentGrain
{
    private Task? _run;
    private CellExecution? _execution;
    private string? _final;

    private CellStatus Status() => new(this.GetPrimaryKeyString(), state.State.Phase, _final ?? _execution?.Stage ?? "pending",
        _execution?.Done ?? 0, _execution?.Total ?? 0, state.State.Error, state.State.ResultFile);

    public Task<CellStatus> GetStatus() => Task.FromResult(Status());

    public async Task<CellStatus> Start(CellRequest request)
    {
        // A finished cell is not short-circuited: its stages re-check the data and reuse the stored result unless the
        // dataset changed meanwhile (then the cell is recomputed on the new data instead of returning stale numbers).
        if (_run is { IsCompleted: false })
        {
            if (state.State.Phase == JobPhase.Running) return Status(); // still computing: starting again changes nothing
            // Finished, and only its bookkeeping (state write, aggregator report) is in flight: pollers already saw Done,
            // so a resubmission can arrive now. Let the bookkeeping end, then re-check the cell like any later start.
            try { await _run; } catch (Exception) { /* that run's own failure; this start checks the cell afresh */ }
        }

        CellSpec spec;
        try
        {
            spec = JsonSerializer.Deserialize<CellSpec>(request.SpecJson, JsonDefaults.Canonical)
                   ?? throw new ArgumentException("empty cell specification");
            if (spec.CellId != this.GetPrimaryKeyString() || request.CellId != spec.CellId)
                throw new ArgumentException($"cell id mismatch: grain {this.GetPrimaryKeyString()}, request {request.CellId}, specification hashes to {spec.CellId}");
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            state.State.Phase = JobPhase.Failed; state.State.Error = e.Message;
            await state.WriteStateAsync();
            return Status();
        }

        state.State.SpecJson = request.SpecJson;
        state.State.AggregatorKey = request.AggregatorKey;
        state.State.Phase = JobPhase.Running;
        state.State.Error = null;
        _final = null;
        await state.WriteStateAsync();
        _run = RunAsync(spec, request.AggregatorKey);
        return Status();
    }

    /// <summary>Runs in the grain's context between other calls; only CPU-heavy steps go to the thread pool.</summary>
    private async Task RunAsync(CellSpec spec, string aggregatorKey)
    {
        // Started inside the Start call, so the span joins the sweep's trace through Orleans' activity propagation.
        using var activity = Telemetry.StartCell("cell", spec);
        activity?.SetTag("fairmedfm.silo", silo.SiloAddress.ToString());
        activity?.SetTag("fairmedfm.device", slots.Device);
        CellResult result;
        Telemetry.CellsRunning.Add(1);
        try
        {
            result = await RunStagesAsync(spec);
        }
        catch (Exception e)
        {
            result = runner.Results.PutFailure(CellResult.Failed(spec, CellRunner.Describe(e), DateTimeOffset.UtcNow));
        }
        activity?.SetTag("fairmedfm.status", result.Status);
        // Written inside the cell's span: the log line carries the cell's trace id.
        if (result.Status == "done") Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(log, "cell {CellId} done: {Label}", result.CellId, spec.Label);
        else Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(log, "cell {CellId} failed: {Label}: {Error}", result.CellId, spec.Label, result.Error);
        if (result.Status != "done") activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, result.Error);
        Telemetry.CellsRunning.Add(-1);
        Telemetry.CellsFinished.Add(1, new KeyValuePair<string, object?>("state", result.Status));

        // The aggregator hears of the cell before pollers see it finished: a sweep that ends when its last cell reads Done
        // then prints a matrix that holds that cell (the other order let `run` print no table for its last cells).
        var resultFile = runner.Results.PathFor(result.CellId);
        Exception? reportFailure = null;
        try { await GrainFactory.GetGrain<IAggregatorGrain>(aggregatorKey).Report(ToSummary(result, resultFile)); }
        catch (Exception e) { reportFailure = e; }
        state.State.Phase = result.Status == "done" ? JobPhase.Done : JobPhase.Failed;
        state.State.Error = result.Error;
        state.State.ResultFile = resultFile;
        _final = result.Status;
        await state.WriteStateAsync();
        if (reportFailure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(reportFailure);
    }

    private async Task<CellResult> RunStagesAsync(CellSpec spec)
    {
        _execution = new CellExecution(GrainFactory, runner, slots, slots.Device,
            new CellRunContext($"experiment@{silo.SiloAddress.ToParsableString()}", computations, options.Retry.Lease, Logger: log));
        return await _execution.RunAsync(spec);
    }

    public static CellSummary ToSummary(CellResult r, string? resultFile) => new(
        r.CellId, r.DatasetName ?? Path.GetFileNameWithoutExtension(r.Spec.Dataset), r.Spec.Model, r.Spec.Usage, r.Spec.Method, r.Spec.Attribute, r.Spec.Seed,
        r.Status == "done" ? JobPhase.Done : JobPhase.Failed, r.Error,
        (r.Summary ?? new Dictionary<string, MetricEntry>()).ToDictionary(kv => kv.Key, kv => new MetricDto(kv.Value.Value, kv.Value.Undefined, kv.Value.Lower, kv.Value.Upper, kv.Value.NoIntervalOnePatient)),
        (r.Groups ?? Array.Empty<GroupResult>()).Select(g => new GroupSizeDto(g.Group, g.N, g.Positives, g.Negatives)).ToList(),
        resultFile, r.Spec.Dataset);
}
