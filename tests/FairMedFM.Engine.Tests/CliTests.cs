using System.CommandLine;
using System.Text.Json;
using FairMedFM.Client;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Embeddings;
using Spectre.Console;

namespace FairMedFM.Engine.Tests;

/// <summary>Runs the `fairmedfm` command line in-process with a recording console.</summary>
internal static class CliRunner
{
    public static Task<(int Code, string Output)> Run(params string[] args) => Run(CancellationToken.None, args);

    public static async Task<(int Code, string Output)> Run(CancellationToken cancellation, params string[] args)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 240;
        var code = await new Cli(console).InvokeAsync(args, cancellationToken: cancellation).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, writer.ToString());
    }
}

/// <summary>A tiny grid run once through the CLI (embedded silo); the tests read its console output and output folder.</summary>
public sealed class CliFixture : IAsyncLifetime
{
    public TempDir Tmp { get; } = new();
    public string Card { get; private set; } = "";
    public string Grid { get; private set; } = "";
    public string Cache => Tmp.File("cache");
    public string Out => Tmp.File("out");
    public int Code { get; private set; }
    public string Output { get; private set; } = "";
    public long Forwards { get; private set; }

    public async Task InitializeAsync()
    {
        Card = TinyData.WriteCard(Tmp.Sub("card"), "cli_tiny");
        Grid = Tmp.File("tiny.yaml");
        File.WriteAllText(Grid, TinyData.GridYaml("cli-tiny", Card));
        long before = EmbeddingStore.BackboneForwardImages;
        (Code, Output) = await CliRunner.Run("run", "--grid", Grid, "--out", Out, "--cache", Cache, "--plain");
        Forwards = EmbeddingStore.BackboneForwardImages - before;
    }

    public Task DisposeAsync() { Tmp.Dispose(); return Task.CompletedTask; }
}

[Collection(BackboneCollection.Name)]
public sealed class CliTests(CliFixture fx) : IClassFixture<CliFixture>
{
    private List<CellResult> Results(string outDir) =>
        JsonSerializer.Deserialize<List<CellResult>>(File.ReadAllText(Path.Combine(outDir, "results.json")), JsonDefaults.Pretty)!;

    [Fact]
    public void Run_exits_0_and_prints_the_matrix()
    {
        Assert.True(fx.Code == 0, fx.Output);
        var o = fx.Output;
        Assert.Contains("cli-tiny", o);
        Assert.Contains("4 cells", o);
        Assert.Contains("AUC", o);
        Assert.Contains("AUC gap", o);
        Assert.Contains("EOD", o);
        Assert.Contains("attribute sex", o);
        Assert.Contains("attribute age60", o);
        // Group names with their test sizes.
        Assert.Matches(@"F: \d+ \(\+\d+/−\d+\)", o);
        Assert.Matches(@"M: \d+ \(\+\d+/−\d+\)", o);
        Assert.Contains("60+: ", o);
        Assert.Contains("<60: ", o);
        Assert.Matches(@"0\.\d{3} ± 0\.\d{3}", o); // mean ± sd over the two seeds
        Assert.Contains("4 done, 0 failed", o);
        Assert.Contains($"backbone forward passes in this process: {TinyData.Rows} images", o);
        Assert.Equal(TinyData.Rows, fx.Forwards);
    }

    [Fact]
    public void Run_writes_the_output_folder()
    {
        Assert.True(fx.Code == 0, fx.Output);
        var results = Results(fx.Out);
        Assert.Equal(4, results.Count);
        Assert.All(results, r => Assert.Equal("done", r.Status));

        var csv = File.ReadAllLines(Path.Combine(fx.Out, "results.csv"));
        Assert.Equal(5, csv.Length);
        Assert.StartsWith("cell_id,dataset,model,usage,method,attribute,seed,status", csv[0]);
        Assert.Contains("overall-auc", csv[0]);
        Assert.All(results, r => Assert.Contains(csv, l => l.StartsWith(r.CellId + ",cli_tiny,")));

        var groups = File.ReadAllLines(Path.Combine(fx.Out, "groups.csv"));
        // Per cell: the overall row plus one per group (2 for sex, 2 for age60).
        Assert.Equal(1 + 4 * 3, groups.Length);
        Assert.StartsWith("cell_id,dataset,model,usage,method,attribute,seed,group,n,positives,negatives", groups[0]);

        var md = File.ReadAllText(Path.Combine(fx.Out, "summary.md"));
        Assert.Contains("cli-tiny", md);
        Assert.Contains("4 cells done, 0 failed", md);
        Assert.Contains("overall-auc", md);
        Assert.Contains(results[0].DataHash!, md);

        foreach (var r in results)
        {
            var cellJson = Path.Combine(fx.Out, "cells", r.CellId + ".json");
            Assert.True(File.Exists(cellJson), cellJson);
            Assert.Equal(r.CellId, JsonSerializer.Deserialize<CellResult>(File.ReadAllText(cellJson), JsonDefaults.Pretty)!.CellId);
            var preds = File.ReadAllLines(Path.Combine(fx.Out, "cells", r.CellId + ".predictions.csv"));
            Assert.Equal(1 + r.Sizes!.Validation + r.Sizes.Test, preds.Length);
        }

        // The data's licence and attribution travel with the derived results.
        var licence = Path.Combine(fx.Out, "cli_tiny.LICENSE_AND_ATTRIBUTION.txt");
        Assert.True(File.Exists(licence), string.Join(", ", Directory.GetFiles(fx.Out).Select(Path.GetFileName)));
        Assert.Equal(File.ReadAllText(Path.Combine(TestPaths.NihDir, "LICENSE_AND_ATTRIBUTION.txt")), File.ReadAllText(licence));
    }

