namespace FairMedFM.Engine.Scheduling;

/// <summary>Where a cell of a sweep stands. Done, Failed, Undefined and Cancelled are final until a rerun or resubmission.</summary>
public enum CellState { Pending = 0, Running = 1, Done = 2, Failed = 3, Undefined = 4, Cancelled = 5 }

/// <summary>
/// Retries of a sweep's cells: a transient failure (or a lost lease) is retried after an exponential backoff until
/// <see cref="MaxAttempts"/> attempts were made; then the cell ends Failed with every attempt's reason. A permanent failure
/// (bad input, unknown model …) ends Failed at once: running it again would give the same error.
/// </summary>
public sealed record RetryPolicy
{
    public int MaxAttempts { get; init; } = 3;
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(2);
    public double BackoffFactor { get; init; } = 2;
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>A running cell whose lease is not renewed for this long is considered lost (its silo died) and requeued.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Wait before attempt <paramref name="failedAttempts"/> + 1: Initial · Factor^(failed − 1), capped.</summary>
    public TimeSpan Backoff(int failedAttempts)
    {
        if (failedAttempts < 1) return TimeSpan.Zero;
        var ms = InitialBackoff.TotalMilliseconds * Math.Pow(BackoffFactor, failedAttempts - 1);
        return ms >= MaxBackoff.TotalMilliseconds || double.IsInfinity(ms) ? MaxBackoff : TimeSpan.FromMilliseconds(ms);
    }

    public void Validate()
    {
        if (MaxAttempts < 1) throw new ArgumentException($"retry policy: max attempts must be ≥ 1 (got {MaxAttempts})");
        if (InitialBackoff < TimeSpan.Zero || MaxBackoff < InitialBackoff) throw new ArgumentException("retry policy: need 0 ≤ initial backoff ≤ max backoff");
        if (BackoffFactor < 1) throw new ArgumentException($"retry policy: backoff factor must be ≥ 1 (got {BackoffFactor})");
        if (Lease <= TimeSpan.Zero) throw new ArgumentException("retry policy: the lease must be positive");
    }
}

/// <summary>A cell as submitted: its id (the hash of its full configuration), a label for people, and the device kind it needs.</summary>
public sealed record CellSubmission(string Id, string Label, string Requirement = "cpu");

/// <summary>One cell's entry in the ledger (a copy; the ledger itself is changed only through its operations).</summary>
public sealed record LedgerCell
{
    public required string Id { get; init; }
    public required string Label { get; init; }
    public string Requirement { get; init; } = "cpu";
    public CellState State { get; init; }
    /// <summary>Attempts started so far (a rerun of failed cells starts counting again).</summary>
    public int Attempts { get; init; }
    /// <summary>Position in submission order: cells are dispatched in this order (retries after fresh cells).</summary>
    public long Order { get; init; }
    /// <summary>Not dispatched before this time (backoff after a failure).</summary>
    public DateTimeOffset? NotBefore { get; init; }
    public string? Worker { get; init; }
    public string? Device { get; init; }
    public DateTimeOffset? LeaseExpires { get; init; }
    public DateTimeOffset? StartedUtc { get; init; }
    public DateTimeOffset? FinishedUtc { get; init; }
    /// <summary>The final reason of a Failed or Undefined cell.</summary>
    public string? Reason { get; init; }
    /// <summary>Every failed attempt's reason, oldest first (kept across reruns).</summary>
    public IReadOnlyList<string> Errors { get; init; } = Array.Empty<string>();
    /// <summary>Times this cell was requeued because its lease ran out (its worker or silo was lost).</summary>
    public int LostLeases { get; init; }
}

/// <summary>A serialisable copy of a whole ledger (System.Text.Json): what a grain persists and a simulator can checkpoint.</summary>
public sealed record LedgerSnapshot
{
    public int Version { get; init; } = 1;
    public RetryPolicy Policy { get; init; } = new();
    /// <summary>Most cells running at once for this sweep; null = as many as there are free slots.</summary>
    public int? Parallelism { get; init; }
    public long NextOrder { get; init; }
    public IReadOnlyList<LedgerCell> Cells { get; init; } = Array.Empty<LedgerCell>();
}

