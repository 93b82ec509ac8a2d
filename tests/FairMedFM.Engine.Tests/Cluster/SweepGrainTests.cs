using System.Text.Json;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Scheduling;
using FairMedFM.Grains;
using Orleans.TestingHost;

namespace FairMedFM.Engine.Tests.Cluster;

/// <summary>In-process cluster (two silos: one with <c>cpu</c>, one with <c>cpu</c> and <c>cuda:0</c>) for the durable sweep grain,
/// with fast pacing; cells use the tiny timm ViT over the tiny NIH card, so each trains in well under a second.</summary>
public sealed class SweepClusterFixture : IAsyncLifetime
{
    public static readonly SweepOptions Fast = new()
    {
        Tick = TimeSpan.FromMilliseconds(100), Announce = TimeSpan.FromMilliseconds(300),
        Retry = new RetryPolicy { MaxAttempts = 2, InitialBackoff = TimeSpan.FromMilliseconds(200), MaxBackoff = TimeSpan.FromSeconds(1), Lease = TimeSpan.FromSeconds(20) },
    };

    public TempDir Tmp { get; } = new();
    public Workspace Workspace { get; }
    public string Card { get; }
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public IClusterClient Client => Cluster.Client;
    private int _silos;

    public SweepClusterFixture()
    {
        UsageTestModels.Register();
        Workspace = Tmp.Workspace();
        Card = TinyData.WriteCard(Tmp.Sub("card"), "sweep_tiny");
    }

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
            silo.AddFairMedFM(Workspace, trainingSlots: 1, device: Interlocked.Increment(ref _silos) == 1 ? "cpu" : "cpu,cuda:0", sweeps: Fast));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        // Both silos announced their devices.
        await Until(async () => (await Client.GetGrain<IDeviceRegistryGrain>("cluster").GetSilos()).Count == 2, TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Tmp.Dispose();
    }

    public SweepSubmission Submission(string sweep, string attributes = "[sex, age60]", string seeds = "[0]", string device = "cpu", int? parallelism = null,
        string? card = null)
    {
        var path = Tmp.File(sweep + "-" + Guid.NewGuid().ToString("N")[..6] + ".yaml");
        File.WriteAllText(path, TinyData.GridYaml(sweep, card ?? Card, attributes, seeds, models: "[" + UsageTestModels.Vit + "]"));
        return FairMedFM.Client.SweepCommands.BuildSubmission(path, sweep, parallelism, device);
    }

    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var end = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > end) throw new TimeoutException("condition not met in " + timeout);
            await Task.Delay(100);
        }
    }

    public async Task<SweepStatus> Settled(string sweep, TimeSpan? timeout = null)
    {
        SweepStatus s = null!;
        await Until(async () => (s = await Client.GetGrain<ISweepGrain>(sweep).GetStatus()).IsSettled, timeout ?? TimeSpan.FromMinutes(2));
        return s;
    }

    public CellResult Stored(string cellId) => new ResultStore(Workspace.ResultsDir).TryGet(cellId) ?? throw new InvalidOperationException($"no result for {cellId}");
}

