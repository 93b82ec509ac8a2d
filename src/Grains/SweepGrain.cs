using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Scheduling;
using Microsoft.Extensions.Logging;

namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.SweepGrainState")]
public sealed class SweepGrainState
{
    [Id(0)] public string? GridName { get; set; }
    [Id(1)] public DateTimeOffset CreatedUtc { get; set; }
    [Id(2)] public DateTimeOffset UpdatedUtc { get; set; }
    /// <summary>The ledger as JSON (<see cref="LedgerSnapshot"/>): cell states, attempts, leases, reasons, parallelism.</summary>
    [Id(3)] public string? Ledger { get; set; }
}

/// <summary>Cell specifications by id: written only when cells are added, so the frequent ledger writes stay small.</summary>
[GenerateSerializer, Alias("fairmedfm.SweepSpecsState")]
public sealed class SweepSpecsState
{
    [Id(0)] public Dictionary<string, string> Specs { get; set; } = new();
}

/// <summary>
/// A sweep as a durable ledger (<see cref="SweepLedger"/>, persisted in grain storage: Redis in a cluster). While cells are
/// pending or running, a grain timer pumps it: refresh the silos' devices (registry ∩ live membership), poll running cells
/// (renewing their leases), requeue cells whose worker or silo is gone, then dispatch due cells to free device slots. A
/// reminder (and every silo's start-up hook) re-activates it after restarts. The science stays in the engine; the
/// scheduling decisions stay in <see cref="SweepLedger"/> and <see cref="SlotScheduler"/>.
/// </summary>
public sealed class SweepGrain(
    [PersistentState("sweep", FairMedFMSilo.StorageName)] IPersistentState<SweepGrainState> state,
    [PersistentState("specs", FairMedFMSilo.StorageName)] IPersistentState<SweepSpecsState> specs,
    IClusterMembershipService membership,
    SweepOptions options,
    ILogger<SweepGrain> log) : Grain, ISweepGrain, IRemindable
{
    private const string ReminderName = "pump";
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PersistEvery = TimeSpan.FromSeconds(5);

    private SweepLedger _ledger = null!;
    private readonly SlotScheduler _pool = new();
    private readonly HashSet<string> _externalHolds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _stages = new(StringComparer.Ordinal);
    private List<string> _warnings = new();
    private IGrainTimer? _timer;
    private bool _reminder;
    private bool _restoredSlots;
    private LedgerCounts? _persistedCounts;
    private DateTimeOffset _persistedAt;
    private int? _persistedParallelism;

    private string SweepId => this.GetPrimaryKeyString();
    private bool Exists => state.State.GridName is not null;

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        _ledger = state.State.Ledger is { } json
            ? SweepLedger.Restore(JsonSerializer.Deserialize<LedgerSnapshot>(json, JsonDefaults.Canonical)
                                  ?? throw new InvalidDataException($"sweep {SweepId}: stored ledger is empty"))
            : new SweepLedger(options.Retry);
        _persistedCounts = _ledger.Counts(DateTimeOffset.UtcNow);
        _persistedParallelism = _ledger.Parallelism;
        if (Exists && !_ledger.Counts(DateTimeOffset.UtcNow).IsSettled)
        {
            log.LogInformation("sweep {Sweep} resumes: {Counts}", SweepId, _ledger.Counts(DateTimeOffset.UtcNow));
            await EnsurePumping();
        }
        await base.OnActivateAsync(ct);
    }

    public async Task<SweepSubmitResult> Submit(SweepSubmission submission)
    {
        if (submission.SweepId != SweepId) throw new ArgumentException($"submission for sweep '{submission.SweepId}' sent to sweep '{SweepId}'");
        if (string.IsNullOrWhiteSpace(submission.GridName)) throw new ArgumentException("a submission needs the grid's name");
        // Check everything before changing anything: a bad cell rejects the whole submission.
        var fresh = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in submission.Cells)
        {
            DeviceNames.ValidateRequirement(c.Requirement);
            if (specs.State.Specs.ContainsKey(c.CellId) || fresh.ContainsKey(c.CellId)) continue;
            CellSpec spec;
            try { spec = JsonSerializer.Deserialize<CellSpec>(c.SpecJson, JsonDefaults.Canonical) ?? throw new JsonException("empty"); }
            catch (JsonException e) { throw new ArgumentException($"cell {c.CellId}: the specification is not valid JSON ({e.Message})"); }
            if (spec.CellId != c.CellId) throw new ArgumentException($"cell id mismatch: submitted {c.CellId}, specification hashes to {spec.CellId}");
            fresh[c.CellId] = c.SpecJson;
        }
        if (submission.Parallelism is < 0) throw new ArgumentException($"parallelism must be ≥ 0 (got {submission.Parallelism})");

        var now = DateTimeOffset.UtcNow;
        if (fresh.Count > 0)
        {
            foreach (var (id, json) in fresh) specs.State.Specs[id] = json;
            await specs.WriteStateAsync();
        }
        var outcome = _ledger.Submit(submission.Cells.Select(c => new CellSubmission(c.CellId, c.Label, c.Requirement)));
        if (submission.Parallelism is { } p) _ledger.SetParallelism(p);
        if (state.State.GridName is null) state.State.CreatedUtc = now;
        state.State.GridName = submission.GridName;
        await Persist(force: true);
        log.LogInformation("sweep {Sweep} ({Grid}): {Added} cell(s) added, {Known} already known, {Revived} revived", SweepId, submission.GridName,
            outcome.Added, outcome.AlreadyKnown, outcome.Revived);
        await EnsurePumping();
        return new SweepSubmitResult(SweepId, outcome.Added, outcome.AlreadyKnown, outcome.Revived, _ledger.Count);
    }

    public Task<SweepStatus> GetStatus()
    {
        var now = DateTimeOffset.UtcNow;
        var c = _ledger.Counts(now);
        var mine = _ledger.Running.Where(r => r.Worker is not null).Select(r => SlotRef.Parse(r.Worker!)).ToList();
        var devices = _pool.Usage().Select(u => new DeviceLoad(u.Silo, u.Device, u.Slots, u.Busy,
            mine.Count(m => m.Silo == u.Silo && m.Device == u.Device))).ToList();
        return Task.FromResult(new SweepStatus(SweepId, state.State.GridName ?? "", Exists, c.Total, c.Pending, c.Running, c.Done, c.Failed, c.Undefined,
            c.Cancelled, c.BackingOff, c.LostLeases, _ledger.Parallelism, devices, _warnings, state.State.CreatedUtc, state.State.UpdatedUtc));
    }

    public Task<IReadOnlyList<SweepCellView>> GetCells() =>
        Task.FromResult<IReadOnlyList<SweepCellView>>(_ledger.Cells.Select(c =>
        {
            SlotRef? slot = c.Worker is { } w ? SlotRef.Parse(w) : null;
            return new SweepCellView(c.Id, c.Label, c.State.ToString().ToLowerInvariant(), c.Attempts, slot?.Silo, slot?.Device, c.Reason, c.Errors,
                c.State == CellState.Running ? _stages.GetValueOrDefault(c.Id, "dispatched") : null, c.Requirement, c.NotBefore);
        }).ToList());

    public async Task<int> Cancel()
    {
        var now = DateTimeOffset.UtcNow;
        var before = _ledger.Counts(now);
        foreach (var id in _ledger.Cancel(now)) _pool.Release(id);
        await Persist(force: true);
        await StopPumpingIfSettled();
        return before.Pending + before.Running;
    }

    public async Task<int> RerunFailed()
    {
        var n = _ledger.RerunFailed();
        await Persist(force: true);
        if (n > 0) await EnsurePumping();
        return n;
    }

    public async Task SetParallelism(int? parallelism)
    {
        _ledger.SetParallelism(parallelism);
        await Persist(force: true);
    }

    public async Task Wake()
    {
        if (Exists && !_ledger.Counts(DateTimeOffset.UtcNow).IsSettled) await EnsurePumping();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (Exists && !_ledger.Counts(DateTimeOffset.UtcNow).IsSettled) await EnsurePumping();
        else await StopPumpingIfSettled();
    }

    // ---- the pump ----

    private async Task EnsurePumping()
    {
        _timer ??= this.RegisterGrainTimer(Pump, new GrainTimerCreationOptions(TimeSpan.FromMilliseconds(50), options.Tick) { Interleave = false, KeepAlive = true });
        if (!_reminder)
        {
            try { await this.RegisterOrUpdateReminder(ReminderName, options.Reminder, options.Reminder); _reminder = true; }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Without a reminder service the silos' start-up hook still wakes the sweep after restarts.
                log.LogWarning("sweep {Sweep}: no reminder registered ({Error}); resumption after a full restart relies on the silos' start-up hook", SweepId, e.Message);
                _reminder = true;
            }
        }
    }

    private async Task StopPumpingIfSettled()
    {
        if (!_ledger.Counts(DateTimeOffset.UtcNow).IsSettled) return;
        _timer?.Dispose();
        _timer = null;
        try
        {
            if (await this.GetReminder(ReminderName) is { } r) await this.UnregisterReminder(r);
        }
        catch (Exception e) when (e is not OutOfMemoryException) { log.LogDebug("sweep {Sweep}: reminder not removed: {Error}", SweepId, e.Message); }
        _reminder = false;
    }

    private async Task Pump(CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        await RefreshDevices(now);
        await PollRunning();
        now = DateTimeOffset.UtcNow;
        foreach (var lost in _ledger.ExpireLeases(now))
        {
            _pool.Release(lost.Id);
            log.LogWarning("sweep {Sweep}: cell {Cell} lost its lease on {Worker}; requeued", SweepId, lost.Id, lost.Worker);
        }
        await DispatchDue(now);
        await Persist(force: false);
        await StopPumpingIfSettled();
    }

    /// <summary>Rebuilds the slot view from the registry, keeping only live members; cells on silos that left are requeued.</summary>
    private async Task RefreshDevices(DateTimeOffset now)
    {
        IReadOnlyList<SiloDevices> silos;
        try { silos = await GrainFactory.GetGrain<IDeviceRegistryGrain>("cluster").GetSilos().WaitAsync(CallTimeout); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogWarning("sweep {Sweep}: device registry unreachable: {Error}", SweepId, e.Message);
            return;
        }
        var live = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).ToHashSet();
        var offered = silos.Where(s => live.Contains(s.Silo)).ToList();
        foreach (var h in _externalHolds) _pool.Release(h);
        _externalHolds.Clear();
        foreach (var s in offered) _pool.SetSilo(s.Silo, s.Devices.Select(d => new DeviceSlots(d.Device, d.Slots)));
        foreach (var gone in _pool.Silos.Where(s => offered.All(o => o.Silo != s)).ToList())
        {
            // A silo in the registry but not alive (dead, evicted) or shut down: its slots are gone and its cells requeued.
            if (live.Contains(gone)) continue; // alive but not (yet) re-announced: keep it
            foreach (var (holder, slot) in _pool.RemoveSilo(gone))
            {
                var lost = _ledger.WorkerLost(slot.Key, now, $"silo {gone} left the cluster");
                foreach (var c in lost) log.LogWarning("sweep {Sweep}: cell {Cell} requeued, silo {Silo} left the cluster", SweepId, c.Id, gone);
            }
        }
        // After (re)activation: the running cells of the stored ledger hold their slots again, or are requeued if their silo is gone.
        foreach (var c in _ledger.Running.ToList())
        {
            if (_pool.SlotOf(c.Id) is not null || c.Worker is null) continue;
            var slot = SlotRef.Parse(c.Worker);
            if (_pool.TryHold(slot, c.Id)) continue;
            if (!live.Contains(slot.Silo)) _ledger.WorkerLost(c.Worker, now, $"silo {slot.Silo} is no longer in the cluster");
        }
        _restoredSlots = true;
        var warnings = new List<string>();
        foreach (var g in _ledger.InState(CellState.Pending).GroupBy(c => c.Requirement))
            if (!_pool.Offers(g.Key)) warnings.Add($"{g.Count()} cell(s) need device '{g.Key}', which no live silo offers: they wait until one joins");
        if (offered.Count == 0) warnings.Add("no silo has announced its devices yet");
        _warnings = warnings;
    }

    private async Task PollRunning()
    {
        var running = _ledger.Running.ToList();
        if (running.Count == 0) return;
        var polls = running.Select(async c =>
        {
            try { return (c, (WorkerCellStatus?)await GrainFactory.GetGrain<IDeviceWorkerGrain>(c.Worker!).Poll(SweepId, c.Id).WaitAsync(CallTimeout)); }
            catch (Exception e) when (e is not OutOfMemoryException) { return (c, (WorkerCellStatus?)null); } // unreachable now: the lease decides
        }).ToList();
        var now = DateTimeOffset.UtcNow;
        foreach (var (c, s) in await Task.WhenAll(polls))
        {
            if (s is null) continue;
            switch (s.Phase)
            {
                case WorkerCellPhase.Running:
                    _ledger.Renew(c.Id, c.Worker!, now);
                    _stages[c.Id] = s.Stage ?? "running";
                    break;
                case WorkerCellPhase.Done:
                    if (s.Undefined is { } why) _ledger.MarkUndefined(c.Id, now, why);
                    else _ledger.MarkDone(c.Id, now);
                    Finished(c.Id);
                    break;
                case WorkerCellPhase.Failed:
                    var outcome = _ledger.MarkFailed(c.Id, c.Worker!, now, s.Error ?? "failed without a reason", permanent: !s.Retryable);
                    if (outcome == ReportOutcome.Requeued)
                        log.LogWarning("sweep {Sweep}: cell {Cell} failed (attempt {Attempt}), retried after backoff: {Error}", SweepId, c.Id, c.Attempts, s.Error);
                    Finished(c.Id);
                    break;
                case WorkerCellPhase.Unknown:
                    // The worker does not know the cell: its activation was lost (silo restarted, worker collected).
                    _ledger.WorkerLost(c.Worker!, now, $"worker {c.Worker} no longer knows the cell");
                    Finished(c.Id);
                    break;
            }
        }
    }

    private void Finished(string cellId)
    {
        _pool.Release(cellId);
        _stages.Remove(cellId);
    }

    /// <summary>Extra dispatch rounds in one tick after slots answered "busy" (each round skips the slots that did).</summary>
    private const int BusyRounds = 3;

    private async Task DispatchDue(DateTimeOffset now)
    {
        if (!_restoredSlots) return; // never dispatch before the running cells of a restored ledger hold their slots
        // A slot busy with another sweep's cell is held out until the next refresh; the bounced cells try the remaining free
        // slots at once. Without this every sweep keeps asking its first-choice slot each tick and sweeps sharing a cluster
        // take turns on it while the other slots idle.
        for (int round = 0; round <= BusyRounds; round++)
            if (!await DispatchRound(now)) return;
    }

    /// <summary>One round of dispatches; true when a slot answered busy (the cell went back and may go to another slot now).</summary>
    private async Task<bool> DispatchRound(DateTimeOffset now)
    {
        var dispatches = _ledger.DispatchRound(now, c => _pool.TryAcquire(c.Requirement, c.Id));
        if (dispatches.Count == 0) return false;
        bool bounced = false;
        var calls = dispatches.Select(async d =>
        {
            if (!specs.State.Specs.TryGetValue(d.Cell.Id, out var json))
                return (d, new WorkerAccept(WorkerReply.Refused, "the cell's specification is missing from the sweep's storage"));
            try
            {
                var a = new WorkerAssignment(SweepId, d.Cell.Id, json, SweepId, d.Attempt);
                return (d, await GrainFactory.GetGrain<IDeviceWorkerGrain>(d.Slot.Key).Run(a).WaitAsync(CallTimeout));
            }
            catch (Exception e) when (e is not OutOfMemoryException) { return (d, new WorkerAccept(WorkerReply.Refused, e.Message)); }
        }).ToList();
        foreach (var (d, reply) in await Task.WhenAll(calls))
        {
            if (reply.Reply == WorkerReply.Accepted) { _stages[d.Cell.Id] = "dispatched"; continue; }
            if (!specs.State.Specs.ContainsKey(d.Cell.Id))
            {
                _ledger.MarkFailed(d.Cell.Id, d.Slot.Key, now, reply.Detail!, permanent: true);
                _pool.Release(d.Cell.Id);
                continue;
            }
            // Busy with another sweep's cell, or unreachable: not the cell's fault. Put it back and keep the slot out of use
            // until the next refresh.
            _ledger.Unstart(d.Cell.Id, d.Slot.Key);
            _pool.Release(d.Cell.Id);
            var hold = "external:" + d.Slot.Key;
            if (_pool.TryHold(d.Slot, hold)) _externalHolds.Add(hold);
            bounced |= reply.Reply == WorkerReply.Busy; // not after a refusal: an unreachable slot may have cost a whole call timeout
            if (reply.Reply == WorkerReply.Refused) log.LogWarning("sweep {Sweep}: slot {Slot} refused cell {Cell}: {Detail}", SweepId, d.Slot.Key, d.Cell.Id, reply.Detail);
        }
        return bounced;
    }

    /// <summary>Writes the ledger when a cell changed state or parallelism changed (at once), or lease renewals are older than a few seconds.</summary>
    private async Task Persist(bool force)
    {
        var now = DateTimeOffset.UtcNow;
        var counts = _ledger.Counts(now) with { BackingOff = 0 };
        bool changed = force || counts != _persistedCounts || _ledger.Parallelism != _persistedParallelism
                       || (_ledger.RunningCount > 0 && now - _persistedAt >= PersistEvery);
        if (!changed || !Exists) return;
        state.State.Ledger = JsonSerializer.Serialize(_ledger.Snapshot(), JsonDefaults.Canonical);
        state.State.UpdatedUtc = now;
        await state.WriteStateAsync();
        _persistedCounts = counts;
        _persistedAt = now;
        _persistedParallelism = _ledger.Parallelism;
        try
        {
            await GrainFactory.GetGrain<ISweepIndexGrain>("all").Update(new SweepIndexEntry(SweepId, state.State.GridName!, counts.IsSettled, now));
        }
        catch (Exception e) when (e is not OutOfMemoryException) { log.LogWarning("sweep {Sweep}: index not updated: {Error}", SweepId, e.Message); }
    }
}