/// <summary>Counts by state (and a few more) for progress displays.</summary>
public sealed record LedgerCounts(int Total, int Pending, int Running, int Done, int Failed, int Undefined, int Cancelled, int BackingOff, int LostLeases)
{
    public int Finished => Done + Failed + Undefined + Cancelled;
    /// <summary>True when nothing is pending or running.</summary>
    public bool IsSettled => Pending == 0 && Running == 0;
    public double Progress => Total == 0 ? 1 : (double)Finished / Total;
}

/// <summary>What a submission changed.</summary>
public sealed record SubmitOutcome(int Added, int AlreadyKnown, int Revived);

/// <summary>How a report about a cell was taken.</summary>
public enum ReportOutcome
{
    /// <summary>The cell's state changed as reported.</summary>
    Applied,
    /// <summary>The cell failed and was requeued (with backoff) for another attempt.</summary>
    Requeued,
    /// <summary>Nothing changed: the report is stale (another attempt holds the cell) or the cell already finished.</summary>
    Ignored,
}

/// <summary>One dispatch decision: this cell goes to this slot.</summary>
public sealed record Dispatch(LedgerCell Cell, SlotRef Slot, int Attempt);

/// <summary>
/// The durable state machine of a sweep, keyed by each cell's configuration hash, with no Orleans and no clock inside:
/// every operation takes <c>now</c>, so a grain drives it with the wall clock and a simulator with simulated time.
/// <list type="bullet">
/// <item>Submit is idempotent: a known cell is left as it is (a done cell is never recomputed), so submitting an extended
/// grid adds only its new cells; a cancelled cell submitted again is pending again.</item>
/// <item>Start → Running with a lease; Renew extends it; ExpireLeases requeues cells whose lease ran out (a dead silo).</item>
/// <item>MarkFailed requeues with exponential backoff until the retry budget is spent, then ends Failed with every reason.</item>
/// <item>Parallelism caps running cells and may change at any time (running cells are never pre-empted).</item>
/// </list>
/// Not thread-safe: one owner (a grain activation, a simulator loop) calls it.
/// </summary>
public sealed class SweepLedger
{
    private sealed class Entry(string id, string label, string requirement, long order)
    {
        public readonly string Id = id;
        public string Label = label;
        public string Requirement = requirement;
        public readonly long Order = order;
        public CellState State;
        public int Attempts;
        public DateTimeOffset? NotBefore;
        public string? Worker, Device;
        public DateTimeOffset? LeaseExpires, StartedUtc, FinishedUtc;
        public string? Reason;
        public readonly List<string> Errors = new();
        public int LostLeases;

        /// <summary>Queue key: due time first (fresh cells have none), then submission order.</summary>
        public (long Due, long Order) Key => (NotBefore?.UtcTicks ?? long.MinValue, Order);

        public LedgerCell ToCell() => new()
        {
            Id = Id, Label = Label, Requirement = Requirement, State = State, Attempts = Attempts, Order = Order, NotBefore = NotBefore,
            Worker = Worker, Device = Device, LeaseExpires = LeaseExpires, StartedUtc = StartedUtc, FinishedUtc = FinishedUtc,
            Reason = Reason, Errors = Errors.ToArray(), LostLeases = LostLeases,
        };
    }

    private sealed class KeyComparer : IComparer<Entry>
    {
        public static readonly KeyComparer Instance = new();
        public int Compare(Entry? a, Entry? b) => a!.Key.CompareTo(b!.Key);
    }

    private readonly Dictionary<string, Entry> _cells = new(StringComparer.Ordinal);
    /// <summary>Pending cells per device requirement, in dispatch order.</summary>
    private readonly Dictionary<string, SortedSet<Entry>> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Entry> _running = new(StringComparer.Ordinal);
    private long _nextOrder;
    private int? _parallelism;

    public SweepLedger(RetryPolicy? policy = null)
    {
        Policy = policy ?? new RetryPolicy();
        Policy.Validate();
    }

    public RetryPolicy Policy { get; }

