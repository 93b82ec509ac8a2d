using System.Text.Json;
using FairMedFM.Data;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>Sets the process-wide <see cref="PathGuard.Current"/>: nothing else may load data meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DataRootsCollection
{
    public const string Name = "data-roots (process-wide guard)";
}

/// <summary>
/// Segmentation cells obey the data roots (FAIRMEDFM_DATA_ROOTS / the silo's --DataRoots) as classification cells do:
/// a card outside the roots, a card whose data_root or an image/label entry leaves them, fail the cell naming the path
/// and the variable — in-process and through the CLI's embedded silo — while a card inside runs.
/// </summary>
[Collection(DataRootsCollection.Name)]
public sealed class SegDataRootsTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly PathGuard _before = PathGuard.Current;
    private readonly string _root, _outside;

    public SegDataRootsTests()
    {
        _root = _tmp.Sub("root");
        _outside = _tmp.Sub("outside");
    }

    public void Dispose()
    {
        PathGuard.Current = _before;
        _tmp.Dispose();
    }

    [Fact]
    public void A_segmentation_cell_outside_the_data_roots_fails_naming_the_path_and_the_variable()
    {
        var inside = SegTestSupport.Synth2D(Path.Combine(_root, "in"), patients: 4, name: "seg_in");
        var outside = SegTestSupport.Synth2D(Path.Combine(_outside, "out"), patients: 4, name: "seg_out");
        var runner = new CellRunner(_tmp.Workspace());
        PathGuard.Current = new PathGuard([_root]);

        var refused = runner.Run(SegTestSupport.Cell(outside.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Assert.Equal("failed", refused.Status);
        Assert.Contains($"dataset card '{outside.CardPath}' is outside the configured data roots", refused.Error);
        Assert.Contains(PathGuard.EnvironmentVariable, refused.Error);
        Assert.False(refused.Retryable);
        // SAM cells are refused before any model is looked at (no weights needed to see the reason).
        Assert.Contains("outside the configured data roots", runner.Run(SegTestSupport.Cell(outside.CardPath, "sam-vit-b", SegUsages.Center)).Error);
        Assert.Throws<DataException>(() => runner.PrepareEmbeddings(outside.CardPath, "sam-vit-b", "model"));

        // A card inside the roots whose data_root climbs out: refused naming the card and the field.
        var evil = Path.Combine(_root, "in", "evil.yaml");
        File.WriteAllText(evil, File.ReadAllText(inside.CardPath).Replace("data_root: .", $"data_root: {Path.Combine(_outside, "out")}"));
        Assert.NotEqual(File.ReadAllText(inside.CardPath), File.ReadAllText(evil));
        var climbed = runner.Run(SegTestSupport.Cell(evil, OtsuBaseline.Id, SegUsages.Box));
        Assert.Equal("failed", climbed.Status);
        Assert.Contains("data root", climbed.Error);
        Assert.Contains("data_root", climbed.Error);
        Assert.Contains(evil, climbed.Error);

        // A label entry of the CSV pointing outside: refused naming the row and the column.
        var leaky = SegTestSupport.Synth2D(Path.Combine(_root, "leaky"), patients: 4, name: "seg_leaky");
        var csv = Path.Combine(leaky.Folder, "metadata.csv");
        var lines = File.ReadAllLines(csv);
        int col = Array.IndexOf(lines[0].Split(','), "labelPath");
        var f = lines[2].Split(',');
        f[col] = Path.Combine(outside.Folder, "label", Path.GetFileName(f[col]));
        Assert.True(File.Exists(f[col]), f[col]);
        lines[2] = string.Join(',', f);
        File.WriteAllLines(csv, lines);
        var row = runner.Run(SegTestSupport.Cell(leaky.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Assert.Equal("failed", row.Status);
        Assert.Contains("label map", row.Error);
        Assert.Contains("outside the configured data roots", row.Error);
        Assert.Contains("labelPath", row.Error);

        // The card inside the roots runs; unconfined, the refused one runs too (the guard was what refused it).
        var allowed = runner.Run(SegTestSupport.Cell(inside.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Assert.True(allowed.Status == "done", allowed.Error);
        PathGuard.Current = PathGuard.Unconfined;
        var free = runner.Run(SegTestSupport.Cell(outside.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Assert.True(free.Status == "done", free.Error);
    }

    [Fact]
    public async Task A_segmentation_grid_outside_the_data_roots_fails_those_cells_through_the_embedded_silo_and_runs_the_rest()
    {
        var outside = SegTestSupport.Synth2D(Path.Combine(_outside, "out"), patients: 4, name: "seg_cli_out");
        var inside = SegTestSupport.Synth2D(Path.Combine(_root, "in"), patients: 4, name: "seg_cli_in");
        var grid = Path.Combine(_root, "seg.yaml");
        File.WriteAllText(grid, $"""
            name: seg-roots
            datasets: ["{outside.CardPath}", "{inside.CardPath}"]
            models: [{OtsuBaseline.Id}]
            usages: [seg-bbox]
            attributes: [sex]
            """);
        PathGuard.Current = new PathGuard([_root]);
        var outDir = _tmp.File("out");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", _tmp.File("cache"), "--plain");
        Assert.True(code == 1, output);
        Assert.Contains("1 done, 1 failed", output);
        Assert.Contains("is outside the configured data roots", output);
        Assert.Contains(PathGuard.EnvironmentVariable, output);
        var results = JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(outDir, "results.json")), JsonDefaults.Pretty)!;
        Assert.Contains(outside.CardPath, Assert.Single(results, r => r.Status == "failed").Error);
        Assert.Equal("seg_cli_in", Assert.Single(results, r => r.Status == "done").DatasetName);

        // A grid whose only card lies outside is bad input: refused before any cell runs, naming the roots.
        var onlyOutside = Path.Combine(_root, "seg-out.yaml");
        File.WriteAllText(onlyOutside, File.ReadAllText(grid).Replace($", \"{inside.CardPath}\"", ""));
        var (code2, output2) = await CliRunner.Run("run", "--grid", onlyOutside, "--out", _tmp.File("out2"), "--cache", _tmp.File("cache"), "--plain");
        Assert.True(code2 == 2, output2);
        Assert.Contains("is outside the configured data roots", output2);
        Assert.Contains(PathGuard.EnvironmentVariable, output2);
    }
}
