using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Scheduling;
using Microsoft.Extensions.Logging;

namespace FairMedFM.Grains;

/// <summary>
/// One training slot (key <c>silo|device|index</c>), activated on the silo that owns it by <see cref="DeviceSlotPlacementDirector"/>.
/// Runs at most one cell at a time through <see cref="CellExecution"/> on its device, writes the result to the shared result
/// store, reports it to the sweep's aggregator, and answers polls. It keeps no durable state: if its silo dies, the sweep's
/// lease on the cell runs out and the cell is dispatched again.
/// </summary>
[DeviceSlotPlacement]
public sealed class DeviceWorkerGrain(CellRunner runner, TrainingSlots slots, ILocalSiloDetails silo, ComputationLog computations, SweepOptions options,
    Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime, ILogger<DeviceWorkerGrain> log)
    : Grain, IDeviceWorkerGrain
{
    private const int KeepFinished = 512;

    private sealed class Job(WorkerAssignment a)
    {
        public readonly WorkerAssignment Assignment = a;
        public CellExecution? Execution;
        public Task? Run;
        public WorkerCellStatus? Final;
    }

    private Job? _current;
    private readonly Dictionary<string, WorkerCellStatus> _finished = new(StringComparer.Ordinal);
    private readonly Queue<string> _finishedOrder = new();

    public Task<WorkerAccept> Run(WorkerAssignment a)
    {
        var slot = SlotRef.Parse(this.GetPrimaryKeyString());
        if (slot.Silo != silo.SiloAddress.ToParsableString())
            return Task.FromResult(new WorkerAccept(WorkerReply.Refused, $"slot {slot.Key} belongs to silo {slot.Silo}, not {silo.SiloAddress.ToParsableString()}"));
        if (!slots.Has(slot.Device) || slot.Index >= slots.Devices.First(d => d.Device == slot.Device).Slots)
            return Task.FromResult(new WorkerAccept(WorkerReply.Refused, $"slot {slot.Key} is not declared on this silo (devices: {string.Join(", ", slots.Devices.Select(d => $"{d.Device}={d.Slots}"))})"));
        // A silo that is stopping takes no new cell: the sweep places it on a silo that stays (else the work would be cut off
        // at exit, or — when every silo stops at once — the sweep would run on through the shutdown).
        if (lifetime.ApplicationStopping.IsCancellationRequested)
            return Task.FromResult(new WorkerAccept(WorkerReply.Refused, $"silo {silo.SiloAddress.ToParsableString()} is shutting down"));
        if (_current is { Final: null } running)
        {
            // The same sweep asking again (a repeated dispatch): it is this job. Another sweep with the same cell gets "busy" and
            // runs it on another slot, where the cell's claim makes it wait and reuse this result — and report it to its own
            // aggregator, which piggybacking on this job would never do.
            if (running.Assignment.CellId == a.CellId && running.Assignment.SweepId == a.SweepId)
                return Task.FromResult(new WorkerAccept(WorkerReply.Accepted, "already running here"));
            return Task.FromResult(new WorkerAccept(WorkerReply.Busy, $"runs cell {running.Assignment.CellId} of sweep {running.Assignment.SweepId}"));
        }
        _finished.Remove(Key(a.SweepId, a.CellId));
        var job = new Job(a);
        _current = job;
        job.Run = ExecuteAsync(job, slot.Device);
        return Task.FromResult(new WorkerAccept(WorkerReply.Accepted, null));
    }

    public Task<WorkerCellStatus> Poll(string sweepId, string cellId)
    {
        if (_current is { } j && j.Assignment.CellId == cellId && j.Assignment.SweepId == sweepId)
            return Task.FromResult(j.Final ?? new WorkerCellStatus(WorkerCellPhase.Running, j.Execution?.Stage ?? "starting", null, false, null, j.Assignment.Attempt));
        return Task.FromResult(_finished.TryGetValue(Key(sweepId, cellId), out var f) ? f : new WorkerCellStatus(WorkerCellPhase.Unknown, null, null, true, null, 0));
    }

    /// <summary>Finished jobs are kept per sweep and cell: another sweep's run of the same cell is not this sweep's answer.</summary>
    private static string Key(string sweepId, string cellId) => sweepId + "\n" + cellId;

    /// <summary>Runs in the grain's context between calls; CPU-heavy steps go to the thread pool inside <see cref="CellExecution"/>.</summary>
    private async Task ExecuteAsync(Job job, string device)
    {
        var a = job.Assignment;
        WorkerCellStatus final;
        CellSpec? spec = null;
        using var activity = Telemetry.Source.StartActivity("cell");
        activity?.SetTag("fairmedfm.cell_id", a.CellId);
        activity?.SetTag("fairmedfm.sweep", a.SweepId);
        activity?.SetTag("fairmedfm.silo", silo.SiloAddress.ToString());
        activity?.SetTag("fairmedfm.device", device);
        activity?.SetTag("fairmedfm.attempt", a.Attempt);
        Telemetry.CellsRunning.Add(1);
        try
        {
            spec = JsonSerializer.Deserialize<CellSpec>(a.SpecJson, JsonDefaults.Canonical) ?? throw new ArgumentException("empty cell specification");
            if (spec.CellId != a.CellId) throw new ArgumentException($"cell id mismatch: assignment {a.CellId}, specification hashes to {spec.CellId}");
            job.Execution = new CellExecution(GrainFactory, runner, slots, device,
                new CellRunContext($"{this.GetPrimaryKeyString()}|{a.SweepId}|attempt {a.Attempt}", computations, options.Retry.Lease, a.SweepId, a.Attempt, log));
            var result = await job.Execution.RunAsync(spec);
            string? undefined = null;
            // The headline utility metric of the cell's task: AUC (classification) or mean Dice (segmentation).
            var headline = result.Segmentation is null ? "overall-auc" : "mean_dice";
            if (result.Status == "done" && result.Summary?.GetValueOrDefault(headline) is { Value: null } auc)
                undefined = $"{headline} undefined ({auc.Undefined})";
            final = result.Status == "done"
                ? new WorkerCellStatus(WorkerCellPhase.Done, "done", null, false, undefined, a.Attempt)
                : new WorkerCellStatus(WorkerCellPhase.Failed, "failed", result.Error, result.Retryable, null, a.Attempt);
            try
            {
                await GrainFactory.GetGrain<IAggregatorGrain>(a.AggregatorKey).Report(ExperimentGrain.ToSummary(result, runner.Results.PathFor(result.CellId)));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The result is on disk; a lost report is retried by running the cell again (it is then reused, not recomputed).
                final = new WorkerCellStatus(WorkerCellPhase.Failed, "failed", $"the result could not be reported to the aggregator: {e.Message}", true, null, a.Attempt);
            }
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            final = new WorkerCellStatus(WorkerCellPhase.Failed, "failed", e.Message, false, null, a.Attempt);
        }
        catch (Exception e)
        {
            // A grain call that failed (silo lost, timeout) or an unexpected crash: another attempt may succeed.
            final = new WorkerCellStatus(WorkerCellPhase.Failed, "failed", CellRunner.Describe(e), true, null, a.Attempt);
        }
        Telemetry.CellsRunning.Add(-1);
        Telemetry.CellsFinished.Add(1, new KeyValuePair<string, object?>("state", final.Phase == WorkerCellPhase.Done ? "done" : "failed"));
        activity?.SetTag("fairmedfm.status", final.Phase.ToString().ToLowerInvariant());
        if (final.Phase == WorkerCellPhase.Done) log.LogInformation("cell {CellId} of sweep {Sweep} done on {Device}: {Label}", a.CellId, a.SweepId, device, spec?.Label);
        else log.LogWarning("cell {CellId} of sweep {Sweep} failed on {Device} (retryable: {Retryable}): {Error}", a.CellId, a.SweepId, device, final.Retryable, final.Error);
        job.Final = final;
        _finished[Key(a.SweepId, a.CellId)] = final;
        _finishedOrder.Enqueue(Key(a.SweepId, a.CellId));
        while (_finishedOrder.Count > KeepFinished) _finished.Remove(_finishedOrder.Dequeue());
    }
}