[Collection(BackboneCollection.Name)]
public sealed class SweepGrainTests(SweepClusterFixture fx) : IClassFixture<SweepClusterFixture>
{
    [Fact]
    public async Task A_sweep_runs_is_idempotent_extends_without_recompute_and_answers_matrix_queries()
    {
        var sweep = fx.Client.GetGrain<ISweepGrain>("sg-life");
        var first = fx.Submission("sg-life");
        // Two clients submit the same grid at once: one ledger, each cell once.
        var results = await Task.WhenAll(sweep.Submit(first), sweep.Submit(first));
        Assert.Equal(2, results.Sum(r => r.Added));
        Assert.Equal(2, results.Sum(r => r.AlreadyKnown));
        var s = await fx.Settled("sg-life");
        Assert.Equal((2, 2, 0, 0), (s.Total, s.Done, s.Failed, s.Undefined));
        var cells = await sweep.GetCells();
        Assert.All(cells, c => Assert.Equal(("done", 1), (c.State, c.Attempts)));
        var finished = first.Cells.ToDictionary(c => c.CellId, c => fx.Stored(c.CellId).FinishedUtc);

        // Resubmitting changes nothing; extending adds only the new seed's cells; done cells are not recomputed.
        var again = await sweep.Submit(first);
        Assert.Equal((0, 2), (again.Added, again.AlreadyKnown));
        var grown = await sweep.Submit(fx.Submission("sg-life", seeds: "[0, 1]"));
        Assert.Equal((2, 2, 4), (grown.Added, grown.AlreadyKnown, grown.Total));
        s = await fx.Settled("sg-life");
        Assert.Equal(4, s.Done);
        Assert.All(first.Cells, c => Assert.Equal(finished[c.CellId], fx.Stored(c.CellId).FinishedUtc));
        Assert.All(await sweep.GetCells(), c => Assert.Equal(1, c.Attempts));

        // The aggregator (keyed by the sweep id) filled as cells finished; queries by usage/method/attribute/metric.
        var agg = fx.Client.GetGrain<IAggregatorGrain>("sg-life");
        Assert.Equal(4, (await agg.GetCells()).Count);
        var sexAuc = Assert.Single(await agg.Query(new MatrixQuery("lp", "erm", "sex", "overall-auc")));
        Assert.Equal(2, Assert.Single(sexAuc.Cells).Seeds);
        var all = await agg.Query(new MatrixQuery(Metric: "auc-gap"));
        Assert.Equal(new[] { "age60", "sex" }, all.Select(v => v.Attribute).Order(StringComparer.Ordinal));
        Assert.True((await agg.Query(new MatrixQuery(Attribute: "sex"))).Count > 5); // every metric of the slice

        // Drill-down: the stored per-sample predictions with the cell's group labels.
        var id = first.Cells[0].CellId;
        var d = await agg.GetCell(id[..10], 0, 5);
        Assert.NotNull(d);
        Assert.Null(d!.Error);
        Assert.Equal(id, d.Cell.CellId);
        var stored = fx.Stored(id);
        Assert.Equal(stored.Sizes!.Validation + stored.Sizes.Test, d.TotalPredictions);
        Assert.Equal(5, d.Predictions.Count);
        var data = DatasetCatalog.Get(fx.Card);
        var attr = d.Cell.Attribute;
        Assert.All(d.Predictions, p =>
        {
            Assert.Equal(data.Samples[p.Index].Groups[attr], p.Group);
            Assert.Equal(data.Samples[p.Index].Label, p.Label);
            Assert.InRange(p.Probability, 0, 1);
        });
        Assert.Null(await agg.GetCell("ffffffffffffffff", 0, 5));

        // The index lists the sweep as settled.
        Assert.Contains(await fx.Client.GetGrain<ISweepIndexGrain>("all").List(), e => e.SweepId == "sg-life" && e.Settled);
    }

    [Fact]
    public async Task A_sweep_resumes_from_storage_after_its_grain_is_deactivated()
    {
        var sweep = fx.Client.GetGrain<ISweepGrain>("sg-resume");
        var sub = fx.Submission("sg-resume", attributes: "[sex, age60, age_bins]", parallelism: 1);
        await sweep.Submit(sub);
        await SweepClusterFixture.Until(async () => (await sweep.GetStatus()).Done >= 1, TimeSpan.FromMinutes(1));
        await fx.Cluster.DeactivateAsync(sweep);
        await fx.Cluster.WaitForDeactivationAsync(sweep);
        // The next call re-activates it from storage; it carries on without running any cell twice.
        var s = await fx.Settled("sg-resume");
        Assert.Equal(3, s.Done);
        Assert.Equal(1, s.Parallelism);
        Assert.All(await sweep.GetCells(), c => Assert.Equal(1, c.Attempts));
    }

    [Fact]
    public async Task Failed_cells_are_permanent_when_input_is_bad_and_rerun_after_the_fix()
    {
        var dir = fx.Tmp.Sub("rerun-card");
        var card = TinyData.WriteCard(dir, "sweep_rerun");
        var sweep = fx.Client.GetGrain<ISweepGrain>("sg-rerun");
        await sweep.Submit(fx.Submission("sg-rerun", attributes: "[sex, grp]", card: card));
        var s = await fx.Settled("sg-rerun");
        Assert.Equal((1, 1), (s.Done, s.Failed));
        var bad = (await sweep.GetCells()).Single(c => c.State == "failed");
        Assert.Equal(1, bad.Attempts); // bad input is not retried
        Assert.Contains("attribute 'grp'", bad.Reason);

        // The user adds the attribute to the card; only the failed cell runs again.
        var done = (await sweep.GetCells()).Single(c => c.State == "done");
        var doneFinished = fx.Stored(done.CellId).FinishedUtc;
        var yaml = File.ReadAllText(card).Replace("intersections:", "  - name: grp\n    column: sex\n    kind: categorical\n    map: {M: \"a\", F: \"b\"}\nintersections:");
        File.WriteAllText(card, yaml);
        File.SetLastWriteTimeUtc(card, DateTime.UtcNow.AddSeconds(5));
        Assert.Contains("grp", DatasetCatalog.Get(card).AttributeNames);
        Assert.Equal(1, await sweep.RerunFailed());
        s = await fx.Settled("sg-rerun");
        Assert.Equal((2, 0), (s.Done, s.Failed));
        var rerun = (await sweep.GetCells()).Single(c => c.CellId == bad.CellId);
        Assert.Equal(("done", 1), (rerun.State, rerun.Attempts));
        Assert.Contains("attribute 'grp'", Assert.Single(rerun.Errors));
        Assert.Equal(doneFinished, fx.Stored(done.CellId).FinishedUtc);
        Assert.Equal(0, await sweep.RerunFailed());
    }