    /// <summary>Most cells running at once; null = no limit beyond the free slots.</summary>
    public int? Parallelism => _parallelism;

    public int Count => _cells.Count;

    public int RunningCount => _running.Count;

    public bool Contains(string id) => _cells.ContainsKey(id);

    public LedgerCell? Get(string id) => _cells.TryGetValue(id, out var e) ? e.ToCell() : null;

    public IEnumerable<LedgerCell> Cells => _cells.Values.OrderBy(e => e.Order).Select(e => e.ToCell());

    public IEnumerable<LedgerCell> InState(CellState state) => _cells.Values.Where(e => e.State == state).OrderBy(e => e.Order).Select(e => e.ToCell());

    public IEnumerable<LedgerCell> Running => _running.Values.OrderBy(e => e.Order).Select(e => e.ToCell());

    // ---- submission and control ----

    /// <summary>Adds cells not yet known (in the given order). Known cells are untouched — done stays done, failed stays
    /// failed (see <see cref="RerunFailed"/>), running keeps running — except cancelled cells, which are pending again.</summary>
    public SubmitOutcome Submit(IEnumerable<CellSubmission> cells)
    {
        int added = 0, known = 0, revived = 0;
        foreach (var c in cells)
        {
            if (string.IsNullOrEmpty(c.Id)) throw new ArgumentException("a cell submitted to the ledger has no id");
            if (string.IsNullOrEmpty(c.Requirement)) throw new ArgumentException($"cell {c.Id} has no device requirement");
            if (_cells.TryGetValue(c.Id, out var e))
            {
                if (e.State == CellState.Cancelled)
                {
                    e.State = CellState.Pending; e.Reason = null; e.NotBefore = null; e.FinishedUtc = null;
                    Enqueue(e);
                    revived++;
                }
                else known++;
                continue;
            }
            e = new Entry(c.Id, c.Label, c.Requirement, _nextOrder++) { State = CellState.Pending };
            _cells.Add(c.Id, e);
            Enqueue(e);
            added++;
        }
        return new SubmitOutcome(added, known, revived);
    }

    /// <summary>Pending and running cells become Cancelled; returns the ids that were running (their workers may be told to stop;
    /// a result they still deliver is kept, see <see cref="MarkDone"/>).</summary>
    public IReadOnlyList<string> Cancel(DateTimeOffset now)
    {
        var wasRunning = _running.Values.OrderBy(e => e.Order).Select(e => e.Id).ToList();
        foreach (var e in _cells.Values.Where(e => e.State is CellState.Pending or CellState.Running).ToList())
        {
            Detach(e);
            e.State = CellState.Cancelled; e.Reason = "cancelled"; e.FinishedUtc = now;
            e.Worker = null; e.Device = null; e.LeaseExpires = null; e.NotBefore = null;
        }
        return wasRunning;
    }

    /// <summary>Failed cells are pending again with a fresh retry budget (their earlier reasons are kept in <see cref="LedgerCell.Errors"/>).</summary>
    public int RerunFailed()
    {
        int n = 0;
        foreach (var e in _cells.Values.Where(e => e.State == CellState.Failed).ToList())
        {
            e.State = CellState.Pending; e.Attempts = 0; e.Reason = null; e.NotBefore = null; e.FinishedUtc = null;
            Enqueue(e);
            n++;
        }
        return n;
    }

    /// <summary>Caps the running cells of this sweep (null or 0: no cap). Takes effect at the next dispatch; cells already
    /// running beyond a lowered cap finish, and no new one starts until the count is below it.</summary>
    public void SetParallelism(int? parallelism)
    {
        if (parallelism < 0) throw new ArgumentException($"parallelism must be ≥ 0 (0 = no limit; got {parallelism})");
        _parallelism = parallelism is 0 ? null : parallelism;
    }

    // ---- dispatch ----

    /// <summary>How many more cells may start now under the parallelism cap.</summary>
    public int Headroom => _parallelism is { } p ? Math.Max(0, p - _running.Count) : int.MaxValue;

