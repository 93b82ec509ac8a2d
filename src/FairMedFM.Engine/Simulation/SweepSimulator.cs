using System.Diagnostics;
using FairMedFM.Engine.Scheduling;

namespace FairMedFM.Engine.Simulation;

/// <summary>
/// A cell for the simulator: its own device-seconds once its embeddings exist, the embedding-cache entry it reads (null: none)
/// and what computing that entry costs, and the cost hint handed to the ledger (0: none).
/// </summary>
public sealed record SimJob(string Id, string Label, double ComputeSeconds, string? CacheKey = null, double EmbeddingSeconds = 0, double CostHint = 0);

public sealed record SimulationOptions
{
    /// <summary>GPUs in the simulated cluster.</summary>
    public int Devices { get; init; } = 1;
    /// <summary>GPUs per silo (the last silo may have fewer).</summary>
    public int DevicesPerSilo { get; init; } = 8;
    /// <summary>Cells that train on one GPU at once; each slot is modelled at full speed.</summary>
    public int SlotsPerDevice { get; init; } = 1;
    /// <summary>Probability that an attempt fails (transient) at a uniformly random point of its work.</summary>
    public double FailureRate { get; init; }
    public int Seed { get; init; }
    /// <summary>Hand each job's <see cref="SimJob.CostHint"/> to the ledger (longest-expected-first); false: plain submission order.</summary>
    public bool UseCostHints { get; init; } = true;
    public RetryPolicy Retry { get; init; } = new();

    public void Validate()
    {
        if (Devices < 1) throw new ArgumentException($"devices must be ≥ 1 (got {Devices})");
        if (DevicesPerSilo < 1) throw new ArgumentException($"devices per silo must be ≥ 1 (got {DevicesPerSilo})");
        if (SlotsPerDevice < 1) throw new ArgumentException($"slots per device must be ≥ 1 (got {SlotsPerDevice})");
        if (!(FailureRate >= 0 && FailureRate <= 1)) throw new ArgumentException($"failure rate must be in [0, 1] (got {FailureRate})");
        Retry.Validate();
    }
}

public sealed record DeviceUtilisation(string Silo, string Device, int Slots, double BusySeconds, double Utilisation);

public sealed record SimulationResult
{
    public int Devices { get; init; }
    public int Silos { get; init; }
    public int Slots { get; init; }
    public string Order { get; init; } = "";
    public int Cells { get; init; }
    public int Done { get; init; }
    public int Failed { get; init; }
    /// <summary>Attempts started (dispatches).</summary>
    public int Attempts { get; init; }
    /// <summary>Failed attempts the ledger requeued.</summary>
    public int Retries { get; init; }
    public int InjectedFailures { get; init; }
    public int DispatchRounds { get; init; }
    /// <summary>Embedding-cache entries computed to the end (one per dataset × FM unless a failure lost one midway).</summary>
    public int EmbeddingsComputed { get; init; }
    /// <summary>Embeddings lost midway because the attempt computing them failed (recomputed by the next cell that needs them).</summary>
    public int EmbeddingsLost { get; init; }
    public double MakespanSeconds { get; init; }
    /// <summary>Device-seconds spent computing (embeddings, training, evaluation; failed attempts' work included).</summary>
    public double BusySeconds { get; init; }
    /// <summary>Device-seconds of attempts that then failed.</summary>
    public double WastedSeconds { get; init; }
    /// <summary>Slot-seconds held by a cell waiting for another cell's embedding of the same dataset × FM.</summary>
    public double EmbeddingWaitSeconds { get; init; }
    /// <summary>Busy ÷ (slots × makespan).</summary>
    public double Utilisation { get; init; }
    /// <summary>No schedule can finish sooner: max(total work ÷ slots, the longest cell with its embedding).</summary>
    public double LowerBoundSeconds { get; init; }
    public IReadOnlyList<DeviceUtilisation> PerDevice { get; init; } = Array.Empty<DeviceUtilisation>();
    /// <summary>Measured wall time of the real ledger and slot-scheduler calls per dispatched cell (dispatch round share,
    /// start, completion report, slot release), in microseconds.</summary>
    public double OverheadMeanMicroseconds { get; init; }
    public double OverheadP99Microseconds { get; init; }
    public double OverheadMaxMicroseconds { get; init; }
    /// <summary>Wall time of the whole simulation.</summary>
    public double SimulationWallSeconds { get; init; }
}

