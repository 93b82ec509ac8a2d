using FairMedFM.Engine.Scheduling;
using FairMedFM.Engine.Simulation;

namespace FairMedFM.Engine.Tests.Simulation;

/// <summary>The discrete-event loop on hand-computable cases, driven by the real ledger and slot scheduler.</summary>
public sealed class SweepSimulatorTests
{
    private static SimJob Job(string id, double compute, string? cache = null, double embed = 0, double hint = 0) => new(id, id, compute, cache, embed, hint);

    private static SimulationResult Run(IReadOnlyList<SimJob> jobs, int devices, double failureRate = 0, int seed = 0, bool hints = true, RetryPolicy? retry = null, int perSilo = 8, int slots = 1) =>
        SweepSimulator.Run(jobs, new SimulationOptions
        {
            Devices = devices, FailureRate = failureRate, Seed = seed, UseCostHints = hints, Retry = retry ?? new RetryPolicy(), DevicesPerSilo = perSilo, SlotsPerDevice = slots,
        });

    [Fact]
    public void Four_equal_cells_on_two_devices_take_two_cell_lengths_at_full_utilisation()
    {
        var r = Run(Enumerable.Range(0, 4).Select(i => Job($"c{i}", 100)).ToList(), devices: 2);
        Assert.Equal(200, r.MakespanSeconds, 9);
        Assert.Equal(1.0, r.Utilisation, 12);
        Assert.Equal(400, r.BusySeconds, 9);
        Assert.Equal(200, r.LowerBoundSeconds, 9);
        Assert.Equal((4, 0, 4, 0), (r.Done, r.Failed, r.Attempts, r.Retries));
        Assert.Equal(2, r.PerDevice.Count);
        Assert.All(r.PerDevice, d => Assert.Equal(1.0, d.Utilisation, 12));
        Assert.Equal(1, r.Silos);
        Assert.True(r.OverheadMeanMicroseconds > 0 && r.OverheadP99Microseconds > 0);
    }

    [Fact]
    public void Unequal_cells_leave_the_idle_device_counted_as_idle()
    {
        // 300 s and 100 s on 2 devices: makespan 300, busy 400 of 600 device-seconds.
        var r = Run(new[] { Job("long", 300), Job("short", 100) }, devices: 2);
        Assert.Equal(300, r.MakespanSeconds, 9);
        Assert.Equal(400.0 / 600, r.Utilisation, 12);
        var per = r.PerDevice.Select(d => d.Utilisation).OrderDescending().ToList();
        Assert.Equal(1.0, per[0], 12);
        Assert.Equal(1.0 / 3, per[1], 12);
        // More devices than cells: the extra ones stay idle.
        var wide = Run(new[] { Job("a", 50) }, devices: 3);
        Assert.Equal(50, wide.MakespanSeconds, 9);
        Assert.Equal(1.0 / 3, wide.Utilisation, 12);
    }

    [Fact]
    public void Silos_group_devices_and_slots_multiply_capacity()
    {
        var jobs = Enumerable.Range(0, 12).Select(i => Job($"c{i}", 10)).ToList();
        var r = Run(jobs, devices: 5, perSilo: 2);
        Assert.Equal(3, r.Silos);                                   // 2 + 2 + 1 GPUs
        Assert.Equal(5, r.PerDevice.Count);
        Assert.Equal(30, r.MakespanSeconds, 9);                    // ⌈12 / 5⌉ rounds of 10 s
        var two = Run(jobs, devices: 3, slots: 2);
        Assert.Equal(6, two.Slots);
        Assert.Equal(20, two.MakespanSeconds, 9);
        Assert.Equal(1.0, two.Utilisation, 12);
    }

    [Fact]
    public void Only_the_first_cell_of_a_dataset_and_model_pays_the_embedding()
    {
        // One device, three cells reading the same cache entry (embedding 50 s) and one that does not use the cache.
        var jobs = new[] { Job("a", 10, "d|m", 50), Job("b", 10, "d|m", 50), Job("c", 10, "d|m", 50), Job("lora", 20) };
        var r = Run(jobs, devices: 1, hints: false);
        Assert.Equal(50 + 3 * 10 + 20, r.MakespanSeconds, 9);
        Assert.Equal(1, r.EmbeddingsComputed);
        Assert.Equal(0, r.EmbeddingWaitSeconds);
        Assert.Equal(1.0, r.Utilisation, 12);

        // Two entries, one per model: each is computed once.
        var two = Run(new[] { Job("a", 10, "d|m1", 50), Job("b", 10, "d|m2", 30), Job("c", 10, "d|m1", 50) }, devices: 1);
        Assert.Equal(2, two.EmbeddingsComputed);
        Assert.Equal(50 + 30 + 3 * 10, two.MakespanSeconds, 9);
    }