    /// <summary>The pending cells that may start at <paramref name="now"/> (backoff over), in dispatch order, at most
    /// <paramref name="availableSlots"/> and never beyond the parallelism cap. Read only: call <see cref="Start"/> for each one used.</summary>
    public IReadOnlyList<LedgerCell> NextDispatch(DateTimeOffset now, int availableSlots, string? requirement = null)
    {
        int max = Math.Min(availableSlots, Headroom);
        var list = new List<LedgerCell>();
        if (max <= 0) return list;
        var queues = requirement is null ? _pending.Values.ToList() : _pending.TryGetValue(requirement, out var q) ? new List<SortedSet<Entry>> { q } : new();
        // Merge the per-requirement queues in (due, order) order.
        var due = queues.SelectMany(q => q.TakeWhile(e => IsDue(e, now)).Take(max)).OrderBy(e => e.Key).Take(max);
        list.AddRange(due.Select(e => e.ToCell()));
        return list;
    }

    /// <summary>
    /// One dispatch round: due pending cells in order, each given a slot by <paramref name="acquire"/> (null: no free slot of that
    /// requirement, so later cells with the same requirement are skipped this round, while others may still start), each
    /// started. Bounded by the parallelism cap. Cost per round: O(dispatched · log n) plus one failed acquire per requirement.
    /// </summary>
    public IReadOnlyList<Dispatch> DispatchRound(DateTimeOffset now, Func<LedgerCell, SlotRef?> acquire)
    {
        var result = new List<Dispatch>();
        var exhausted = new HashSet<string>(StringComparer.Ordinal);
        while (Headroom > 0)
        {
            Entry? best = null;
            foreach (var (req, q) in _pending)
            {
                if (exhausted.Contains(req) || q.Count == 0) continue;
                var head = q.Min!;
                if (!IsDue(head, now)) continue;
                if (best is null || KeyComparer.Instance.Compare(head, best) < 0) best = head;
            }
            if (best is null) break;
            var slot = acquire(best.ToCell());
            if (slot is null) { exhausted.Add(best.Requirement); continue; }
            Start(best.Id, slot.Value.Key, slot.Value.Device, now);
            result.Add(new Dispatch(best.ToCell(), slot.Value, best.Attempts));
        }
        return result;
    }

    /// <summary>The earliest time a backing-off cell becomes due (for timers and simulators); null when none waits.</summary>
    public DateTimeOffset? NextDue(DateTimeOffset now)
    {
        DateTimeOffset? next = null;
        foreach (var q in _pending.Values)
            foreach (var e in q)
            {
                if (e.NotBefore is not { } t || t <= now) continue;
                if (next is null || t < next) next = t;
                break; // sorted by due time: the first future entry is this queue's earliest
            }
        return next;
    }

    /// <summary>Pending → Running on <paramref name="worker"/>/<paramref name="device"/>: one more attempt, a lease until now + lease.</summary>
    public int Start(string id, string worker, string device, DateTimeOffset now)
    {
        var e = Find(id);
        if (e.State != CellState.Pending) throw new InvalidOperationException($"cell {id} is {e.State}, not Pending: it cannot start");
        if (_parallelism is { } p && _running.Count >= p) throw new InvalidOperationException($"cell {id} cannot start: {_running.Count} cells run and the parallelism is {p}");
        Detach(e);
        e.State = CellState.Running; e.Attempts++;
        e.Worker = worker; e.Device = device; e.StartedUtc = now; e.LeaseExpires = now + Policy.Lease; e.NotBefore = null;
        _running[e.Id] = e;
        return e.Attempts;
    }

    /// <summary>A dispatched cell never started (the slot turned out busy, the worker refused): back to Pending as if
    /// not dispatched, without using an attempt.</summary>
    public bool Unstart(string id, string worker)
    {
        var e = Find(id);
        if (e.State != CellState.Running || e.Worker != worker) return false;
        Detach(e);
        e.State = CellState.Pending; e.Attempts = Math.Max(0, e.Attempts - 1);
        e.Worker = null; e.Device = null; e.LeaseExpires = null; e.StartedUtc = null;
        Enqueue(e);
        return true;
    }

