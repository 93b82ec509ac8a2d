using System.Text.Json;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Grains;
using Orleans.TestingHost;

namespace FairMedFM.Engine.Tests;

/// <summary>One in-process silo (Orleans TestingHost) with the FairMedFM grains over a temporary workspace.</summary>
public sealed class SiloFixture : IAsyncLifetime
{
    // Silo configurators are created by type, so the workspace reaches them through a static field.
    private static Workspace? _workspace;

    public sealed class Configurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo) =>
            silo.AddFairMedFM(_workspace ?? throw new InvalidOperationException("SiloFixture sets the workspace before deploying"), trainingSlots: 1);
    }

    public TempDir Tmp { get; } = new();
    public Workspace Workspace { get; }
    public string TinyCard { get; }
    public TestCluster Cluster { get; private set; } = null!;
    public IGrainFactory Grains => Cluster.GrainFactory;

    public SiloFixture()
    {
        Workspace = Tmp.Workspace();
        TinyCard = TinyData.WriteCard(Tmp.Sub("card"), "silo_tiny");
    }

    public async Task InitializeAsync()
    {
        _workspace = Workspace;
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<Configurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Tmp.Dispose();
    }

    public GridSpec Grid(string name, string attributes = "[sex, age60]", string seeds = "[0, 1]", string? datasets = null,
        string models = "[" + TinyData.Model + "]", string methods = "[erm]")
    {
        var path = Tmp.File(name + ".yaml");
        var yaml = TinyData.GridYaml(name, TinyCard, attributes, seeds, models, methods);
        if (datasets is not null) yaml = yaml.Replace($"datasets: [\"{TinyCard}\"]", "datasets: " + datasets);
        Assert.Contains(datasets ?? TinyCard, yaml);
        File.WriteAllText(path, yaml);
        return GridSpec.Load(path);
    }

    public Task<SweepOutcome> Run(GridSpec grid) =>
        SweepDriver.RunAsync(Grains, grid, pollInterval: TimeSpan.FromMilliseconds(100)).WaitAsync(TimeSpan.FromMinutes(2));
}

[Collection(BackboneCollection.Name)]
public sealed class OrleansSweepTests(SiloFixture fx) : IClassFixture<SiloFixture>
{
    private static void AllDone(SweepOutcome o) =>
        Assert.All(o.Results, r => Assert.True(r.Status == "done", $"{r.Spec.Label}: {r.Error}"));

    private static double Auc(CellResult r) => r.Summary!["overall-auc"].Value!.Value;

