using System.Text.Json;
using FairMedFM.Client;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Grains;

namespace FairMedFM.Cluster.Tests;

/// <summary>
/// Failures that real clusters have, with real processes on loopback: silo processes, redis-server and CLI processes (see
/// <see cref="ClusterBed"/>). Every claim is checked against the ledger (the sweep grain) and against the computations log the
/// silos append to in the shared cache folder (one record per training start and end, one per backbone pass).
/// </summary>
public sealed class FailureTests(ITestOutputHelper output)
{
    private static readonly TimeSpan MidSweep = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_silo_SIGKILLed_mid_sweep_leaves_every_cell_done_once_with_the_results_of_an_uninterrupted_run()
    {
        await using var bed = await ClusterBed.StartAsync(output);
        await bed.RunAsync(async () =>
        {
            var silos = await bed.StartSilosAsync("cpu", "cpu", "cpu");
            // 300 epochs: trainings of about a second on these cores, so a silo is caught in the middle of one.
            var grid = bed.WriteGrid("kill", seeds: "[0, 1, 2, 3]", epochs: 300);
            var ids = Ids(grid);
            Assert.Equal(16, (await bed.SubmitAsync(grid, "kill")).Added);

            // Mid-sweep: a few cells done, and a silo is training a cell right now (its "started" record has no end yet).
            ComputationRecord? victimTraining = null;
            bool finishedEarly = false;
            await ClusterBed.Until(async () =>
            {
                var cells = await bed.CellsAsync("kill");
                if (cells.All(c => c.State == "done")) return finishedEarly = true;
                if (cells.Count(c => c.State == "done") < 3) return false;
                // The latest started: the most of its training is still ahead.
                var candidate = InFlight(bed.Records()).Where(r => silos.Any(s => s.Owns(r.Origin))).MaxBy(r => r.StartedUtc);
                if (candidate is null) return false;
                // Freeze its silo (SIGSTOP), then look again: still in flight means the SIGKILL below lands mid-training for
                // sure. Otherwise it ended between the two reads: thaw it and wait for another.
                var pid = silos.Single(s => s.Owns(candidate.Origin)).Process.Pid;
                Native.Signal(pid, Native.SIGSTOP);
                bool frozen = false;
                try
                {
                    frozen = InFlight(bed.Records()).Any(r => r.Origin == candidate.Origin && r.CellId == candidate.CellId && r.StartedUtc == candidate.StartedUtc);
                    if (frozen) victimTraining = candidate;
                    return frozen;
                }
                finally { if (!frozen) Native.Signal(pid, Native.SIGCONT); }
            }, MidSweep, "a few cells are done and a silo is training one");
            Assert.False(finishedEarly, "the sweep finished before a silo could be killed in the middle of a training: the trainings are too short");
            var victim = silos.Single(s => s.Owns(victimTraining!.Origin));
            victim.Process.Kill();
            bed.Log($"SIGKILLed {victim.Name} while it trained cell {victimTraining!.CellId}");

            var status = await bed.SettledAsync("kill");
            Assert.Equal((16, 16, 0, 0), (status.Total, status.Done, status.Failed, status.Undefined));
            var cells = await bed.CellsAsync("kill");
            Assert.All(cells, c => Assert.Equal("done", c.State));
            // The interrupted cell was requeued (the lost lease spent an attempt) and finished on a surviving silo.
            var interrupted = cells.Single(c => c.CellId == victimTraining.CellId);
            Assert.True(interrupted.Attempts >= 2, $"cell {interrupted.CellId} ran {interrupted.Attempts} attempt(s)");
            Assert.False(victim.Owns(interrupted.Silo));
            Assert.Contains(victimTraining.CellId, InFlight(bed.Records()).Select(r => r.CellId)); // its training never ended there
            // The dead runner's claim on that cell was taken over once its lease ran out, and released at the end.
            var claim = await (await bed.ClientAsync()).GetGrain<ICellClaimGrain>(victimTraining.CellId!).Get();
            Assert.True(claim.Takeovers >= 1, $"the claim on cell {victimTraining.CellId} was never taken over from the killed silo");
            Assert.Null(claim.Holder);
            // Exactly once: one completed training per cell across all silos (the killed one included).
            bed.AssertTrainedOnce(ids);
            Assert.Single(bed.Embeddings());
            ClusterBed.AssertSlotLimits(bed.Records());

            // The numbers equal an uninterrupted run of the same grid (in this process, fresh cache, no cluster).
            ModelCatalog.RegisterFile(bed.ModelCards);
            var reference = new CellRunner(new Workspace(Path.Combine(bed.Root, "reference-cache"), bed.Weights));
            foreach (var spec in GridSpec.Load(grid).Expand())
            {
                var expected = reference.Run(spec);
                Assert.True(expected.Status == "done", expected.Error);
                AssertSameNumbers(expected, bed.Stored(spec.CellId));
            }
        });
    }

