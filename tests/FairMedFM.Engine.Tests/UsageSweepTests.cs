using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;

namespace FairMedFM.Engine.Tests;

/// <summary>The usages through the grains: a lora cell skips the embedding stage; an lp cell of the same model does not.</summary>
[Collection(BackboneCollection.Name)]
public sealed class UsageSweepTests(SiloFixture fx) : IClassFixture<SiloFixture>
{
    [Fact]
    public async Task Lora_and_lp_cells_run_through_the_grains()
    {
        UsageTestModels.Register();
        var path = fx.Tmp.File("orleans-usages.yaml");
        var yaml = TinyData.GridYaml("orleans-usages", fx.TinyCard, attributes: "[sex]", seeds: "[0]", models: "[" + UsageTestModels.Vit + "]",
            extra: "lora: {rank: 2}").Replace("usages: [lp]", "usages: [lp, lora]");
        File.WriteAllText(path, yaml);
        long forwards = EmbeddingStore.BackboneForwardImages;
        var outcome = await fx.Run(GridSpec.Load(path));
        Assert.All(outcome.Results, r => Assert.True(r.Status == "done", $"{r.Spec.Label}: {r.Error}"));
        var lora = outcome.Results.Single(r => r.Spec.Usage == "lora");
        var lp = outcome.Results.Single(r => r.Spec.Usage == "lp");
        Assert.Null(lora.EmbeddingKey);
        Assert.NotNull(lp.EmbeddingKey);
        // Only the lp cell needed the embedding cache: the backbone ran once per image for it, the lora cell trained on images.
        Assert.Equal(TinyData.Rows, EmbeddingStore.BackboneForwardImages - forwards);
        Assert.Equal(new LoraConfig { Rank = 2, Alpha = 8, Dropout = 0, Targets = ["qkv"] }, lora.Spec.Lora);
        Assert.Equal(new[] { "F", "M" }, lora.Groups!.Select(g => g.Group).Order());
    }
}