    /// <summary>
    /// The whole life of a sweep in order: first run (backbone once per image for 4 cells), the aggregator's matrix,
    /// resubmission (idempotent), more seeds (cache reuse, new cells trained), and a bad attribute beside good cells.
    /// </summary>
    [Fact]
    public async Task A_sweep_runs_through_the_grains_once_and_is_idempotent()
    {
        // 1. tiny card × ResNet × lp × erm × {sex, age60} × seeds {0, 1}
        var grid = fx.Grid("orleans-tiny");
        long before = EmbeddingStore.BackboneForwardImages;
        var first = await fx.Run(grid);
        Assert.Equal(4, first.Results.Count);
        AllDone(first);
        Assert.Equal(TinyData.Rows, EmbeddingStore.BackboneForwardImages - before); // once per image although 4 cells needed it
        Assert.Single(first.Results.Select(r => r.EmbeddingKey).Distinct());
        Assert.True(new Embeddings.EmbeddingStore(fx.Workspace.EmbeddingsDir).Contains(first.Results[0].EmbeddingKey!));
        Assert.Equal(grid.Expand().Select(s => s.CellId), first.Results.Select(r => r.CellId));

        // 2. The aggregator grain holds the 4 cells and builds the matrix over seeds.
        var agg = fx.Grains.GetGrain<IAggregatorGrain>(first.AggregatorKey);
        var cells = await agg.GetCells();
        Assert.Equal(first.Results.Select(r => r.CellId).Order(StringComparer.Ordinal), cells.Select(c => c.CellId));
        Assert.All(cells, c => Assert.Equal(JobPhase.Done, c.Phase));
        var view = await agg.GetMatrix("lp", "erm", "sex", "overall-auc");
        var cell = Assert.Single(view.Cells);
        Assert.Equal(2, cell.Seeds);
        Assert.Equal(0, cell.UndefinedSeeds);
        Assert.Equal(new[] { "silo_tiny" }, view.Datasets);
        Assert.Equal(new[] { TinyData.Model }, view.Models);
        var sexResults = first.Results.Where(r => r.Spec.Attribute == "sex").OrderBy(r => r.Spec.Seed).ToList();
        Assert.Equal(sexResults.Average(Auc), cell.Mean!.Value, 12);
        Assert.NotNull(cell.Std);
        Assert.Contains("±", cell.Text);
        // Group sizes are the first seed's test groups.
        Assert.Equal(sexResults[0].Groups!.Select(g => (g.Group, g.N, g.Positives, g.Negatives)),
            cell.GroupSizes.Select(g => (g.Group, g.N, g.Positives, g.Negatives)));
        Assert.Equal(sexResults[0].Sizes!.Test, cell.GroupSizes.Sum(g => g.N));
        var ageView = await agg.GetMatrix("lp", "erm", "age60", "eod");
        Assert.Equal(new[] { "60+", "<60" }, Assert.Single(ageView.Cells).GroupSizes.Select(g => g.Group).Order(StringComparer.Ordinal));

        // 3. Submitting the same grid again changes nothing.
        before = EmbeddingStore.BackboneForwardImages;
        var again = await fx.Run(fx.Grid("orleans-tiny"));
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.Equal(first.Results.Select(r => r.CellId), again.Results.Select(r => r.CellId));
        Assert.Equal(first.Results.Select(r => r.FinishedUtc), again.Results.Select(r => r.FinishedUtc));
        Assert.Equal(first.Results.Select(Auc), again.Results.Select(Auc));
        Assert.Equal(4, (await agg.GetCells()).Count);

        // 4. One more seed: no backbone work, but the two new cells are trained.
        var startedExtra = DateTimeOffset.UtcNow;
        before = EmbeddingStore.BackboneForwardImages;
        var more = await fx.Run(fx.Grid("orleans-tiny", seeds: "[0, 1, 2]"));
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.Equal(6, more.Results.Count);
        AllDone(more);
        var oldIds = first.Results.Select(r => r.CellId).ToHashSet();
        var fresh = more.Results.Where(r => !oldIds.Contains(r.CellId)).ToList();
        Assert.Equal(2, fresh.Count);
        Assert.All(fresh, r =>
        {
            Assert.Equal(2, r.Spec.Seed);
            Assert.Equal(first.Results[0].EmbeddingKey, r.EmbeddingKey);
            Assert.True(r.StartedUtc >= startedExtra, "a new cell was not trained in this sweep");
            Assert.Equal(TinyCellFixture.Training.Epochs, r.History!.Count);
        });
        Assert.Equal(first.Results.Select(r => r.FinishedUtc), more.Results.Where(r => oldIds.Contains(r.CellId)).Select(r => r.FinishedUtc));
        Assert.Equal(3, (await agg.GetMatrix("lp", "erm", "sex", "overall-auc")).Cells.Single().Seeds);

        // 5. A bad attribute fails its cells; the good ones in the same sweep finish.
        before = EmbeddingStore.BackboneForwardImages;
        var mixed = await fx.Run(fx.Grid("orleans-mixed", attributes: "[sex, ethnicity, age_bins]", seeds: "[0]"));
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.Equal(3, mixed.Results.Count);
        var bad = Assert.Single(mixed.Results, r => r.Status != "done");
        Assert.Equal("ethnicity", bad.Spec.Attribute);
        Assert.Contains("attribute 'ethnicity'", bad.Error);
        Assert.Contains("sex, age60, age_bins, sex_x_age60", bad.Error);
        Assert.All(mixed.Results.Where(r => r != bad), r => Assert.Equal("done", r.Status));
        var mixedCells = await fx.Grains.GetGrain<IAggregatorGrain>(mixed.AggregatorKey).GetCells();
        Assert.Equal(JobPhase.Failed, mixedCells.Single(c => c.Attribute == "ethnicity").Phase);
        Assert.Contains("ethnicity", mixedCells.Single(c => c.Attribute == "ethnicity").Error);
        // A matrix over the failed attribute is empty rather than wrong.
        Assert.Empty((await fx.Grains.GetGrain<IAggregatorGrain>(mixed.AggregatorKey).GetMatrix("lp", "erm", "ethnicity", "overall-auc")).Cells);
    }