    [Fact]
    public async Task Every_silo_stopped_mid_sweep_and_started_again_resumes_without_recomputing_done_cells()
    {
        await using var bed = await ClusterBed.StartAsync(output);
        await bed.RunAsync(async () =>
        {
            await bed.StartSilosAsync("cpu", "cpu", "cpu");
            // 300 epochs: trainings long enough that the sweep is far from finished when the silos are stopped.
            var grid = bed.WriteGrid("restart", seeds: "[0, 1, 2, 3]", epochs: 300);
            var ids = Ids(grid);
            Assert.Equal(16, (await bed.SubmitAsync(grid, "restart")).Added);
            bool finishedEarly = false;
            await ClusterBed.Until(async () =>
            {
                var s = await bed.StatusAsync("restart");
                if (s.IsSettled) return finishedEarly = true;
                return s.Done >= 4 && InFlight(bed.Records()).Any();
            }, MidSweep, "four cells are done and one is training");
            Assert.False(finishedEarly, "the sweep finished before the silos were stopped: the trainings are too short");

            // SIGTERM at once (the client's own shutdown takes most of a second, in which the silos would go on working).
            bed.Log("mid-sweep: stopping every silo");
            var disconnect = bed.DisconnectAsync();
            await bed.StopSilosAsync();
            await disconnect;
            var stopped = DateTimeOffset.UtcNow;
            var before = bed.Records();
            var doneBefore = before.Where(r => r.Kind == ComputationRecord.Training && r.Status == "done").Select(r => r.CellId!).ToHashSet();
            bed.Log($"every silo stopped (SIGTERM) with {doneBefore.Count} cell(s) trained");
            Assert.InRange(doneBefore.Count, 4, 15);
            Assert.Single(before, r => r.Kind == ComputationRecord.Embedding);

            // New silo processes (new ports, new generations); the sweep wakes from Redis without being submitted again.
            await bed.StartSilosAsync("cpu", "cpu", "cpu");
            var status = await bed.SettledAsync("restart");
            Assert.Equal((16, 16, 0), (status.Total, status.Done, status.Failed));

            var after = bed.Records().Where(r => r.StartedUtc > stopped).ToList();
            // No done cell was trained again, and the backbone did not run again: the embeddings came from the shared cache.
            Assert.DoesNotContain(after, r => r.Kind == ComputationRecord.Training && doneBefore.Contains(r.CellId!));
            Assert.DoesNotContain(after, r => r.Kind == ComputationRecord.Embedding);
            Assert.Equal(16 - doneBefore.Count, after.Count(r => r.Kind == ComputationRecord.Training && r.Status == "done"));
            bed.AssertTrainedOnce(ids);
            var embedding = Assert.Single(bed.Embeddings());
            Assert.Equal(DatasetCatalog.Get(bed.Card).Samples.Count, embedding.Images); // one backbone pass over the data set
            ClusterBed.AssertSlotLimits(bed.Records());
        });
    }

