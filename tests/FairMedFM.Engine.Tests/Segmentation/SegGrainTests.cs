using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;
using FairMedFM.Engine.Segmentation;
using FairMedFM.Engine.Tests.Cluster;
using FairMedFM.Grains;
using Orleans.TestingHost;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>One in-process silo over a temporary workspace, with small 2-D and 3-D synthetic segmentation datasets and
/// a 2-D one whose label file is missing; the tiny golden SAM is registered in this process, where the silo runs.</summary>
public sealed class SegClusterFixture : IAsyncLifetime
{
    public TempDir Tmp { get; } = new();
    public Workspace Workspace { get; }
    public string Card2D { get; }
    public string Card3D { get; }
    public string Broken { get; }
    public InProcessTestCluster Cluster { get; private set; } = null!;
    public IClusterClient Client => Cluster.Client;

    public SegClusterFixture()
    {
        SegTestSupport.Register();
        Workspace = Tmp.Workspace();
        Card2D = SegTestSupport.Synth2D(Tmp.Sub("seg2d")).CardPath;
        Card3D = SegTestSupport.Synth3D(Tmp.Sub("seg3d")).CardPath;
        var broken = SegTestSupport.Synth2D(Tmp.Sub("broken"), patients: 4, name: "seg2d_broken");
        File.Delete(Path.Combine(broken.Folder, "label", "P0001_00.png"));
        Broken = broken.CardPath;
    }

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddFairMedFM(Workspace, trainingSlots: 1, device: "cpu", sweeps: SweepClusterFixture.Fast));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        await SweepClusterFixture.Until(async () => (await Client.GetGrain<IDeviceRegistryGrain>("cluster").GetSilos()).Count == 1, TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        Tmp.Dispose();
    }

    public string GridFile(string name, string datasets, string models, string usages)
    {
        var path = Tmp.File(name + ".yaml");
        File.WriteAllText(path, $"""
            name: {name}
            datasets: {datasets}
            models: {models}
            usages: {usages}
            methods: [erm]
            attributes: [sex]
            seeds: [0]
            metrics:
              bootstrap: 40
            """);
        return path;
    }
}