    [Fact]
    public void A_cell_that_finds_the_embedding_being_computed_waits_for_it_holding_its_slot()
    {
        // Two devices, two cells of the same dataset × model: the second starts at 0 and waits 50 s for the first's embedding.
        var r = Run(new[] { Job("a", 10, "d|m", 50), Job("b", 10, "d|m", 50) }, devices: 2, hints: false);
        Assert.Equal(60, r.MakespanSeconds, 9);
        Assert.Equal(50, r.EmbeddingWaitSeconds, 9);
        Assert.Equal(1, r.EmbeddingsComputed);
        Assert.Equal(70, r.BusySeconds, 9);
        Assert.Equal(70.0 / 120, r.Utilisation, 12);
        Assert.Equal(60, r.LowerBoundSeconds, 9);
    }

    [Fact]
    public void Every_attempt_failing_spends_the_retry_budget_through_the_ledgers_backoff()
    {
        var retry = new RetryPolicy { MaxAttempts = 3, InitialBackoff = TimeSpan.FromSeconds(10), BackoffFactor = 2, MaxBackoff = TimeSpan.FromSeconds(100) };
        var r = Run(new[] { Job("a", 100), Job("b", 100) }, devices: 2, failureRate: 1, retry: retry);
        Assert.Equal((0, 2), (r.Done, r.Failed));
        Assert.Equal(6, r.Attempts);
        Assert.Equal(6, r.InjectedFailures);
        Assert.Equal(4, r.Retries);                                // the third failure ends the cell instead
        Assert.Equal(r.BusySeconds, r.WastedSeconds, 9);
        // Each cell: three partial attempts plus the 10 s and 20 s backoffs between them.
        Assert.True(r.MakespanSeconds >= 30 && r.MakespanSeconds <= 30 + 3 * 100, $"makespan {r.MakespanSeconds}");
        Assert.True(r.DispatchRounds >= 3);
    }

    [Fact]
    public void Some_failures_are_retried_until_done_and_the_counts_add_up()
    {
        var jobs = Enumerable.Range(0, 200).Select(i => Job($"c{i}", 60 + i % 7 * 10, $"d{i % 5}", 30)).ToList();
        var r = Run(jobs, devices: 8, failureRate: 0.3, seed: 7);
        Assert.Equal(200, r.Done + r.Failed);
        Assert.True(r.InjectedFailures > 20, $"{r.InjectedFailures} failures");
        Assert.Equal(r.InjectedFailures, r.Retries + r.Failed);     // every failure is either retried or ends its cell
        Assert.Equal(r.Done + r.InjectedFailures, r.Attempts);
        Assert.True(r.Failed < 200 * 0.3 * 0.3);                     // three attempts: a cell fails for good with p = 0.027
        Assert.True(r.WastedSeconds > 0 && r.WastedSeconds < r.BusySeconds);
        Assert.Equal(5, r.EmbeddingsComputed);                       // each entry is completed once; one lost midway is computed again
    }

    [Fact]
    public void The_same_seed_gives_the_same_sweep_and_another_seed_another()
    {
        var jobs = Enumerable.Range(0, 300).Select(i => Job($"c{i}", 30 + i % 11 * 7, $"d{i % 9}", 40, hint: 30 + i % 11 * 7)).ToList();
        static object Key(SimulationResult r) => (r.MakespanSeconds, r.BusySeconds, r.Done, r.Failed, r.Attempts, r.Retries, r.InjectedFailures, r.EmbeddingsComputed,
            r.EmbeddingWaitSeconds, string.Join(",", r.PerDevice.Select(d => d.BusySeconds)));
        var a = Run(jobs, devices: 16, failureRate: 0.2, seed: 42);
        var b = Run(jobs, devices: 16, failureRate: 0.2, seed: 42);
        var c = Run(jobs, devices: 16, failureRate: 0.2, seed: 43);
        Assert.Equal(Key(a), Key(b));
        Assert.NotEqual(Key(a), Key(c));
    }

    [Fact]
    public void Bad_options_and_jobs_are_refused_with_the_reason()
    {
        var jobs = new[] { Job("a", 1) };
        Assert.Contains("devices", Assert.Throws<ArgumentException>(() => Run(jobs, devices: 0)).Message);
        Assert.Contains("failure rate", Assert.Throws<ArgumentException>(() => Run(jobs, devices: 1, failureRate: 1.5)).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => Run(new[] { Job("a", 1), Job("a", 2) }, devices: 1)).Message);
        Assert.Contains("duration", Assert.Throws<ArgumentException>(() => Run(new[] { Job("a", double.NaN) }, devices: 1)).Message);
        Assert.Contains("disagree", Assert.Throws<ArgumentException>(() => Run(new[] { Job("a", 1, "k", 5), Job("b", 1, "k", 6) }, devices: 1)).Message);
        var empty = Run(Array.Empty<SimJob>(), devices: 4);
        Assert.Equal((0, 0.0), (empty.Done, empty.MakespanSeconds));
    }
}