    [Fact]
    public async Task A_Redis_restart_mid_sweep_is_ridden_out_and_the_sweep_completes()
    {
        // Redis keeps an append-only file (fsync always), as a production Redis for Orleans should: membership, grain state
        // (the ledger, the cell claims) and reminders survive its restart.
        await using var bed = await ClusterBed.StartAsync(output, appendOnly: true);
        await bed.RunAsync(async () =>
        {
            await bed.StartSilosAsync("cpu", "cpu");
            // 200 epochs: trainings of a few tenths of a second, so most of the sweep is still ahead when Redis goes down.
            var grid = bed.WriteGrid("redis", seeds: "[0, 1, 2]", epochs: 200);
            var ids = Ids(grid);
            Assert.Equal(12, (await bed.SubmitAsync(grid, "redis")).Added);
            SweepStatus? before = null;
            await ClusterBed.Until(async () => (before = await bed.StatusAsync("redis")).Done >= 3, MidSweep, "three cells are done");

            bed.Redis.Stop();
            bed.Log($"redis stopped: {ClusterBed.Describe(before!)}");
            // Down for a few seconds (an outage, not an assertion): the silos keep computing; writes to Redis fail meanwhile.
            await Task.Delay(TimeSpan.FromSeconds(3));
            Assert.False(await bed.Redis.PingAsync());
            await bed.Redis.StartAsync();
            var restarted = DateTimeOffset.UtcNow;
            bed.Log("redis started again");

            var status = await bed.SettledAsync("redis");
            Assert.Equal((12, 12, 0), (status.Total, status.Done, status.Failed));
            // The sweep went on after the restart (it was not already finished when Redis went down).
            Assert.Contains(bed.Records(), r => r.Kind == ComputationRecord.Training && r.Status == "done" && r.StartedUtc > restarted);
            Assert.All(bed.Silos, s => Assert.False(s.Process.HasExited, $"{s.Name} exited"));
            bed.AssertTrainedOnce(ids);
            ClusterBed.AssertSlotLimits(bed.Records());
        });
    }