    [Fact]
    public async Task Cells_needing_cuda_run_only_on_the_silo_that_declares_it_and_a_missing_kind_waits()
    {
        var silos = await fx.Client.GetGrain<IDeviceRegistryGrain>("cluster").GetSilos();
        var gpuSilo = Assert.Single(silos, s => s.Devices.Any(d => d.Device == "cuda:0")).Silo;
        var sweep = fx.Client.GetGrain<ISweepGrain>("sg-cuda");
        await sweep.Submit(fx.Submission("sg-cuda", attributes: "[sex, age60, age_bins]", device: "cuda"));
        var s = await fx.Settled("sg-cuda");
        Assert.Equal(3, s.Done);
        Assert.All(await sweep.GetCells(), c => Assert.Equal((gpuSilo, "cuda:0"), (c.Silo, c.Device)));

        var none = fx.Client.GetGrain<ISweepGrain>("sg-cuda1");
        await none.Submit(fx.Submission("sg-cuda1", attributes: "[sex]", device: "cuda:1"));
        await SweepClusterFixture.Until(async () => (await none.GetStatus()).Warnings.Count > 0, TimeSpan.FromSeconds(30));
        var st = await none.GetStatus();
        Assert.Equal((1, 0), (st.Pending, st.Running));
        Assert.Contains("cuda:1", Assert.Single(st.Warnings));
        Assert.Equal(1, await none.Cancel());
        Assert.True((await none.GetStatus()).IsSettled);
    }

    [Fact]
    public async Task Cancel_and_parallelism_change_while_running()
    {
        var sweep = fx.Client.GetGrain<ISweepGrain>("sg-cancel");
        await sweep.Submit(fx.Submission("sg-cancel", attributes: "[sex, age60, age_bins, sex_x_age60]", seeds: "[5, 6]", parallelism: 1));
        await SweepClusterFixture.Until(async () => (await sweep.GetStatus()).Running == 1, TimeSpan.FromMinutes(1));
        var st = await sweep.GetStatus();
        Assert.True(st.Running <= 1);
        await sweep.SetParallelism(2);
        Assert.Equal(2, (await sweep.GetStatus()).Parallelism);
        var n = await sweep.Cancel();
        Assert.True(n >= 1);
        st = await sweep.GetStatus();
        Assert.True(st.IsSettled);
        Assert.True(st.Cancelled >= 1);
        Assert.Equal(8, st.Total);
        // A resubmission revives the cancelled cells, and everything finishes.
        var r = await sweep.Submit(fx.Submission("sg-cancel", attributes: "[sex, age60, age_bins, sex_x_age60]", seeds: "[5, 6]"));
        Assert.True(r.Revived >= 1);
        var done = await fx.Settled("sg-cancel");
        Assert.Equal(8, done.Done + done.Cancelled);
    }

    [Fact]
    public async Task A_submission_whose_cell_ids_do_not_match_their_specifications_is_rejected_whole()
    {
        var sub = fx.Submission("sg-bad");
        var forged = sub with { Cells = sub.Cells.Select((c, i) => i == 1 ? c with { CellId = "0123456789abcdef" } : c).ToList() };
        var e = await Assert.ThrowsAsync<ArgumentException>(() => fx.Client.GetGrain<ISweepGrain>("sg-bad").Submit(forged));
        Assert.Contains("cell id mismatch", e.Message);
        Assert.False((await fx.Client.GetGrain<ISweepGrain>("sg-bad").GetStatus()).Exists);
        await Assert.ThrowsAsync<ArgumentException>(() => fx.Client.GetGrain<ISweepGrain>("sg-bad").Submit(sub with { Cells = sub.Cells.Select(c => c with { Requirement = "gpu" }).ToList() }));
        await Assert.ThrowsAsync<ArgumentException>(() => fx.Client.GetGrain<ISweepGrain>("other").Submit(sub));
    }
}
