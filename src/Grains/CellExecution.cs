using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using Microsoft.Extensions.Logging;

namespace FairMedFM.Grains;

/// <summary>
/// Who runs a cell and how that is recorded: <paramref name="Owner"/> names the runner in the cell's claim (slot key, sweep and
/// attempt for a device worker), <paramref name="Log"/> receives a record of each training that ran, <paramref name="ClaimLease"/>
/// is how long the claim outlives a runner that stopped renewing it (a dead silo).
/// </summary>
public sealed record CellRunContext(string Owner, ComputationLog? Log, TimeSpan ClaimLease, string? Sweep = null, int? Attempt = null, ILogger? Logger = null);

/// <summary>
/// The stages of one cell as grains run it — dataset (grain), stored result reuse, the cell's claim (<see cref="ICellClaimGrain"/>:
/// one computation of a cell at a time cluster-wide, whichever sweep asked), validation, embeddings (model-usage grain, once per
/// image cluster-wide), then training in a slot of <paramref name="device"/> — shared by the experiment grain and the device
/// workers. Heavy work goes to the thread pool; the rest runs on the calling grain's scheduler.
/// </summary>
public sealed class CellExecution(IGrainFactory grains, CellRunner runner, TrainingSlots slots, string device, CellRunContext? context = null)
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ClaimPoll = TimeSpan.FromMilliseconds(500);
    private readonly CellRunContext _ctx = context ?? new CellRunContext("cell-execution", null, TimeSpan.FromSeconds(60));

    public string Stage { get; private set; } = "pending";
    public int Done { get; private set; }
    public int Total { get; private set; }

    public async Task<CellResult> RunAsync(CellSpec spec)
    {
        var started = DateTimeOffset.UtcNow;
        Stage = "dataset";
        var dataset = grains.GetGrain<IDatasetGrain>(spec.Dataset);
        DatasetStatus ds;
        using (var span = Telemetry.Source.StartActivity("dataset"))
        {
            while (true)
            {
                ds = await dataset.Prepare();
                if (ds.Phase is JobPhase.Done or JobPhase.Failed) break;
                await Task.Delay(Poll);
            }
            span?.SetTag("fairmedfm.data_hash", ds.DataHash);
        }
        if (ds.Phase == JobPhase.Failed) return Fail(spec, ds.Error ?? "dataset failed to load", started);

        // Idempotent and resumable: a cell finished earlier on the same data is not recomputed.
        var stored = await Task.Run(() => runner.TryReuse(spec, ds.DataHash!));
        if (stored is not null) return stored;

        // One computation of this cell at a time, cluster-wide: wait while another runner holds its claim, then reuse its result.
        var claim = grains.GetGrain<ICellClaimGrain>(spec.CellId);
        var holder = $"{_ctx.Owner}#{Guid.NewGuid():N}";
        while (true)
        {
            var r = await claim.Acquire(holder, _ctx.ClaimLease);
            if (r.Granted) break;
            Stage = $"waiting: {r.Holder} computes this cell";
            await Task.Delay(ClaimPoll);
            if (await Task.Run(() => runner.TryReuse(spec, ds.DataHash!)) is { } reused) return reused;
        }
        using var lost = new CancellationTokenSource();
        using var stop = new CancellationTokenSource();
        var renewing = RenewAsync(claim, holder, lost, stop.Token);
        try
        {
            // The previous holder may have finished between the check above and the grant.
            if (await Task.Run(() => runner.TryReuse(spec, ds.DataHash!)) is { } reused) return reused;
            return await ComputeAsync(spec, started, lost.Token);
        }
        catch (OperationCanceledException) when (lost.IsCancellationRequested)
        {
            // Not stored: the runner that took the claim over writes this cell's result, which must not be overwritten.
            return CellResult.Failed(spec, $"the claim on cell {spec.CellId} was lost (not renewed within {_ctx.ClaimLease.TotalSeconds:0.#} s) and another runner took it over; this computation was stopped", started)
                with { Retryable = true };
        }
        finally
        {
            stop.Cancel();
            await renewing;
            try { await claim.Release(holder); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _ctx.Logger?.LogWarning("cell {Cell}: its claim could not be released ({Error}); it expires in {Lease}", spec.CellId, e.Message, _ctx.ClaimLease);
            }
        }
    }

    private async Task<CellResult> ComputeAsync(CellSpec spec, DateTimeOffset started, CancellationToken ct)
    {
        try { runner.ValidateCell(spec); }
        catch (Exception e) { return Fail(spec, CellRunner.Describe(e), started); }

        // Usages that train inside the backbone (lora) read images, not the embedding cache.
        EmbeddingStatus? es = null;
        bool cacheHit = false;
        if (runner.NeedsEmbeddings(spec))
        {
            Stage = "embeddings";
            var usage = grains.GetGrain<IModelUsageGrain>(GrainKeys.ModelUsage(spec.Dataset, spec.Model, spec.Normalization));
            using (var span = Telemetry.Source.StartActivity("embedding"))
            {
                bool waited = false;
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    es = await usage.EnsureEmbeddings();
                    Done = es.Done; Total = es.Total;
                    if (es.Phase is JobPhase.Done or JobPhase.Failed) break;
                    waited = true;
                    await Task.Delay(Poll, ct);
                }
                // A hit: the backbone did not run for this request (the entry was on disk, or computed for another cell).
                cacheHit = es.CacheHit || !waited;
                span?.SetTag("fairmedfm.cache_hit", cacheHit);
                span?.SetTag("fairmedfm.embedding_key", es.EmbeddingKey);
            }
            if (es.Phase == JobPhase.Failed) return Fail(spec, es.Error ?? "embedding failed", started);
        }

        Stage = "queued";
        var tag = new KeyValuePair<string, object?>("device", device);
        Telemetry.CellsQueued.Add(1);
        try { await slots.WaitAsync(device, ct); }
        finally { Telemetry.CellsQueued.Add(-1); }
        Telemetry.SlotsBusy.Add(1, tag);
        try
        {
            Stage = "training";
            var trainStart = DateTimeOffset.UtcNow;
            // A "started" line first: a training that never ends (its silo was killed) still shows where and when it began.
            Record(spec, trainStart, ComputationRecord.Started, null);
            CellResult result;
            try
            {
                result = await Task.Run(() => runner.RunPrepared(spec, es?.EmbeddingKey, cacheHit, ct));
            }
            catch (Exception e)
            {
                Record(spec, trainStart, e is OperationCanceledException ? "cancelled" : "failed", CellRunner.Describe(e));
                throw;
            }
            // Written while the slot is still held: the record's interval is inside the device slot's use.
            Record(spec, trainStart, result.Status, result.Error);
            return result;
        }
        finally { slots.Release(device); Telemetry.SlotsBusy.Add(-1, tag); }
    }

    /// <summary>Renews the claim every third of its lease; cancels <paramref name="lost"/> when it was taken over or could not be
    /// renewed for a whole lease (then another runner may hold it).</summary>
    private async Task RenewAsync(ICellClaimGrain claim, string holder, CancellationTokenSource lost, CancellationToken stop)
    {
        var lease = _ctx.ClaimLease;
        var every = lease / 3;
        var lastOk = DateTimeOffset.UtcNow;
        while (!stop.IsCancellationRequested)
        {
            try { await Task.Delay(every, stop); }
            catch (OperationCanceledException) { return; }
            try
            {
                if (await claim.Renew(holder, lease).WaitAsync(lease, stop)) { lastOk = DateTimeOffset.UtcNow; continue; }
                _ctx.Logger?.LogWarning("claim {Holder} was taken over: stopping its computation", holder);
                lost.Cancel();
                return;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (DateTimeOffset.UtcNow - lastOk < lease) continue; // transient (a silo or Redis restarting): the lease still holds
                _ctx.Logger?.LogWarning("claim {Holder} could not be renewed for {Lease} ({Error}): stopping its computation", holder, lease, e.Message);
                lost.Cancel();
                return;
            }
        }
    }

    private void Record(CellSpec spec, DateTimeOffset startedUtc, string status, string? error)
    {
        if (_ctx.Log is null) return;
        try
        {
            _ctx.Log.Append(new ComputationRecord
            {
                Kind = ComputationRecord.Training, Key = spec.CellId, CellId = spec.CellId, Sweep = _ctx.Sweep, Attempt = _ctx.Attempt,
                Dataset = spec.Dataset, Model = spec.Model, Origin = _ctx.Log.Origin, Device = device, Status = status, Error = error,
                StartedUtc = startedUtc, FinishedUtc = status == ComputationRecord.Started ? null : DateTimeOffset.UtcNow,
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _ctx.Logger?.LogWarning("cell {Cell}: the computation record could not be written to {Log}: {Error}", spec.CellId, _ctx.Log.FilePath, e.Message);
        }
    }

    private CellResult Fail(CellSpec spec, string error, DateTimeOffset started) => runner.Results.PutFailure(CellResult.Failed(spec, error, started));
}