    [Fact]
    public async Task The_same_grid_submitted_twice_at_once_computes_each_cell_once_under_one_sweep_id_or_two()
    {
        await using var bed = await ClusterBed.StartAsync(output);
        await bed.RunAsync(async () =>
        {
            // Two slots per silo: four cells at once, so two sweeps over the same cells really run side by side.
            await bed.StartSilosAsync("cpu=2", "cpu=2");

            // One sweep id, two real CLI processes at once: one ledger, the second submission adds nothing.
            var same = bed.WriteGrid("twice", seeds: "[0, 1, 2]");
            var clis = new[]
            {
                bed.StartCli("cli-same-1", "submit", "--grid", same, "--sweep", "twice"),
                bed.StartCli("cli-same-2", "submit", "--grid", same, "--sweep", "twice"),
            };
            await ExitedZero(clis);
            var twice = await bed.SettledAsync("twice");
            Assert.Equal((12, 12), (twice.Total, twice.Done));
            bed.AssertTrainedOnce(Ids(same));

            // Two sweep ids over the same cells, submitted at the same instant by two clients, one cell at a time each: both
            // sweeps want the same head cell at the same moment and get it on different slots (a slot taken by the other sweep
            // answers "busy" and the cell goes to another slot at the next tick), cell after cell. The cell's claim makes the
            // later runner wait and reuse the other's result. (1200 epochs: trainings of a second or more, several
            // 250 ms ticks long, so the later sweep always finds the claim held.)
            var shared = bed.WriteGrid("shared", seeds: "[10, 11, 12]", attributes: "[sex, age60]", epochs: 1200);
            await using (var second = await ClusterConnection.ConnectAsync(null, new Workspace(bed.Cache, bed.Weights), 1, redis: bed.Redis.Connection))
            {
                var first = await bed.ClientAsync();
                var sa = SweepCommands.BuildSubmission(shared, "shared-a", 1, "cpu");
                var sb = SweepCommands.BuildSubmission(shared, "shared-b", 1, "cpu");
                var added = await Task.WhenAll(first.GetGrain<ISweepGrain>("shared-a").Submit(sa), second.Client.GetGrain<ISweepGrain>("shared-b").Submit(sb));
                Assert.All(added, r => Assert.Equal(6, r.Added));
            }
            var a = await bed.SettledAsync("shared-a");
            var b = await bed.SettledAsync("shared-b");
            Assert.Equal((6, 6, 6, 6), (a.Total, a.Done, b.Total, b.Done));
            bed.AssertTrainedOnce(Ids(shared));
            // Each sweep's aggregator holds every cell, whichever sweep computed it (the matrix and `results` read from there).
            var c0 = await bed.ClientAsync();
            foreach (var sweep in new[] { "shared-a", "shared-b" })
            {
                var reported = await c0.GetGrain<IAggregatorGrain>(sweep).GetCells();
                Assert.Equal(Ids(shared).Order(StringComparer.Ordinal), reported.Select(r => r.CellId).Distinct().Order(StringComparer.Ordinal));
            }
            // Both sweeps finished every cell, one computed each, and the other really asked for cells while they were computed.
            var trainedBy = bed.DoneTrainings(Ids(shared)).GroupBy(r => r.Sweep).ToDictionary(g => g.Key!, g => g.Count());
            bed.Log("trainings per sweep: " + string.Join(", ", trainedBy.Select(kv => $"{kv.Key} {kv.Value}")) +
                    $"; mean training {bed.DoneTrainings(Ids(shared)).Average(r => (r.FinishedUtc!.Value - r.StartedUtc).TotalSeconds):0.00} s");
            var client = await bed.ClientAsync();
            var claims = await Task.WhenAll(Ids(shared).Select(id => client.GetGrain<ICellClaimGrain>(id).Get()));
            bed.Log($"claims: {claims.Sum(c => c.Waiters)} wait(s) on {claims.Count(c => c.Waiters > 0)} cell(s), {claims.Sum(c => c.Takeovers)} takeover(s)");
            Assert.True(claims.Sum(c => c.Waiters) > 0, "no runner ever waited on a claim: the two sweeps never raced for a cell, so this run proved nothing");
            Assert.All(claims, c => Assert.Null(c.Holder)); // every claim released

            Assert.Single(bed.Embeddings());
            ClusterBed.AssertSlotLimits(bed.Records(), (_, _) => 2);
        });
    }

    [Fact]
    public async Task A_silo_stops_by_itself_when_its_parent_process_is_gone()
    {
        await using var bed = await ClusterBed.StartAsync(output);
        await bed.RunAsync(async () =>
        {
            // A stand-in parent (a supervisor, or a test host that crashed): the silo watches its PID.
            var parent = bed.StartOther("parent", "/bin/sleep", "600");
            var silo = (await bed.StartSilosAsync([("cpu", parent.Pid)]))[0];
            parent.Kill();
            bed.Log($"parent {parent.Pid} killed");
            await ClusterBed.Until(() => Task.FromResult(silo.Process.HasExited), TimeSpan.FromSeconds(60), "the silo exits");
            Assert.Equal(0, silo.Process.ExitCode); // a graceful stop, not the 15 s fallback exit
            Assert.Contains("parent process", silo.Process.Tail(40));
        });
    }