    /// <summary>Every kind of bad input in one sweep: each bad cell fails with its own reason, the one good cell finishes.</summary>
    [Fact]
    public async Task Bad_inputs_fail_their_cells_while_the_good_cell_finishes()
    {
        // Its own good card, so the forward count of the other test does not depend on which runs first.
        var good = TinyData.WriteCard(fx.Tmp.Sub("good"), "silo_tiny_b");
        var noColumn = BadCards.MissingColumn(fx.Tmp.Sub("nocol"));
        var noImage = BadCards.MissingImage(fx.Tmp.Sub("noimg"));
        var corrupt = BadCards.CorruptImage(fx.Tmp.Sub("corrupt"));
        var grid = fx.Grid("orleans-bad",
            datasets: $"[\"{good}\", \"{noColumn}\", \"{noImage}\", \"{corrupt}\"]",
            models: $"[{TinyData.Model}, no-such-model]", methods: "[erm, fairdro]", attributes: "[sex, ethnicity]", seeds: "[0]");
        var outcome = await fx.Run(grid);
        Assert.Equal(32, outcome.Results.Count);

        foreach (var r in outcome.Results)
        {
            var s = r.Spec;
            // Precedence follows the grain's stages: dataset load, then the spec (method, attribute), then the backbone.
            string? expected =
                s.Dataset == noColumn ? "column 'sex'" :
                s.Dataset == noImage ? Path.Combine(TestPaths.NihDir, BadCards.MissingImageRel) :
                s.Method == "fairdro" ? "method 'fairdro'" :
                s.Attribute == "ethnicity" ? "attribute 'ethnicity'" :
                s.Model == "no-such-model" ? "unknown model 'no-such-model'" :
                s.Dataset == corrupt ? BadCards.CorruptImagePath(corrupt) :
                null;
            if (expected is null)
                Assert.True(r.Status == "done", $"{s.Label}: {r.Error}");
            else
            {
                Assert.True(r.Status == "failed", $"{s.Label} should have failed with {expected}");
                Assert.Contains(expected, r.Error);
            }
        }
        Assert.Single(outcome.Results, r => r.Status == "done");
        var summaries = await fx.Grains.GetGrain<IAggregatorGrain>(outcome.AggregatorKey).GetCells();
        Assert.Equal(32, summaries.Count);
        Assert.Equal(31, summaries.Count(c => c.Phase == JobPhase.Failed));
    }