    /// <summary>The worker still runs the cell: its lease is extended. False when that worker no longer holds the cell.</summary>
    public bool Renew(string id, string worker, DateTimeOffset now)
    {
        var e = Find(id);
        if (e.State != CellState.Running || e.Worker != worker) return false;
        e.LeaseExpires = now + Policy.Lease;
        return true;
    }

    /// <summary>Running cells whose lease ran out are lost (their silo died or stopped answering): each uses up its attempt
    /// and is requeued at once, or ends Failed when the budget is spent. Returns the affected cells as they were.</summary>
    public IReadOnlyList<LedgerCell> ExpireLeases(DateTimeOffset now)
    {
        var expired = _running.Values.Where(e => e.LeaseExpires <= now).OrderBy(e => e.Order).ToList();
        var before = expired.Select(e => e.ToCell()).ToList();
        foreach (var e in expired) Lose(e, now, $"lease expired on {e.Worker} ({e.Device}): worker or silo lost");
        return before;
    }

    /// <summary>The worker (or its silo) is known to be gone: requeue its cells now instead of waiting for their leases.</summary>
    public IReadOnlyList<LedgerCell> WorkerLost(string worker, DateTimeOffset now, string reason)
    {
        var lost = _running.Values.Where(e => e.Worker == worker).OrderBy(e => e.Order).ToList();
        var before = lost.Select(e => e.ToCell()).ToList();
        foreach (var e in lost) Lose(e, now, reason);
        return before;
    }

    private void Lose(Entry e, DateTimeOffset now, string reason)
    {
        e.LostLeases++;
        // Lost without a verdict: retried at once (a dead silo is not the cell's fault), but it still spends the attempt,
        // so a cell that kills every silo it runs on ends Failed instead of taking the cluster down for ever.
        Requeue(e, now, reason, TimeSpan.Zero);
    }

    // ---- results ----

    /// <summary>The cell's result exists. Accepted from any attempt (a result is a result; first one wins) and in any state but
    /// Done/Undefined: a late result of a cancelled or requeued cell is kept rather than recomputed. Ignored when already final.</summary>
    public ReportOutcome MarkDone(string id, DateTimeOffset now) => Finish(id, now, CellState.Done, null);

    /// <summary>The cell ran but its result is undefined (e.g. its headline metric cannot be computed on this data): final, not retried.</summary>
    public ReportOutcome MarkUndefined(string id, DateTimeOffset now, string reason) => Finish(id, now, CellState.Undefined, reason);

    private ReportOutcome Finish(string id, DateTimeOffset now, CellState state, string? reason)
    {
        var e = Find(id);
        if (e.State is CellState.Done or CellState.Undefined) return ReportOutcome.Ignored;
        Detach(e);
        e.State = state; e.Reason = reason; e.FinishedUtc = now; e.LeaseExpires = null; e.NotBefore = null;
        return ReportOutcome.Applied;
    }

    /// <summary>
    /// An attempt failed. Only the worker holding the cell may report it (a stale attempt's failure is ignored). Permanent
    /// failures end Failed at once; transient ones are requeued after the backoff until the retry budget is spent.
    /// </summary>
    public ReportOutcome MarkFailed(string id, string worker, DateTimeOffset now, string reason, bool permanent = false)
    {
        var e = Find(id);
        if (e.State != CellState.Running || e.Worker != worker) return ReportOutcome.Ignored;
        if (permanent)
        {
            Detach(e);
            e.Errors.Add(reason);
            e.State = CellState.Failed; e.Reason = reason; e.FinishedUtc = now; e.LeaseExpires = null;
            return ReportOutcome.Applied;
        }
        return Requeue(e, now, reason, Policy.Backoff(e.Attempts)) ? ReportOutcome.Requeued : ReportOutcome.Applied;
    }