    private static async Task ExitedZero(ChildProcess[] clis)
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            await Task.WhenAll(clis.Select(c => c.WaitForExitAsync(cts.Token)));
        Assert.All(clis, c => Assert.True(c.ExitCode == 0, $"{c.Name} exited with {c.ExitCode}:\n{c.Tail(20)}"));
    }

    [Fact]
    public async Task With_one_slot_per_device_no_device_ever_runs_two_trainings_at_once()
    {
        await using var bed = await ClusterBed.StartAsync(output);
        await bed.RunAsync(async () =>
        {
            // Three devices with one slot each: cpu and cuda:0 on one silo (cuda slots are scheduled; this CPU build computes on
            // the CPU), cpu on the other. Two sweeps at once, cells placeable on any device.
            var silos = await bed.StartSilosAsync("cpu,cuda:0", "cpu");
            var g1 = bed.WriteGrid("slots-1", seeds: "[0, 1, 2]");
            var g2 = bed.WriteGrid("slots-2", seeds: "[5, 6, 7]");
            await Task.WhenAll(bed.SubmitAsync(g1, "slots-1", device: "any"), bed.SubmitAsync(g2, "slots-2", device: "any"));
            var s1 = await bed.SettledAsync("slots-1");
            var s2 = await bed.SettledAsync("slots-2");
            Assert.Equal((12, 12, 12, 12), (s1.Total, s1.Done, s2.Total, s2.Done));

            var records = bed.Records();
            var peak = ClusterBed.AssertSlotLimits(records);
            bed.Log($"peak concurrent trainings across the cluster: {peak}");
            // The limit held while work really ran in parallel, on every device, and cuda:0 only where it is declared.
            Assert.True(peak >= 2, $"trainings never overlapped anywhere (peak {peak}): the test would prove nothing");
            var trainings = records.Where(r => r.Kind == ComputationRecord.Training && r.Status == "done").ToList();
            Assert.Contains(trainings, r => silos[0].Owns(r.Origin) && r.Device == "cuda:0");
            Assert.Contains(trainings, r => silos[0].Owns(r.Origin) && r.Device == "cpu");
            Assert.Contains(trainings, r => silos[1].Owns(r.Origin) && r.Device == "cpu");
            Assert.DoesNotContain(trainings, r => silos[1].Owns(r.Origin) && r.Device != "cpu");
            bed.AssertTrainedOnce(Ids(g1).Concat(Ids(g2)));
        });
    }

    // ---- helpers ----

    private static List<string> Ids(string grid) => GridSpec.Load(grid).Expand().Select(s => s.CellId).Distinct().ToList();

    /// <summary>Trainings that started and have not ended (no later record of the same cell from the same origin).</summary>
    private static List<ComputationRecord> InFlight(IReadOnlyList<ComputationRecord> records) =>
        records.Where(r => r.Kind == ComputationRecord.Training && r.Status == ComputationRecord.Started)
            .Where(s => !records.Any(e => e.Kind == ComputationRecord.Training && e.Ended && e.Origin == s.Origin && e.CellId == s.CellId && e.StartedUtc == s.StartedUtc))
            .ToList();

    /// <summary>Same data, split, embeddings, selected epoch, threshold and every metric value, interval bound and undefined
    /// reason, overall and per group — bit for bit (both runs are deterministic for a seed).</summary>
    private static void AssertSameNumbers(CellResult expected, CellResult actual)
    {
        Assert.Equal("done", actual.Status);
        Assert.Equal((expected.DataHash, expected.SplitHash, expected.WeightsHash, expected.EmbeddingKey, expected.ConfigHash),
                     (actual.DataHash, actual.SplitHash, actual.WeightsHash, actual.EmbeddingKey, actual.ConfigHash));
        Assert.Equal((expected.SelectedEpoch, expected.Threshold), (actual.SelectedEpoch, actual.Threshold));
        Assert.Equal(Numbers(expected), Numbers(actual));
        Assert.True(expected.Summary!.Count > 10, "the results carry the metric catalogue");
    }

    private static string Numbers(CellResult r) => JsonSerializer.Serialize(new { r.Summary, r.Overall, r.Groups, r.Sizes }, JsonDefaults.Canonical);
}
