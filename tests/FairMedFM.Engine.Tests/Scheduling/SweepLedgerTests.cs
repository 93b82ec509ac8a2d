using System.Text.Json;
using FairMedFM.Engine.Scheduling;

namespace FairMedFM.Engine.Tests.Scheduling;

public sealed class SweepLedgerTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly RetryPolicy Policy = new()
    {
        MaxAttempts = 3, InitialBackoff = TimeSpan.FromSeconds(10), BackoffFactor = 2, MaxBackoff = TimeSpan.FromSeconds(30), Lease = TimeSpan.FromMinutes(1),
    };

    private static IEnumerable<CellSubmission> Cells(int n, string prefix = "c", string req = "cpu") =>
        Enumerable.Range(0, n).Select(i => new CellSubmission($"{prefix}{i}", $"cell {prefix}{i}", req));

    private static SlotScheduler Pool(params (string Silo, string Devices)[] silos)
    {
        var p = new SlotScheduler();
        foreach (var (s, d) in silos) p.SetSilo(s, DeviceNames.ParseDeclaration(d));
        return p;
    }

    private static IReadOnlyList<Dispatch> Round(SweepLedger l, SlotScheduler pool, DateTimeOffset now) =>
        l.DispatchRound(now, c => pool.TryAcquire(c.Requirement, c.Id));

    [Fact]
    public void Submit_is_idempotent_and_keeps_order()
    {
        var l = new SweepLedger(Policy);
        Assert.Equal(new SubmitOutcome(3, 0, 0), l.Submit(Cells(3)));
        Assert.Equal(new SubmitOutcome(0, 3, 0), l.Submit(Cells(3)));
        Assert.Equal(3, l.Count);
        Assert.Equal(new[] { "c0", "c1", "c2" }, l.NextDispatch(T0, 10).Select(c => c.Id));
        Assert.Equal(new[] { "c0", "c1" }, l.NextDispatch(T0, 2).Select(c => c.Id));
        Assert.Throws<ArgumentException>(() => l.Submit(new[] { new CellSubmission("", "x") }));
    }

    [Fact]
    public void Two_interleaved_submissions_of_the_same_grid_run_each_cell_once()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu=4"));
        l.Submit(Cells(4));
        var first = Round(l, pool, T0);
        l.Submit(Cells(4)); // the second client's submission arrives while the first runs
        Assert.Empty(Round(l, pool, T0));
        foreach (var d in first) { l.MarkDone(d.Cell.Id, T0); pool.Release(d.Cell.Id); }
        l.Submit(Cells(4));
        Assert.Empty(Round(l, pool, T0));
        Assert.Equal(4, first.Count);
        Assert.Equal(4, l.Counts(T0).Done);
        Assert.All(l.Cells, c => Assert.Equal(1, c.Attempts));
    }

    [Fact]
    public void Extending_a_finished_grid_adds_only_new_cells_and_never_touches_done_ones()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu=8"));
        l.Submit(Cells(3));
        foreach (var d in Round(l, pool, T0)) { l.MarkDone(d.Cell.Id, T0.AddSeconds(5)); pool.Release(d.Cell.Id); }
        Assert.True(l.Counts(T0).IsSettled);
        var doneBefore = l.Cells.ToList();

        var outcome = l.Submit(Cells(5)); // the grid grew by two cells (e.g. a new seed)
        Assert.Equal(new SubmitOutcome(2, 3, 0), outcome);
        var started = Round(l, pool, T0.AddMinutes(1));
        Assert.Equal(new[] { "c3", "c4" }, started.Select(d => d.Cell.Id));
        Assert.Equal(doneBefore, l.Cells.Take(3)); // identical entries, finish times included
        Assert.Equal(new LedgerCounts(5, 0, 2, 3, 0, 0, 0, 0, 0), l.Counts(T0.AddMinutes(1)));
    }

    [Fact]
    public void Transient_failures_back_off_exponentially_then_the_budget_ends_them_failed_with_every_reason()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu"));
        l.Submit(Cells(1));
        var now = T0;
        var waits = new List<TimeSpan>();
        for (int attempt = 1; attempt <= 3; attempt++)
        {
            var d = Assert.Single(Round(l, pool, now));
            Assert.Equal(attempt, d.Attempt);
            var outcome = l.MarkFailed("c0", d.Slot.Key, now, $"boom {attempt}");
            pool.Release("c0");
            if (attempt < 3)
            {
                Assert.Equal(ReportOutcome.Requeued, outcome);
                var due = l.Get("c0")!.NotBefore!.Value;
                waits.Add(due - now);
                Assert.Empty(Round(l, pool, due.AddTicks(-1))); // not before the backoff is over
                Assert.Equal(1, l.Counts(now).BackingOff);
                Assert.Equal(due, l.NextDue(now));
                now = due;
            }
            else Assert.Equal(ReportOutcome.Applied, outcome);
        }
        Assert.Equal(new[] { TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20) }, waits);
        var c = l.Get("c0")!;
        Assert.Equal(CellState.Failed, c.State);
        Assert.Equal(3, c.Attempts);
        Assert.Equal(new[] { "attempt 1: boom 1", "attempt 2: boom 2", "attempt 3: boom 3" }, c.Errors);
        Assert.Contains("retry budget spent", c.Reason);
        Assert.Contains("boom 3", c.Reason);
        Assert.Empty(Round(l, pool, now.AddDays(1))); // never retried for ever
        Assert.True(l.Counts(now).IsSettled);
    }

    [Fact]
    public void Backoff_is_capped()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), Policy.Backoff(3));
        Assert.Equal(TimeSpan.FromSeconds(30), Policy.Backoff(60));
        Assert.Equal(TimeSpan.Zero, Policy.Backoff(0));
        Assert.Throws<ArgumentException>(() => new SweepLedger(Policy with { MaxAttempts = 0 }));
    }

    [Fact]
    public void A_permanent_failure_is_not_retried()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu"));
        l.Submit(Cells(2));
        var d = Round(l, pool, T0)[0];
        Assert.Equal(ReportOutcome.Applied, l.MarkFailed(d.Cell.Id, d.Slot.Key, T0, "attribute 'x' is not defined", permanent: true));
        pool.Release(d.Cell.Id);
        var c = l.Get(d.Cell.Id)!;
        Assert.Equal(CellState.Failed, c.State);
        Assert.Equal(1, c.Attempts);
        Assert.Equal("attribute 'x' is not defined", c.Reason);
        Assert.Equal("c1", Assert.Single(Round(l, pool, T0)).Cell.Id);
    }

    [Fact]
    public void An_expired_lease_requeues_the_cell_at_once_and_a_renewed_one_does_not()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu"), ("s2", "cpu"));
        l.Submit(Cells(2));
        var ds = Round(l, pool, T0);
        Assert.Equal(2, ds.Count);
        var onS1 = ds.Single(d => d.Slot.Silo == "s1");
        var onS2 = ds.Single(d => d.Slot.Silo == "s2");
        // s2 keeps renewing; s1 was SIGKILLed and never answers again.
        Assert.True(l.Renew(onS2.Cell.Id, onS2.Slot.Key, T0.AddSeconds(50)));
        Assert.False(l.Renew(onS2.Cell.Id, onS1.Slot.Key, T0.AddSeconds(50)));
        Assert.Empty(l.ExpireLeases(T0.AddSeconds(59)));
        var expired = l.ExpireLeases(T0.AddSeconds(60));
        Assert.Equal(onS1.Cell.Id, Assert.Single(expired).Id);
        var lost = pool.RemoveSilo("s1");
        Assert.Equal(onS1.Cell.Id, Assert.Single(lost).Holder);

        var c = l.Get(onS1.Cell.Id)!;
        Assert.Equal(CellState.Pending, c.State);
        Assert.Equal(1, c.LostLeases);
        Assert.Null(c.NotBefore); // no backoff for a lost silo
        Assert.Contains("lease expired", c.Errors.Single());
        // Only s2 is left, and busy: the cell waits; when s2 frees up it runs there.
        Assert.Empty(Round(l, pool, T0.AddSeconds(61)));
        l.MarkDone(onS2.Cell.Id, T0.AddSeconds(70)); pool.Release(onS2.Cell.Id);
        var again = Assert.Single(Round(l, pool, T0.AddSeconds(71)));
        Assert.Equal(("s2", 2), (again.Slot.Silo, again.Attempt));
        Assert.Equal(1, l.Counts(T0).LostLeases);
    }

    [Fact]
    public void A_cell_that_keeps_losing_its_silo_ends_failed()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(1));
        var now = T0;
        for (int i = 0; i < 3; i++)
        {
            l.Start("c0", $"w{i}", "cpu", now);
            now += Policy.Lease;
            Assert.Single(l.ExpireLeases(now));
        }
        var c = l.Get("c0")!;
        Assert.Equal(CellState.Failed, c.State);
        Assert.Equal(3, c.LostLeases);
    }

    [Fact]
    public void WorkerLost_requeues_only_that_workers_cells()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(3));
        l.Start("c0", "a", "cpu", T0); l.Start("c1", "b", "cpu", T0); l.Start("c2", "a", "cpu", T0);
        var lost = l.WorkerLost("a", T0, "silo a left the cluster");
        Assert.Equal(new[] { "c0", "c2" }, lost.Select(c => c.Id));
        Assert.Equal(CellState.Running, l.Get("c1")!.State);
        Assert.Equal(2, l.Counts(T0).Pending);
    }

    [Fact]
    public void A_late_result_wins_once_and_stale_failures_are_ignored()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(1));
        l.Start("c0", "old", "cpu", T0);
        l.ExpireLeases(T0 + Policy.Lease);          // "old" looked dead
        l.Start("c0", "new", "cpu", T0 + Policy.Lease);
        Assert.Equal(ReportOutcome.Ignored, l.MarkFailed("c0", "old", T0, "late failure of the old attempt"));
        Assert.Equal(CellState.Running, l.Get("c0")!.State);
        Assert.Equal(ReportOutcome.Applied, l.MarkDone("c0", T0.AddMinutes(2))); // the old attempt finished after all: its result counts
        Assert.Equal(ReportOutcome.Ignored, l.MarkDone("c0", T0.AddMinutes(3)));  // the new attempt's result changes nothing
        Assert.Equal(ReportOutcome.Ignored, l.MarkFailed("c0", "new", T0.AddMinutes(3), "x"));
        Assert.Equal(CellState.Done, l.Get("c0")!.State);
        Assert.Equal(0, l.RunningCount);
    }

    [Fact]
    public void Parallelism_caps_running_cells_and_can_change_while_running()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu=8"));
        l.Submit(Cells(10));
        l.SetParallelism(2);
        Assert.Equal(2, Round(l, pool, T0).Count);
        Assert.Empty(Round(l, pool, T0));
        Assert.Empty(l.NextDispatch(T0, 8));

        l.SetParallelism(5); // raised while running
        Assert.Equal(3, Round(l, pool, T0).Count);
        Assert.Equal(5, l.RunningCount);

        l.SetParallelism(1); // lowered: nothing is pre-empted, nothing new starts until below the cap
        Assert.Empty(Round(l, pool, T0));
        Assert.Throws<InvalidOperationException>(() => l.Start(l.InState(CellState.Pending).First().Id, "w", "cpu", T0));
        foreach (var c in l.Running.Take(4).ToList()) { l.MarkDone(c.Id, T0); pool.Release(c.Id); }
        Assert.Empty(Round(l, pool, T0));
        var last = l.Running.Single();
        l.MarkDone(last.Id, T0); pool.Release(last.Id);
        Assert.Single(Round(l, pool, T0));

        l.SetParallelism(0); // no cap: bounded by free slots only
        Assert.Equal(4, Round(l, pool, T0).Count); // the 4 pending cells, on 7 free slots
        Assert.Null(l.Parallelism);
        Assert.Throws<ArgumentException>(() => l.SetParallelism(-1));
    }

    [Fact]
    public void Cancel_stops_pending_and_running_cells_and_resubmission_revives_them()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu=2"));
        l.Submit(Cells(5));
        var running = Round(l, pool, T0);
        l.MarkDone(running[0].Cell.Id, T0); pool.Release(running[0].Cell.Id);
        var wasRunning = l.Cancel(T0.AddSeconds(1));
        Assert.Equal(new[] { running[1].Cell.Id }, wasRunning);
        var counts = l.Counts(T0);
        Assert.Equal((1, 4, 0, 0), (counts.Done, counts.Cancelled, counts.Pending, counts.Running));
        Assert.True(counts.IsSettled);
        Assert.Empty(l.DispatchRound(T0.AddSeconds(2), _ => throw new InvalidOperationException("nothing may be dispatched")));
        // The cancelled running cell still delivers its result: it is kept.
        Assert.Equal(ReportOutcome.Applied, l.MarkDone(running[1].Cell.Id, T0.AddSeconds(3)));
        Assert.Equal(ReportOutcome.Ignored, l.MarkFailed(running[1].Cell.Id, running[1].Slot.Key, T0, "x"));
        pool.Release(running[1].Cell.Id);

        Assert.Equal(new SubmitOutcome(0, 2, 3), l.Submit(Cells(5)));
        Assert.Equal(2, Round(l, pool, T0.AddSeconds(4)).Count);
    }

    [Fact]
    public void RerunFailed_resets_the_budget_and_keeps_the_history()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(2));
        l.Start("c0", "w", "cpu", T0);
        l.MarkFailed("c0", "w", T0, "bad file", permanent: true);
        l.Start("c1", "w", "cpu", T0);
        l.MarkDone("c1", T0);
        Assert.Equal(1, l.RerunFailed());
        var c = l.Get("c0")!;
        Assert.Equal((CellState.Pending, 0, null), (c.State, c.Attempts, c.Reason));
        Assert.Equal(new[] { "bad file" }, c.Errors);
        Assert.Equal(CellState.Done, l.Get("c1")!.State);
        Assert.Equal("c0", Assert.Single(l.NextDispatch(T0, 5)).Id);
        Assert.Equal(0, l.RerunFailed());
    }

    [Fact]
    public void Unstart_returns_a_cell_without_spending_an_attempt()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(1));
        l.Start("c0", "w", "cpu", T0);
        Assert.False(l.Unstart("c0", "other"));
        Assert.True(l.Unstart("c0", "w"));
        Assert.Equal((CellState.Pending, 0), (l.Get("c0")!.State, l.Get("c0")!.Attempts));
    }

    [Fact]
    public void Cells_of_a_kind_without_free_slots_wait_while_other_kinds_run()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("cpu-silo", "cpu=2"));
        l.Submit(Cells(3, "g", "cuda"));
        l.Submit(Cells(3, "c", "cpu"));
        var d = Round(l, pool, T0);
        Assert.Equal(new[] { "c0", "c1" }, d.Select(x => x.Cell.Id));
        Assert.All(d, x => Assert.Equal("cpu", x.Slot.Device));
        Assert.Equal(3, l.InState(CellState.Pending).Count(c => c.Requirement == "cuda"));
        // A GPU silo joins: the GPU cells start there, never on the CPU silo.
        pool.SetSilo("gpu-silo", DeviceNames.ParseDeclaration("cuda:0=1,cuda:1=1"));
        var g = Round(l, pool, T0);
        Assert.Equal(new[] { "g0", "g1" }, g.Select(x => x.Cell.Id));
        Assert.All(g, x => Assert.StartsWith("cuda:", x.Slot.Device));
        Assert.Equal(new[] { "cuda:0", "cuda:1" }, g.Select(x => x.Slot.Device).Order());
    }

    [Fact]
    public void Undefined_is_final()
    {
        var l = new SweepLedger(Policy);
        l.Submit(Cells(1));
        l.Start("c0", "w", "cpu", T0);
        Assert.Equal(ReportOutcome.Applied, l.MarkUndefined("c0", T0, "overall-auc undefined: single class in test"));
        Assert.Equal(ReportOutcome.Ignored, l.MarkDone("c0", T0));
        Assert.Equal(1, l.Counts(T0).Undefined);
        Assert.Equal(0, l.RerunFailed());
    }

    [Fact]
    public void A_snapshot_round_trips_through_json_and_resumes_where_it_stopped()
    {
        var l = new SweepLedger(Policy);
        var pool = Pool(("s1", "cpu=3"));
        l.Submit(Cells(6));
        l.SetParallelism(3);
        var d = Round(l, pool, T0);
        l.MarkDone(d[0].Cell.Id, T0);
        l.MarkFailed(d[1].Cell.Id, d[1].Slot.Key, T0, "oom"); // requeued with backoff

        var json = JsonSerializer.Serialize(l.Snapshot(), JsonDefaults.Canonical);
        var r = SweepLedger.Restore(JsonSerializer.Deserialize<LedgerSnapshot>(json, JsonDefaults.Canonical)!);
        Assert.Equal(l.Cells, r.Cells, new CellComparer());
        Assert.Equal(3, r.Parallelism);
        Assert.Equal(l.Counts(T0), r.Counts(T0));
        Assert.Equal(l.NextDispatch(T0.AddHours(1), 10).Select(c => c.Id), r.NextDispatch(T0.AddHours(1), 10).Select(c => c.Id));
        // Every silo restarted: nobody renews the running cell's lease, it runs out, the cell is requeued; done cells stay done.
        Assert.Equal(d[2].Cell.Id, Assert.Single(r.Running).Id);
        Assert.Empty(r.ExpireLeases(T0.AddSeconds(59)));
        Assert.Equal(d[2].Cell.Id, Assert.Single(r.ExpireLeases(T0.AddSeconds(60))).Id);
        Assert.Equal(CellState.Pending, r.Get(d[2].Cell.Id)!.State);
        r.Submit(Cells(7));
        Assert.Equal("c6", r.Cells.Last().Id);
        Assert.True(r.Cells.Last().Order > r.Cells.First(c => c.Id == "c5").Order);
        Assert.Equal(CellState.Done, r.Get(d[0].Cell.Id)!.State);
    }

    private sealed class CellComparer : IEqualityComparer<LedgerCell>
    {
        public bool Equals(LedgerCell? a, LedgerCell? b) => a is not null && b is not null && a with { Errors = b.Errors } == b && a.Errors.SequenceEqual(b.Errors);
        public int GetHashCode(LedgerCell c) => c.Id.GetHashCode();
    }

    [Fact]
    public void Dispatch_over_a_large_queue_is_cheap()
    {
        // 17 datasets × 20 FMs × 4 usages × 3 methods × 3 seeds = 12,240 cells on 64 slots: a whole sweep of dispatch/finish
        // rounds must take well under a second-scale budget, so a simulator can use the real ledger.
        var l = new SweepLedger(Policy);
        var pool = new SlotScheduler();
        for (int s = 0; s < 8; s++) pool.SetSilo($"s{s}", DeviceNames.ParseDeclaration(string.Join(",", Enumerable.Range(0, 8).Select(i => $"cuda:{i}"))));
        l.Submit(Cells(12_240, "c", "cuda"));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var now = T0;
        int rounds = 0;
        while (!l.Counts(now).IsSettled)
        {
            foreach (var d in Round(l, pool, now)) { }
            foreach (var c in l.Running.ToList()) { l.MarkDone(c.Id, now); pool.Release(c.Id); }
            now = now.AddMinutes(1);
            rounds++;
        }
        Assert.Equal(12_240 / 64 + 1, rounds);
        Assert.Equal(12_240, l.Counts(now).Done);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"took {sw.Elapsed}");
    }
}
