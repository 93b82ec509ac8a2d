using System.Text.Json;
using FairMedFM.Engine.Config;

namespace FairMedFM.Engine.Tests;

/// <summary>The usages in grids: names, the optional lora block, and what goes into a cell's identity.</summary>
public class UsageGridTests
{
    private const string Grid = """
        name: g
        datasets: [card.yaml]
        models: [medmae-vitb16, clip-vit-b32, not-a-model]
        usages: [lp, clip-zs, clip-adapt, lora]
        attributes: [sex]
        """;

    private static GridSpec Parse(string yaml)
    {
        var g = GridSpec.Parse(yaml, "test.yaml");
        g.Validate("test.yaml");
        return g;
    }

    [Fact]
    public void All_four_usages_are_known_and_expand_into_distinct_cells()
    {
        Assert.Equal(new[] { "lp", "clip-zs", "clip-adapt", "lora" }, GridSpec.KnownUsages);
        var cells = Parse(Grid).Expand();
        Assert.Equal(3 * 4, cells.Count);
        Assert.Equal(cells.Count, cells.Select(c => c.CellId).Distinct().Count());
        // Only lora cells carry LoRA settings; for an eligible card they are the card's, resolved.
        Assert.All(cells.Where(c => c.Usage != "lora"), c => Assert.Null(c.Lora));
        var mae = cells.Single(c => c.Usage == "lora" && c.Model == "medmae-vitb16");
        Assert.Equal(new LoraConfig { Rank = 8, Alpha = 8, Dropout = 0, Targets = ["qkv"] }, mae.Lora);
        // Ineligible or unknown models keep the grid's block (here none): those cells fail with their reason when run.
        Assert.Null(cells.Single(c => c.Usage == "lora" && c.Model == "clip-vit-b32").Lora);
        Assert.Null(cells.Single(c => c.Usage == "lora" && c.Model == "not-a-model").Lora);
    }

    [Fact]
    public void The_lora_block_overrides_the_card_and_leaves_other_cells_alone()
    {
        var plain = Parse(Grid).Expand();
        var g = Parse(Grid + "\nlora: {rank: 4, dropout: 0.1}\n");
        Assert.Equal(new LoraConfig { Rank = 4, Dropout = 0.1 }, g.Lora);
        var cells = g.Expand();
        Assert.Equal(new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0.1, Targets = ["qkv"] },
                     cells.Single(c => c.Usage == "lora" && c.Model == "medmae-vitb16").Lora);
        Assert.Equal(new LoraConfig { Rank = 4, Dropout = 0.1 }, cells.Single(c => c.Usage == "lora" && c.Model == "not-a-model").Lora);
        // Non-lora cells have the same ids with or without the block; lora cells change.
        foreach (var (a, b) in plain.Zip(cells))
            if (a.Usage == "lora" && a.Model == "medmae-vitb16") Assert.NotEqual(a.CellId, b.CellId);
            else if (a.Usage != "lora") Assert.Equal(a.CellId, b.CellId);

        var full = Parse(Grid + "\nlora:\n  rank: 16\n  alpha: 32\n  dropout: 0.05\n  targets: [qkv, proj]\n");
        Assert.Equal(new LoraConfig { Rank = 16, Alpha = 32, Dropout = 0.05, Targets = ["qkv", "proj"] },
                     full.Expand().Single(c => c.Usage == "lora" && c.Model == "medmae-vitb16").Lora);
    }

    [Theory]
    [InlineData("lora: {rank: 0}", "lora.rank")]
    [InlineData("lora: {alpha: -1}", "lora.alpha")]
    [InlineData("lora: {dropout: 1}", "lora.dropout")]
    [InlineData("lora: {targets: []}", "lora.targets")]
    [InlineData("usages: [zeroshot]", "usage 'zeroshot'")]
    public void Bad_lora_settings_and_usages_are_errors(string extra, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(Grid.Replace("usages: [lp, clip-zs, clip-adapt, lora]\n", "") + "\n" + extra + "\n"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void An_unknown_key_in_the_lora_block_is_an_error()
    {
        var e = Assert.Throws<ConfigException>(() => Parse(Grid + "\nlora: {ranks: 4}\n"));
        Assert.Contains("ranks", e.Message);
    }

    [Fact]
    public void Lora_settings_survive_the_json_round_trip_of_a_cell()
    {
        var spec = Parse(Grid + "\nlora: {rank: 4}\n").Expand().Single(c => c.Usage == "lora" && c.Model == "medmae-vitb16");
        var json = JsonSerializer.Serialize(spec, JsonDefaults.Canonical);
        Assert.Contains("\"lora\":{\"rank\":4", json);
        var back = JsonSerializer.Deserialize<CellSpec>(json, JsonDefaults.Canonical)!;
        Assert.Equal(spec, back);
        Assert.Equal(spec.CellId, back.CellId);
        // A non-lora cell's canonical JSON has no lora key at all (its id is what it was before LoRA existed).
        var lp = Parse(Grid).Expand().First(c => c.Usage == "lp");
        Assert.DoesNotContain("lora", JsonSerializer.Serialize(lp, JsonDefaults.Canonical));
    }
}