[Collection(SegCollection.Name)]
public sealed class SegGrainTests(SegClusterFixture fx) : IClassFixture<SegClusterFixture>
{
    [Fact]
    public async Task A_segmentation_grid_runs_through_the_grains_once_per_image_and_is_idempotent()
    {
        // 3 datasets (2-D, 3-D, one with a missing label file) × {tiny SAM, Otsu} × {bbox, center} prompts.
        var grid = GridSpec.Load(fx.GridFile("seg-grains", $"[\"{fx.Card2D}\", \"{fx.Card3D}\", \"{fx.Broken}\"]",
            $"[{SegTestSupport.TinySam}, {OtsuBaseline.Id}]", "[seg-bbox, seg-center]"));
        int images = SegDatasetCatalog.Get(fx.Card2D).Count + SegDatasetCatalog.Get(fx.Card3D).Count;
        long before = SegEmbeddingStore.EncoderForwardImages;
        var first = await SweepDriver.RunAsync(fx.Client, grid, pollInterval: TimeSpan.FromMilliseconds(100)).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(12, first.Results.Count);
        // The SAM encoder ran once per image (2-D images and 3-D slices) although two prompts and two cells needed each.
        Assert.Equal(images, SegEmbeddingStore.EncoderForwardImages - before);

        var failed = first.Results.Where(r => r.Status != "done").ToList();
        Assert.Equal(4, failed.Count);
        Assert.All(failed, r =>
        {
            Assert.Equal(Path.GetFullPath(fx.Broken), r.Spec.Dataset);
            Assert.Contains("label file not found", r.Error);
            Assert.Contains("P0001_00.png", r.Error);
        });
        var done = first.Results.Where(r => r.Status == "done").ToList();
        Assert.Equal(8, done.Count);
        Assert.All(done, r => Assert.NotNull(r.Summary!["mean_dice"].Value));
        var sam3d = done.Single(r => r.Spec.Dataset == fx.Card3D && r.Spec.Model == SegTestSupport.TinySam && r.Spec.Usage == SegUsages.Box);
        Assert.True(sam3d.Segmentation!.VolumeAggregation);
        Assert.NotNull(sam3d.Summary!["vol_mean_dice"].Value);
        var sam2d = done.Where(r => r.Spec.Dataset == fx.Card2D && r.Spec.Model == SegTestSupport.TinySam).ToList();
        Assert.Single(sam2d.Select(r => r.EmbeddingKey).Distinct());

        // The aggregator builds the datasets × models matrix of a segmentation slice and drills into a cell's records.
        var agg = fx.Client.GetGrain<IAggregatorGrain>(first.AggregatorKey);
        var view = await agg.GetMatrix(SegUsages.Box, "erm", "sex", "mean_dice");
        Assert.Equal(new[] { "seg2d_test", "seg3d_test" }, view.Datasets);
        Assert.Equal(new[] { OtsuBaseline.Id, SegTestSupport.TinySam }.Order(StringComparer.Ordinal), view.Models);
        Assert.Equal(4, view.Cells.Count);
        Assert.All(view.Cells, c => Assert.Equal(new[] { "F", "M" }, c.GroupSizes.Select(g => g.Group)));
        var drill = await agg.GetCell(sam2d[0].CellId, 0, 100);
        Assert.Null(drill!.Error);
        Assert.Equal(8, drill.TotalPredictions);
        Assert.All(drill.Predictions, p => { Assert.Equal(1, p.Label); Assert.InRange(p.Probability, 0, 1); });

        // The output folder: segmentation columns in the Markdown summary, records copied beside each cell.
        var outDir = fx.Tmp.Sub("out");
        ResultWriter.Write(outDir, grid.Name, first.Results);
        var md = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        Assert.Contains("## seg-bbox · erm · attribute `sex`", md);
        Assert.Contains("mean_dice | delta_dice | es_dice", md);
        Assert.Contains("groups: n (+scored/−skipped, empty mask)", md);
        Assert.Contains("label file not found", md);
        Assert.True(File.Exists(Path.Combine(outDir, "cells", sam3d.CellId + ".predictions.csv")));
        Assert.Contains("mean_dice", File.ReadLines(Path.Combine(outDir, "results.csv")).First());

        // Again: every done cell is its stored result, nothing is encoded again.
        before = SegEmbeddingStore.EncoderForwardImages;
        var again = await SweepDriver.RunAsync(fx.Client, grid, pollInterval: TimeSpan.FromMilliseconds(100)).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(before, SegEmbeddingStore.EncoderForwardImages);
        Assert.Equal(done.Select(r => r.FinishedUtc), again.Results.Where(r => r.Status == "done").Select(r => r.FinishedUtc));
    }

    [Fact]
    public async Task A_segmentation_grid_submitted_as_a_durable_sweep_runs_on_the_device_workers()
    {
        var card = SegTestSupport.Synth2D(fx.Tmp.Sub("submitted"), patients: 6, name: "seg2d_submitted", seed: 7).CardPath;
        var path = fx.GridFile("seg-submit", $"[\"{card}\"]", $"[{SegTestSupport.TinySam}, {OtsuBaseline.Id}]", "[seg-rands, seg-bbox]");
        var submission = FairMedFM.Client.SweepCommands.BuildSubmission(path, "seg-submit", null, "cpu");
        Assert.Equal(4, submission.Cells.Count);
        long before = SegEmbeddingStore.EncoderForwardImages;
        var r = await fx.Client.GetGrain<ISweepGrain>("seg-submit").Submit(submission);
        Assert.Equal(4, r.Added);
        SweepStatus s = null!;
        await SweepClusterFixture.Until(async () => (s = await fx.Client.GetGrain<ISweepGrain>("seg-submit").GetStatus()).IsSettled, TimeSpan.FromMinutes(3));
        Assert.Equal((4, 0), (s.Done, s.Failed));
        Assert.Equal(6, SegEmbeddingStore.EncoderForwardImages - before);
        var store = new ResultStore(fx.Workspace.ResultsDir);
        foreach (var c in submission.Cells)
        {
            var res = store.TryGet(c.CellId)!;
            Assert.Equal("done", res.Status);
            Assert.Equal(6, res.Segmentation!.Evaluated);
        }
        var view = await fx.Client.GetGrain<IAggregatorGrain>("seg-submit").GetMatrix(SegUsages.Rands, "erm", "sex", "es_dice");
        Assert.Equal(2, view.Cells.Count);
    }
}