/// <summary>
/// A discrete-event simulation of a sweep on N GPUs driven by the real <see cref="SweepLedger"/> and <see cref="SlotScheduler"/>
/// with simulated time injected: every dispatch is a real <see cref="SweepLedger.DispatchRound"/> over a real slot pool, every
/// completion a real <see cref="SweepLedger.MarkDone"/> / <see cref="SweepLedger.MarkFailed"/> and slot release, and
/// failures go through the ledger's real retry budget and backoff (<see cref="SweepLedger.NextDue"/> drives the wake-ups).
/// <para>Model: a cell holds its slot from dispatch to completion. A cell whose dataset × FM embeddings are not cached computes
/// them first (then they are cached for all); a cell that finds them being computed by another cell waits, holding its slot
/// (counted as embedding wait, not busy); if the computing attempt fails midway the embedding is lost and the first waiter
/// computes it. A failing attempt fails at a uniformly random point of its work.</para>
/// Deterministic for a seed (except the measured overhead). Single-threaded.
/// </summary>
public static class SweepSimulator
{
    public const string Requirement = "cuda";

    private static readonly DateTimeOffset Origin = DateTimeOffset.UnixEpoch;

    private enum EventKind { EmbeddingDone, Finish, Fail, Wake }

    private sealed class Attempt(SimJob job, SlotRef slot, int device, bool fails, double failPoint, long embedTicks, long computeTicks)
    {
        public readonly SimJob Job = job;
        public readonly SlotRef Slot = slot;
        public readonly int Device = device;
        public readonly bool Fails = fails;
        public readonly double FailPoint = failPoint;
        public readonly long EmbedTicks = embedTicks, ComputeTicks = computeTicks;
        public long WorkStart, WaitStart;
        public double OverheadTicks;
    }

    private enum CacheState { Missing, Computing, Ready }

    private sealed class CacheEntry
    {
        public CacheState State;
        public Attempt? Owner;
        public readonly List<Attempt> Waiters = new();
    }

    private readonly record struct Event(EventKind Kind, Attempt? Attempt, string? CacheKey);