    /// <summary>
    /// A long-running silo must notice edited data: after the CSV changes, resubmitting the grid gives results on the new
    /// data (new data hash, embeddings of the new data), not the stored results of the old data.
    /// </summary>
    [Fact]
    public async Task Editing_the_data_between_sweeps_recomputes_on_the_new_data()
    {
        // A third of the tiny card keeps the two backbone passes short; a fixed threshold does not need both classes in validation.
        var lines = TinyData.CsvLines.Where((_, i) => i == 0 || i % 3 == 1).ToArray();
        var dir = fx.Tmp.Sub("edited");
        var card = TinyData.WriteCard(dir, "silo_edited", lines);
        var gridPath = fx.Tmp.File("orleans-edited.yaml");
        File.WriteAllText(gridPath, TinyData.GridYaml("orleans-edited", card, attributes: "[sex]", seeds: "[0]", extra: "metrics:\n  threshold: fixed"));
        var before = await fx.Run(GridSpec.Load(gridPath));
        AllDone(before);
        var oldHash = before.Results[0].DataHash;

        // Same images and row count, two labels flipped: a different dataset.
        int y = Array.IndexOf(TinyData.Header, "label_abnormal");
        var edited = lines.Select((l, i) =>
        {
            if (i is not (1 or 2)) return l;
            var f = l.Split(',');
            f[y] = f[y] == "1" ? "0" : "1";
            return string.Join(',', f);
        });
        var csv = Path.Combine(dir, "silo_edited.csv");
        File.WriteAllText(csv, string.Join("\n", edited) + "\n");
        File.SetLastWriteTimeUtc(csv, DateTime.UtcNow.AddSeconds(5)); // a visible change even on coarse file-time clocks
        var newHash = DatasetCatalog.Get(card).DataHash;
        Assert.NotEqual(oldHash, newHash);

        long forwards = EmbeddingStore.BackboneForwardImages;
        var after = await fx.Run(GridSpec.Load(gridPath));
        AllDone(after);
        var r = after.Results[0];
        Assert.Equal(newHash, r.DataHash);
        Assert.NotEqual(before.Results[0].FinishedUtc, r.FinishedUtc);
        Assert.NotEqual(before.Results[0].EmbeddingKey, r.EmbeddingKey);
        Assert.Equal(lines.Length - 1, EmbeddingStore.BackboneForwardImages - forwards);
        // The stored predictions carry the new labels.
        var preds = File.ReadAllLines(r.PredictionsFile!).Skip(1).Select(l => l.Split(',')).ToList();
        var data = DatasetCatalog.Get(card);
        Assert.All(preds, p => Assert.Equal(data.Samples[int.Parse(p[0])].Label.ToString(), p[4]));
    }

    [Fact]
    public async Task A_request_whose_cell_id_does_not_match_its_spec_is_rejected()
    {
        var spec = fx.Grid("orleans-ids").Expand()[0];
        var json = JsonSerializer.Serialize(spec, JsonDefaults.Canonical);
        var other = spec with { Seed = 99 };

        // Grain key and request id agree, but the specification hashes to another cell.
        var status = await fx.Grains.GetGrain<IExperimentGrain>(other.CellId).Start(new CellRequest(other.CellId, json, "orleans-ids"));
        Assert.Equal(JobPhase.Failed, status.Phase);
        Assert.Contains("cell id mismatch", status.Error);
        Assert.Contains(spec.CellId, status.Error);

        // The request names the right cell but is sent to another grain.
        var wrongGrain = await fx.Grains.GetGrain<IExperimentGrain>("0123456789abcdef").Start(new CellRequest(spec.CellId, json, "orleans-ids"));
        Assert.Equal(JobPhase.Failed, wrongGrain.Phase);
        Assert.Contains("cell id mismatch", wrongGrain.Error);

        // Not a specification at all.
        var garbage = await fx.Grains.GetGrain<IExperimentGrain>("fedcba9876543210").Start(new CellRequest("fedcba9876543210", "{ nope", "orleans-ids"));
        Assert.Equal(JobPhase.Failed, garbage.Phase);
        Assert.False(string.IsNullOrEmpty(garbage.Error));

        // Nothing was run or reported for them.
        Assert.Empty(await fx.Grains.GetGrain<IAggregatorGrain>("orleans-ids").GetCells());
        Assert.Null(new ResultStore(fx.Workspace.ResultsDir).TryGet(other.CellId));
    }
}
