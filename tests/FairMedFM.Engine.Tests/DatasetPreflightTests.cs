using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Engine.Tests;

/// <summary>A card that cannot be loaded is found once, before any cell runs, and its reason is printed once.</summary>
public class DatasetPreflightTests
{
    private static int Count(string s, string what) => (s.Length - s.Replace(what, "").Length) / what.Length;

    private static GridSpec Grid(string dir, params string[] cards) => new()
    {
        Name = "g", Datasets = cards.ToList(), Models = [TinyData.Model], Attributes = ["sex", "age60"], Seeds = [0, 1, 2], BaseDir = dir,
    };

    [Fact]
    public void A_grid_whose_only_card_cannot_be_loaded_is_bad_input_reported_once()
    {
        using var tmp = new TempDir();
        var bad = TinyData.WriteCard(tmp.Sub("bad"), name: "card_bad_age", csvLines: DatasetNameTests.WithBadAge(5));
        var grid = Grid(tmp.Path, bad);
        Assert.Equal(6, grid.Expand().Count);
        var e = Assert.Throws<ConfigException>(() => grid.CheckDatasets());
        Assert.StartsWith("dataset 'card_bad_age' cannot be loaded: ", e.Message);
        Assert.Equal(1, Count(e.Message, "data row 5"));
        Assert.Contains("'age'", e.Message);
        Assert.Contains(Path.GetFileName(bad).Replace(".yaml", ".csv"), e.Message);
    }

    [Fact]
    public void A_good_and_a_bad_card_run_and_the_bad_cards_reason_is_listed_once()
    {
        using var tmp = new TempDir();
        var good = TinyData.WriteCard(tmp.Sub("good"), name: "good");
        var bad = TinyData.WriteCard(tmp.Sub("bad"), name: "card_bad_age", csvLines: DatasetNameTests.WithBadAge(5));
        var grid = Grid(tmp.Path, good, bad);
        var problem = Assert.Single(grid.CheckDatasets());
        Assert.Equal("card_bad_age", problem.Name);
        Assert.Equal(Path.GetFullPath(bad), problem.Card);
        Assert.Contains("data row 5", problem.Error);

        // The bad card's six cells fail with the same reason (they fail at loading, before any backbone runs); one good cell
        // failing on its own reason stays its own line.
        var runner = new CellRunner(tmp.Workspace());
        var results = grid.Expand().Where(c => c.Dataset == Path.GetFullPath(bad)).Select(c => runner.Run(c)).ToList();
        Assert.Equal(6, results.Count);
        Assert.All(results, r => Assert.Equal("failed", r.Status));
        var other = grid.Expand().First(c => c.Dataset == Path.GetFullPath(good)) with { Attribute = "ethnicity" };
        results.Add(CellResult.Failed(other, "attribute 'ethnicity' is not in card good", DateTimeOffset.UtcNow));

        var lines = ResultWriter.FailureLines(results);
        Assert.Equal(2, lines.Count);
        Assert.StartsWith($"card_bad_age: 6 cells (models {TinyData.Model}; usages lp; attributes sex, age60; seeds 0, 1, 2) failed: ", lines[0]);
        Assert.Equal(1, Count(lines[0], "data row 5"));
        Assert.Equal($"good × {TinyData.Model} × lp × erm × ethnicity × seed 0: attribute 'ethnicity' is not in card good", lines[1]);

        var outDir = tmp.Sub("out");
        ResultWriter.Write(outDir, "g", results);
        var summary = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        Assert.Equal(1, Count(summary, "data row 5"));
        Assert.All(results, r => Assert.Contains($"`{r.CellId}`", summary)); // every failed cell id stays listed (for reruns)
    }
}
