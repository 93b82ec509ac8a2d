using System.Text.Json;
using System.Text.RegularExpressions;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>
/// grids/seg_synthetic_demo.yaml: it loads and expands, the synth-seg commands in its comments write the card it names,
/// and it runs end to end on freshly written synthetic data (2-D and 3-D) printing per-group Dice/IoU/HD95 with intervals.
/// </summary>
[Collection(SegCollection.Name)]
public sealed partial class SegDemoGridTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private static string GridPath => Path.Combine(TestPaths.RepoRoot, "grids", "seg_synthetic_demo.yaml");

    public void Dispose() => _tmp.Dispose();

    [GeneratedRegex(@"fairmedfm synth-seg --out (\S+)(?<d3> --3d)?")]
    private static partial Regex SynthCommand();

    [Fact]
    public void The_segmentation_demo_grid_loads_expands_and_names_the_card_its_synth_seg_command_writes()
    {
        var grid = GridSpec.Load(GridPath);
        var cells = grid.Expand();
        Assert.Equal(grid.Datasets.Count * grid.Models.Count * grid.Usages.Count * grid.Methods.Count * grid.Attributes.Count * grid.Seeds.Count, cells.Count);
        Assert.Equal(SegUsages.All, grid.Usages);
        Assert.All(grid.Usages, u => Assert.True(SegUsages.IsSegmentation(u), u));
        Assert.Equal(new[] { "erm" }, grid.Methods);
        // Runnable without downloaded weights: every model is a segmentation model and none needs a checkpoint.
        Assert.All(grid.Models, m => Assert.True(SegModelCatalog.TryGet(m) is { IsBaseline: true }, $"{m} needs weights"));
        Assert.Contains(OtsuBaseline.Id, grid.Models);
        Assert.True(grid.Metrics.Bootstrap > 0, "the demo prints intervals");
        Assert.All(cells, c => Assert.Null(c.Lora));

        // The commands in the grid's comments (run from the repository root) write exactly the card the grid reads.
        var commands = SynthCommand().Matches(File.ReadAllText(GridPath)).ToList();
        var twoD = Assert.Single(commands, m => !m.Groups["d3"].Success);
        Assert.Equal(Path.GetFullPath(Path.Combine(TestPaths.RepoRoot, twoD.Groups[1].Value, "card.yaml")), Assert.Single(cells.Select(c => c.Dataset).Distinct()));
        Assert.Single(commands, m => m.Groups["d3"].Success);
        // Its attributes are ones the synthetic card defines.
        var card = SegTestSupport.Synth2D(_tmp.Sub("attrs"), patients: 2).CardPath;
        var defined = FairMedFM.Data.Segmentation.SegmentationDataset.Load(card, hashFiles: false).AttributeNames;
        Assert.All(grid.Attributes, a => Assert.Contains(a, defined));
    }

    [Fact]
    public async Task One_patient_per_group_prints_no_interval_in_the_main_table_too()
    {
        // Two patients of one image each, one per sex: the bootstrap cannot vary either group, so no interval anywhere.
        var d2 = _tmp.File("onepatient");
        Assert.Equal(0, (await CliRunner.Run("synth-seg", "--out", d2, "--patients", "2", "--items-per-patient", "1")).Code);
        var grid = _tmp.File("one.yaml");
        File.WriteAllText(grid, $"name: one\ndatasets: [\"{Path.Combine(d2, "card.yaml")}\"]\nmodels: [otsu-threshold]\nusages: [seg-bbox]\nattributes: [sex]\nnormalization: dataset\nmetrics:\n  bootstrap: 50\n");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", _tmp.File("out1"), "--cache", _tmp.File("cache1"), "--plain");
        Assert.True(code == 0, output);
        // The main table (from the aggregator grain) and the per-group table both say why, never a bare value.
        var main = output[..output.IndexOf(": per group", StringComparison.Ordinal)];
        Assert.Contains("[no interval: 1 patient]", main);
        Assert.Contains("[no interval: 1 patient]", output[output.IndexOf(": per group", StringComparison.Ordinal)..]);
        Assert.DoesNotMatch(@"\[\d\.\d{3}, \d\.\d{3}\]", output);
    }

    [Fact]
    public async Task The_segmentation_demo_grid_runs_on_synthetic_data_and_prints_per_group_values_with_intervals()
    {
        var d2 = _tmp.File("synth2d");
        Assert.Equal(0, (await CliRunner.Run("synth-seg", "--out", d2, "--patients", "6", "--items-per-patient", "1")).Code);
        var cache = _tmp.File("cache");
        var out2 = _tmp.File("out2d");
        var (code, output) = await CliRunner.Run("run", "--grid", GridPath, "--card", Path.Combine(d2, "card.yaml"), "--out", out2, "--cache", cache, "--plain");
        Assert.True(code == 0, output);
        var grid = GridSpec.Load(GridPath);
        int expected = grid.Models.Count * grid.Usages.Count * grid.Attributes.Count * grid.Seeds.Count;
        Assert.Contains($"{expected} done, 0 failed", output);
        var results = JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(out2, "results.json")), JsonDefaults.Pretty)!;
        Assert.Equal(expected, results.Count);
        foreach (var usage in grid.Usages)
        foreach (var attribute in grid.Attributes)
        {
            Assert.Contains($"{usage} · erm · attribute {attribute}: per group", output);
            // The printed per-group values are the results' own (mean over seeds, mean of the per-seed bounds).
            foreach (var metric in new[] { "dice", "iou", "hd95" })
            {
                var rows = FairnessMatrix.GroupValues(results, usage, "erm", attribute, metric);
                Assert.NotEmpty(rows);
                foreach (var row in rows)
                {
                    var text = row.Cell.Format();
                    // With its interval; a group of one patient (one image each here) has none, and says so.
                    if (row.Cell.GroupSizes[0].N >= 2) Assert.Matches(@"\[\d+\.\d{3}, \d+\.\d{3}\]", text);
                    else Assert.Contains("[no interval: 1 patient]", text);
                    Assert.Contains(text, output);
                }
            }
        }
        Assert.Contains("Dice gap", output);
        Assert.Contains("HD95 (px)", output);
        Assert.DoesNotContain("Dice per volume", output); // 2-D images: no volumes
        var summary = File.ReadAllText(Path.Combine(out2, "summary.md"));
        Assert.Contains("| dataset | model | group | n (+scored/−skipped) | dice | dice-ref | iou | hd95 |", summary);
        Assert.Contains("resamples stratified by group, clustered by patient", summary); // no class label in segmentation strata

        // 3-D: slices aggregate per volume, and the per-volume Dice is printed per group too.
        var d3 = _tmp.File("synth3d");
        Assert.Equal(0, (await CliRunner.Run("synth-seg", "--out", d3, "--3d", "--patients", "4", "--volume-shape", "24,24,6")).Code);
        var out3 = _tmp.File("out3d");
        (code, output) = await CliRunner.Run("run", "--grid", GridPath, "--card", Path.Combine(d3, "card.yaml"), "--out", out3, "--cache", cache, "--plain");
        Assert.True(code == 0, output);
        Assert.Contains("Dice per volume", output);
        results = JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(out3, "results.json")), JsonDefaults.Pretty)!;
        var vol = FairnessMatrix.GroupValues(results, SegUsages.Box, "erm", "sex", "vol_dice");
        Assert.Equal(new[] { "F", "M" }, vol.Select(v => v.Group));
        Assert.All(vol, v => Assert.Contains(v.Cell.Format(), output));
        Assert.All(results, r => Assert.True(r.Segmentation!.VolumeAggregation));
        Assert.Contains("vol_dice", File.ReadAllText(Path.Combine(out3, "summary.md")));
    }
}