    public static long Ticks(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) throw new ArgumentException($"a duration must be finite and ≥ 0 (got {seconds} s)");
        return seconds == 0 ? 0 : Math.Max(1, (long)Math.Round(seconds * TimeSpan.TicksPerSecond));
    }

    public static SimulationResult Run(IReadOnlyList<SimJob> jobs, SimulationOptions options)
    {
        options.Validate();
        var wall = Stopwatch.StartNew();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var j in jobs)
        {
            if (!ids.Add(j.Id)) throw new ArgumentException($"job {j.Id} is listed twice");
            Ticks(j.ComputeSeconds); Ticks(j.EmbeddingSeconds);
        }
        var embedSeconds = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var j in jobs.Where(j => j.CacheKey is not null))
            if (embedSeconds.TryGetValue(j.CacheKey!, out var e) && e != j.EmbeddingSeconds)
                throw new ArgumentException($"jobs reading cache entry {j.CacheKey} disagree on its embedding cost ({e} s and {j.EmbeddingSeconds} s)");
            else embedSeconds[j.CacheKey!] = j.EmbeddingSeconds;

        // The cluster: silos of DevicesPerSilo GPUs each.
        var pool = new SlotScheduler();
        int silos = (options.Devices + options.DevicesPerSilo - 1) / options.DevicesPerSilo;
        for (int s = 0, left = options.Devices; s < silos; s++, left -= options.DevicesPerSilo)
            pool.SetSilo($"silo-{s:D3}", Enumerable.Range(0, Math.Min(left, options.DevicesPerSilo)).Select(i => new DeviceSlots($"cuda:{i}", options.SlotsPerDevice)));
        var deviceIndex = new Dictionary<(string, string), int>();
        var devices = pool.Usage().ToList();
        for (int i = 0; i < devices.Count; i++) deviceIndex[(devices[i].Silo, devices[i].Device)] = i;
        var busy = new double[devices.Count];

        var ledger = new SweepLedger(options.Retry);
        var byId = jobs.ToDictionary(j => j.Id, StringComparer.Ordinal);
        ledger.Submit(jobs.Select(j => new CellSubmission(j.Id, j.Label, Requirement) { CostHint = options.UseCostHints ? j.CostHint : 0 }));

        var rng = new Random(options.Seed);
        var events = new PriorityQueue<Event, (long Time, long Seq)>();
        long seq = 0;
        void Schedule(long at, Event e) => events.Enqueue(e, (at, seq++));

        var cache = new Dictionary<string, CacheEntry>(StringComparer.Ordinal);
        var overheads = new List<double>(jobs.Count);
        double carry = 0, totalOverhead = 0;
        int attempts = 0, retries = 0, injected = 0, rounds = 0, done = 0, failed = 0, embeddingsComputed = 0, embeddingsLost = 0;
        double wasted = 0, waited = 0;
        long makespan = 0;
        long? wake = null;

        void StartWork(Attempt a, long now, bool withEmbedding)
        {
            a.WorkStart = now;
            long work = (withEmbedding ? a.EmbedTicks : 0) + a.ComputeTicks;
            if (a.Fails)
            {
                long failAfter = Math.Max(1, (long)(a.FailPoint * work));
                if (withEmbedding && failAfter >= a.EmbedTicks) Schedule(now + a.EmbedTicks, new Event(EventKind.EmbeddingDone, a, a.Job.CacheKey));
                Schedule(now + failAfter, new Event(EventKind.Fail, a, null));
            }
            else
            {
                if (withEmbedding) Schedule(now + a.EmbedTicks, new Event(EventKind.EmbeddingDone, a, a.Job.CacheKey));
                Schedule(now + work, new Event(EventKind.Finish, a, null));
            }
        }

        void Begin(Dispatch d, long now, double overheadShare)
        {
            var job = byId[d.Cell.Id];
            bool fails = rng.NextDouble() < options.FailureRate;
            double point = rng.NextDouble();
            var a = new Attempt(job, d.Slot, deviceIndex[(d.Slot.Silo, d.Slot.Device)], fails, point, Ticks(job.EmbeddingSeconds), Ticks(job.ComputeSeconds))
            {
                OverheadTicks = overheadShare,
            };
            attempts++;
            if (job.CacheKey is null) { StartWork(a, now, false); return; }
            if (!cache.TryGetValue(job.CacheKey, out var entry)) cache[job.CacheKey] = entry = new CacheEntry();
            switch (entry.State)
            {
                case CacheState.Ready: StartWork(a, now, false); break;
                case CacheState.Missing: entry.State = CacheState.Computing; entry.Owner = a; StartWork(a, now, true); break;
                default: a.WaitStart = now; entry.Waiters.Add(a); break;
            }
        }

        void DispatchAll(long now)
        {
            long t0 = Stopwatch.GetTimestamp();
            var dispatched = ledger.DispatchRound(Origin.AddTicks(now), c => pool.TryAcquire(c.Requirement, c.Id));
            double spent = Stopwatch.GetTimestamp() - t0 + carry;
            rounds++;
            if (dispatched.Count == 0) { carry = spent; return; }
            carry = 0;
            foreach (var d in dispatched) Begin(d, now, spent / dispatched.Count);
        }

        void Complete(Attempt a, long now, bool success)
        {
            long t0 = Stopwatch.GetTimestamp();
            if (success) ledger.MarkDone(a.Job.Id, Origin.AddTicks(now));
            else if (ledger.MarkFailed(a.Job.Id, a.Slot.Key, Origin.AddTicks(now), "injected failure") == ReportOutcome.Requeued) retries++;
            if (!pool.Release(a.Job.Id)) throw new InvalidOperationException($"cell {a.Job.Id} held no slot at completion");
            double spent = Stopwatch.GetTimestamp() - t0;
            overheads.Add(a.OverheadTicks + spent);
            totalOverhead += a.OverheadTicks + spent;
        }

        DispatchAll(0);
        while (events.TryDequeue(out var ev, out var at))
        {
            long now = at.Time;
            while (true)
            {
                Handle(ev, now);
                if (!events.TryPeek(out var next, out var nt) || nt.Time != now) break;
                events.Dequeue();
                ev = next;
            }
            DispatchAll(now);
            long t0 = Stopwatch.GetTimestamp();
            var due = ledger.NextDue(Origin.AddTicks(now));
            carry += Stopwatch.GetTimestamp() - t0;
            if (due is { } dt)
            {
                long dueTicks = (dt - Origin).Ticks;
                if (wake is null || wake <= now || dueTicks < wake) { wake = dueTicks; Schedule(dueTicks, new Event(EventKind.Wake, null, null)); }
            }
        }
        totalOverhead += carry;

        void Handle(Event ev, long now)
        {
            switch (ev.Kind)
            {
                case EventKind.Wake: break;
                case EventKind.EmbeddingDone:
                {
                    var entry = cache[ev.CacheKey!];
                    entry.State = CacheState.Ready; entry.Owner = null;
                    embeddingsComputed++;
                    foreach (var w in entry.Waiters) { waited += now - w.WaitStart; StartWork(w, now, false); }
                    entry.Waiters.Clear();
                    break;
                }
                case EventKind.Finish:
                {
                    var a = ev.Attempt!;
                    busy[a.Device] += now - a.WorkStart;
                    makespan = Math.Max(makespan, now);
                    done++;
                    Complete(a, now, success: true);
                    break;
                }
                case EventKind.Fail:
                {
                    var a = ev.Attempt!;
                    busy[a.Device] += now - a.WorkStart;
                    wasted += now - a.WorkStart;
                    makespan = Math.Max(makespan, now);
                    injected++;
                    if (a.Job.CacheKey is { } key && cache[key] is { State: CacheState.Computing } entry && entry.Owner == a)
                    {
                        // The embedding died with the attempt: the first cell waiting for it computes it now.
                        embeddingsLost++;
                        entry.State = CacheState.Missing; entry.Owner = null;
                        if (entry.Waiters.Count > 0)
                        {
                            var w = entry.Waiters[0];
                            entry.Waiters.RemoveAt(0);
                            waited += now - w.WaitStart;
                            entry.State = CacheState.Computing; entry.Owner = w;
                            StartWork(w, now, true);
                        }
                    }
                    Complete(a, now, success: false);
                    break;
                }
            }
        }

        var counts = ledger.Counts(Origin.AddTicks(makespan));
        if (!counts.IsSettled)
            throw new InvalidOperationException($"simulation stalled with {counts.Pending} pending and {counts.Running} running cells (no slot can take them)");
        failed = counts.Failed;
        if (counts.Done != done) throw new InvalidOperationException($"ledger counts {counts.Done} done cells, the simulation {done}");

        double swToUs = 1e6 / Stopwatch.Frequency;
        static double Sec(double ticks) => ticks / TimeSpan.TicksPerSecond;
        double makespanS = Sec(makespan);
        int slots = devices.Sum(d => d.Slots);
        double busyS = Sec(busy.Sum());
        double work = jobs.Sum(j => j.ComputeSeconds) + embedSeconds.Values.Sum();
        double longest = jobs.Count == 0 ? 0 : jobs.Max(j => j.ComputeSeconds + (j.CacheKey is null ? 0 : j.EmbeddingSeconds));
        overheads.Sort();
        return new SimulationResult
        {
            Devices = options.Devices, Silos = silos, Slots = slots, Order = options.UseCostHints ? "longest-first" : "submission",
            Cells = jobs.Count, Done = done, Failed = failed, Attempts = attempts, Retries = retries, InjectedFailures = injected, DispatchRounds = rounds,
            EmbeddingsComputed = embeddingsComputed, EmbeddingsLost = embeddingsLost,
            MakespanSeconds = makespanS, BusySeconds = busyS, WastedSeconds = Sec(wasted), EmbeddingWaitSeconds = Sec(waited),
            Utilisation = makespan == 0 ? 0 : busy.Sum() / ((double)slots * makespan),
            LowerBoundSeconds = Math.Max(work / slots, longest),
            PerDevice = devices.Select((d, i) => new DeviceUtilisation(d.Silo, d.Device, d.Slots, Sec(busy[i]),
                makespan == 0 ? 0 : busy[i] / ((double)d.Slots * makespan))).ToList(),
            OverheadMeanMicroseconds = attempts == 0 ? 0 : totalOverhead * swToUs / attempts,
            OverheadP99Microseconds = overheads.Count == 0 ? 0 : overheads[Math.Min(overheads.Count - 1, (int)Math.Ceiling(0.99 * overheads.Count) - 1)] * swToUs,
            OverheadMaxMicroseconds = overheads.Count == 0 ? 0 : overheads[^1] * swToUs,
            SimulationWallSeconds = wall.Elapsed.TotalSeconds,
        };
    }
}