    /// <summary>Requeues after <paramref name="delay"/>, or fails the cell when its attempts are spent. True when requeued.</summary>
    private bool Requeue(Entry e, DateTimeOffset now, string reason, TimeSpan delay)
    {
        Detach(e);
        e.Errors.Add($"attempt {e.Attempts}: {reason}");
        e.LeaseExpires = null;
        if (e.Attempts >= Policy.MaxAttempts)
        {
            e.State = CellState.Failed; e.FinishedUtc = now;
            e.Reason = $"failed {e.Attempts} time(s), retry budget spent; last: {reason}";
            return false;
        }
        e.State = CellState.Pending; e.NotBefore = delay > TimeSpan.Zero ? now + delay : null;
        Enqueue(e);
        return true;
    }

    // ---- progress ----

    public LedgerCounts Counts(DateTimeOffset now)
    {
        int pending = 0, running = 0, done = 0, failed = 0, undef = 0, cancelled = 0, backoff = 0, lost = 0;
        foreach (var e in _cells.Values)
        {
            lost += e.LostLeases;
            switch (e.State)
            {
                case CellState.Pending: pending++; if (e.NotBefore > now) backoff++; break;
                case CellState.Running: running++; break;
                case CellState.Done: done++; break;
                case CellState.Failed: failed++; break;
                case CellState.Undefined: undef++; break;
                case CellState.Cancelled: cancelled++; break;
            }
        }
        return new LedgerCounts(_cells.Count, pending, running, done, failed, undef, cancelled, backoff, lost);
    }

    // ---- persistence ----

    public LedgerSnapshot Snapshot() => new()
    {
        Policy = Policy, Parallelism = _parallelism, NextOrder = _nextOrder,
        Cells = _cells.Values.OrderBy(e => e.Order).Select(e => e.ToCell()).ToList(),
    };

    /// <summary>Rebuilds a ledger from a snapshot. Running cells keep their leases: if their workers are gone, the leases run out
    /// and they are requeued (or the owner calls <see cref="WorkerLost"/> for workers it knows are gone).</summary>
    public static SweepLedger Restore(LedgerSnapshot snapshot)
    {
        var l = new SweepLedger(snapshot.Policy) { _parallelism = snapshot.Parallelism };
        foreach (var c in snapshot.Cells)
        {
            if (l._cells.ContainsKey(c.Id)) throw new InvalidDataException($"ledger snapshot lists cell {c.Id} twice");
            var e = new Entry(c.Id, c.Label, c.Requirement, c.Order)
            {
                State = c.State, Attempts = c.Attempts, NotBefore = c.NotBefore, Worker = c.Worker, Device = c.Device,
                LeaseExpires = c.LeaseExpires, StartedUtc = c.StartedUtc, FinishedUtc = c.FinishedUtc, Reason = c.Reason, LostLeases = c.LostLeases,
            };
            e.Errors.AddRange(c.Errors ?? Array.Empty<string>());
            if (e.State == CellState.Running && e.LeaseExpires is null)
                throw new InvalidDataException($"ledger snapshot: running cell {c.Id} has no lease");
            l._cells.Add(c.Id, e);
            if (e.State == CellState.Pending) l.Enqueue(e);
            else if (e.State == CellState.Running) l._running[e.Id] = e;
        }
        l._nextOrder = Math.Max(snapshot.NextOrder, snapshot.Cells.Count == 0 ? 0 : snapshot.Cells.Max(c => c.Order) + 1);
        return l;
    }

    // ---- internals ----

    private static bool IsDue(Entry e, DateTimeOffset now) => e.NotBefore is not { } t || t <= now;

    private Entry Find(string id) =>
        _cells.TryGetValue(id, out var e) ? e : throw new KeyNotFoundException($"cell {id} is not in this sweep's ledger");

    private void Enqueue(Entry e)
    {
        if (!_pending.TryGetValue(e.Requirement, out var q)) _pending[e.Requirement] = q = new SortedSet<Entry>(KeyComparer.Instance);
        q.Add(e);
    }

    /// <summary>Removes the entry from the pending queue or the running set, whichever holds it (before its key changes).</summary>
    private void Detach(Entry e)
    {
        if (e.State == CellState.Pending && _pending.TryGetValue(e.Requirement, out var q)) q.Remove(e);
        else if (e.State == CellState.Running) _running.Remove(e.Id);
    }
}