    [Fact]
    public async Task Card_option_overrides_the_grids_datasets()
    {
        var grid = fx.Tmp.File("elsewhere.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-tiny", "no/such/card.yaml"));
        var outDir = fx.Tmp.File("out-card");
        long before = EmbeddingStore.BackboneForwardImages;
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--card", fx.Card, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.True(code == 0, output);
        var results = Results(outDir);
        Assert.All(results, r => Assert.Equal(fx.Card, r.Spec.Dataset));
        // Same cells as the first run (same card, same settings), served from the cache.
        Assert.Equal(Results(fx.Out).Select(r => r.CellId).Order(), results.Select(r => r.CellId).Order());
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
    }

    [Fact]
    public async Task Failed_cells_are_listed_and_the_exit_code_says_so()
    {
        var grid = fx.Tmp.File("mixed.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-mixed", fx.Card, attributes: "[sex, ethnicity]", seeds: "[0]"));
        var outDir = fx.Tmp.File("out-mixed");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.Equal(1, code);
        Assert.Contains("attribute 'ethnicity'", output);
        Assert.Contains("1 done, 1 failed", output);
        Assert.Contains("## Failed cells", File.ReadAllText(Path.Combine(outDir, "summary.md")));
    }

    [Fact]
    public async Task A_grid_whose_only_card_is_bad_exits_2_with_the_reason_printed_once_before_any_cell()
    {
        var bad = TinyData.WriteCard(fx.Tmp.Sub("cli-bad-age"), name: "card_bad_age", csvLines: DatasetNameTests.WithBadAge(5));
        var grid = fx.Tmp.File("bad-only.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-bad", bad));
        var outDir = fx.Tmp.File("out-bad-only");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.True(code == 2, output);
        Assert.Contains("dataset 'card_bad_age' cannot be loaded", output);
        Assert.Equal(1, (output.Length - output.Replace("data row 5", "").Length) / "data row 5".Length);
        Assert.False(Directory.Exists(Path.Combine(outDir, "cells")), "no cell ran");
    }

    [Fact]
    public async Task A_bad_card_beside_a_good_one_fails_its_cells_in_one_line_and_the_good_cells_run()
    {
        var bad = TinyData.WriteCard(fx.Tmp.Sub("cli-bad-age2"), name: "card_bad_age", csvLines: DatasetNameTests.WithBadAge(5));
        var grid = fx.Tmp.File("bad-and-good.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-bad-good", fx.Card, seeds: "[0]").Replace($"datasets: [\"{fx.Card}\"]", $"datasets: [\"{fx.Card}\", \"{bad}\"]"));
        Assert.Contains(bad, File.ReadAllText(grid));
        var outDir = fx.Tmp.File("out-bad-good");
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.True(code == 1, output);
        var failedLines = output.Split('\n').Where(l => l.StartsWith("failed ", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(failedLines);
        Assert.StartsWith("failed card_bad_age: ", line);
        Assert.Contains("data row 5", line);
        Assert.All(Results(outDir).Where(r => r.DatasetName == "cli_tiny"), r => Assert.Equal("done", r.Status));
    }

    [Fact]
    public async Task An_unwritable_out_folder_fails_before_any_cell_runs()
    {
        var blocker = fx.Tmp.File("a-file");
        File.WriteAllText(blocker, "not a folder");
        var outDir = Path.Combine(blocker, "out");
        long before = EmbeddingStore.BackboneForwardImages;
        var (code, output) = await CliRunner.Run("run", "--grid", fx.Grid, "--out", outDir, "--cache", fx.Tmp.File("cache-unwritable"), "--plain");
        Assert.Equal(2, code);
        Assert.Contains("cannot write the output folder --out", output);
        Assert.Contains(outDir, output);
        // Nothing ran: no silo was started, no cell computed.
        Assert.DoesNotContain("grains on", output);
        Assert.DoesNotContain("done,", output);
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
    }

    [Fact]
    public async Task A_reused_out_folder_keeps_only_this_runs_cell_files_and_the_users_own()
    {
        var outDir = fx.Tmp.File("out-reused");
        var (code, output) = await CliRunner.Run("run", "--grid", fx.Grid, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.True(code == 0, output);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(outDir, "cells"), "*.json").Length);
        File.WriteAllText(Path.Combine(outDir, "cells", "my-notes.txt"), "mine");
        File.WriteAllText(Path.Combine(outDir, "cells", "notes.json"), "{}");

        var smaller = fx.Tmp.File("smaller.yaml");
        File.WriteAllText(smaller, TinyData.GridYaml("cli-smaller", fx.Card, attributes: "[sex]", seeds: "[0]"));
        (code, output) = await CliRunner.Run("run", "--grid", smaller, "--out", outDir, "--cache", fx.Cache, "--plain");
        Assert.True(code == 0, output);
        var ids = Results(outDir).Select(r => r.CellId).ToList();
        Assert.Single(ids);
        var cellFiles = Directory.GetFiles(Path.Combine(outDir, "cells")).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(new[] { ids[0] + ".json", ids[0] + ".predictions.csv", "my-notes.txt", "notes.json" }.Order(), cellFiles);
    }

    [Fact]
    public async Task Grid_with_an_unknown_key_fails_with_the_key()
    {
        var grid = fx.Tmp.File("typo.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-typo", fx.Card).Replace("training:", "trainig:"));
        var (code, output) = await CliRunner.Run("run", "--grid", grid, "--out", fx.Tmp.File("out-typo"), "--cache", fx.Cache, "--plain");
        Assert.NotEqual(0, code);
        Assert.Contains("trainig", output);
        Assert.Contains("error", output);
        Assert.False(Directory.Exists(fx.Tmp.File("out-typo")));
    }

    [Fact]
    public async Task Missing_grid_file_is_a_clear_error()
    {
        var missing = fx.Tmp.File("no-such-grid.yaml");
        var (code, output) = await CliRunner.Run("run", "--grid", missing, "--cache", fx.Cache, "--plain");
        Assert.NotEqual(0, code);
        Assert.Contains("grid file not found", output);
        Assert.Contains(missing, output);
    }

    [Fact]
    public async Task Missing_card_file_is_a_clear_error()
    {
        var missing = fx.Tmp.File("no-such-card.yaml");
        var (code, output) = await CliRunner.Run("run", "--grid", fx.Grid, "--card", missing, "--cache", fx.Cache, "--plain");
        Assert.NotEqual(0, code);
        Assert.Contains("--card", output);
        Assert.Contains(missing, output);
    }

    [Fact]
    public async Task Models_list_names_the_packaged_model()
    {
        var (code, output) = await CliRunner.Run("models", "list");
        Assert.Equal(0, code);
        Assert.Contains(TinyData.Model, output);
        Assert.Contains("512", output);
    }

    [Fact]
    public async Task Models_list_shows_the_segmentation_cards()
    {
        var (code, output) = await CliRunner.Run("models", "list");
        Assert.Equal(0, code);
        foreach (var c in FairMedFM.Models.Sam.SegModelZoo.Cards) Assert.Contains(c.Id, output);
        foreach (var (id, _) in FairMedFM.Models.Sam.SegModelZoo.NotYetAvailable) Assert.Contains(id, output);
        Assert.Contains("256×64×64", output);
        Assert.Contains("sam_vit_b_01ec64.pth", output);
        // the weight-free baseline that segmentation grids name is listed too
        Assert.Contains(FairMedFM.Engine.Segmentation.OtsuBaseline.Id, output);
        Assert.Contains("no weights needed", output);
        // the 3-D models' reason is the missing network port, not a missing 3-D data path (volumes do run, sliced)
        Assert.DoesNotContain("no 3D volume pipeline", output);
        Assert.All(FairMedFM.Models.Sam.SegModelZoo.NotYetAvailable.Where(n => n.Item1 is "sam-med3d" or "fastsam3d" or "segvol"),
            n => Assert.Contains("3-D network is not ported", n.Item2));
    }
}
