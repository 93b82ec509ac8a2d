using System.Text.Json;
using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary><c>fairmedfm synth-seg</c>, then <c>run</c> and <c>submit</c> of a segmentation grid in the embedded silo.</summary>
[Collection(SegCollection.Name)]
public sealed class SegCliTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public SegCliTests() => SegTestSupport.Register();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public async Task Synth_seg_writes_a_dataset_with_its_card_in_2d_and_3d()
    {
        var d2 = _tmp.File("s2");
        var (code, output) = await CliRunner.Run("synth-seg", "--out", d2, "--patients", "4", "--items-per-patient", "2", "--contrast-factor", "0.3", "--size", "48");
        Assert.True(code == 0, output);
        Assert.Contains("wrote 8 images of 4 patients", output);
        var data = SegmentationDataset.Load(Path.Combine(d2, "card.yaml"));
        Assert.Equal(8, data.Count);
        Assert.Equal(48, data.LoadItem(0).Width);
        Assert.Contains("\"contrast_factor\": 0.3", File.ReadAllText(Path.Combine(d2, "synthetic.json")));

        var d3 = _tmp.File("s3");
        (code, output) = await CliRunner.Run("synth-seg", "--out", d3, "--3d", "--patients", "2", "--volume-shape", "24,24,6", "--affected-sex", "M");
        Assert.True(code == 0, output);
        var vol = SegmentationDataset.Load(Path.Combine(d3, "card.yaml"));
        Assert.All(vol.Samples, s => Assert.True(s.FromVolume));
        Assert.Contains("sex M", File.ReadAllText(Path.Combine(d3, "card.yaml")));

        (code, output) = await CliRunner.Run("synth-seg", "--out", _tmp.File("bad"), "--volume-shape", "24,24,6");
        Assert.Equal(2, code);
        Assert.Contains("--volume-shape needs --3d", output);
        (code, output) = await CliRunner.Run("synth-seg", "--out", _tmp.File("bad2"), "--contrast-factor", "0");
        Assert.Equal(2, code);
        Assert.Contains("--contrast-factor must be a positive number", output);
    }

    [Fact]
    public async Task Run_and_submit_a_segmentation_grid_in_the_embedded_silo()
    {
        var data = _tmp.File("data");
        Assert.Equal(0, (await CliRunner.Run("synth-seg", "--out", data, "--patients", "6", "--items-per-patient", "1", "--seed", "11")).Code);
        var grid = _tmp.File("seg.yaml");
        File.WriteAllText(grid, $"""
            name: seg-cli
            datasets: ["{Path.Combine(data, "card.yaml")}"]
            models: [{SegTestSupport.TinySam}, {OtsuBaseline.Id}]
            usages: [seg-bbox]
            attributes: [sex]
            normalization: dataset
            metrics:
              bootstrap: 30
            """);
        var cache = _tmp.File("cache");
        var outDir = _tmp.File("out");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", cache, "--plain");
        Assert.True(code == 0, output);
        Assert.Contains("2 cells", output);
        Assert.Contains("seg-bbox · erm · attribute sex", output);
        Assert.Contains("Dice gap", output);
        Assert.Contains("ES-Dice", output);
        Assert.Matches(@"F: 3 \(\+3/−0\)", output);
        Assert.Contains("2 done, 0 failed", output);
        var results = JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(outDir, "results.json")), JsonDefaults.Pretty)!;
        Assert.All(results, r => Assert.Equal("done", r.Status));
        Assert.All(results, r => Assert.NotNull(r.Segmentation));
        Assert.Contains(results, r => r.Segmentation!.NormalizationId!.StartsWith("albu:bgr:"));

        // The same grid as a durable sweep (embedded silo, watched until it settles): both cells are found done.
        (code, output) = await CliRunner.Run("submit", "--grid", grid, "--cache", cache, "--plain");
        Assert.True(code == 0, output);
        Assert.Contains("seg-cli", output);
        Assert.Contains("2 new cell(s)", output);
    }
}
