using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Engine.Usages;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// clip-zs, clip-adapt and lora cells end to end through <see cref="CellRunner"/> on the tiny real-image card (real
/// NIH images resized to the test models' 32 px): done results in the linear probe's format, with groups; the CLIP
/// usages share the linear probe's embedding entry; lora reads images, not embeddings.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class UsageCellTests : IClassFixture<UsageCellTests.Fixture>
{
    public sealed class Fixture : IDisposable
    {
        public TempDir Tmp { get; } = new();
        public string Card { get; }
        public Workspace Workspace { get; }
        public CellRunner Runner { get; }
        public Fixture()
        {
            UsageTestModels.Register();
            Card = TinyData.WriteCard(Tmp.Sub("card"), "tiny_zs", extraYaml: """
                zero_shot:
                  text_template: "a chest X-ray of a {}"
                  class_names: ["normal", "abnormal"]
                """);
            Workspace = UsageTestModels.ClipWorkspace(Tmp);
            Runner = new CellRunner(Workspace);
        }
        public void Dispose() => Tmp.Dispose();
    }

    private readonly Fixture _fx;
    public UsageCellTests(Fixture fx) => _fx = fx;

    private CellSpec Spec(string usage, string model = UsageTestModels.Clip, string? card = null, LoraConfig? lora = null) => new()
    {
        Dataset = card ?? _fx.Card, Model = model, Usage = usage, Method = "erm", Attribute = "sex", Seed = 0,
        Training = TinyCellFixture.Training with { Blr = 0.01 }, Lora = lora,
    };

    private static void AssertDoneWithGroups(CellResult r, int rows)
    {
        Assert.True(r.Status == "done", r.Error);
        Assert.Equal(rows, r.Sizes!.Train + r.Sizes.Validation + r.Sizes.Test);
        Assert.Equal("validation", r.ThresholdChosenOn);
        Assert.Equal(new[] { "F", "M" }, r.Groups!.Select(g => g.Group).Order());
        Assert.Equal(r.Sizes.Test, r.Groups!.Sum(g => g.N));
        Assert.InRange(r.Summary!["overall-auc"].Value!.Value, 0.0, 1.0);
        Assert.True(r.Summary.ContainsKey("eod"));
        var preds = File.ReadAllLines(r.PredictionsFile!);
        Assert.Equal("index,split,image,patient_id,label,prob,group", preds[0]);
        Assert.Equal(r.Sizes.Validation + r.Sizes.Test, preds.Length - 1);
    }

    [Fact]
    public void Clip_zs_and_clip_adapt_cells_finish_on_the_linear_probe_embeddings()
    {
        long forwards = EmbeddingStore.BackboneForwardImages;
        var zs = _fx.Runner.Run(Spec("clip-zs"));
        AssertDoneWithGroups(zs, TinyData.Rows);
        Assert.Null(zs.SelectedEpoch);           // nothing trained
        Assert.Empty(zs.History!);

        var adapt = _fx.Runner.Run(Spec("clip-adapt"));
        AssertDoneWithGroups(adapt, TinyData.Rows);
        Assert.Equal(TinyCellFixture.Training.Epochs, adapt.History!.Count);
        Assert.NotNull(adapt.SelectedEpoch);

        var lp = _fx.Runner.Run(Spec("lp"));
        AssertDoneWithGroups(lp, TinyData.Rows);

        // One embedding entry (encode_image) for all three usages: the backbone ran once per image.
        Assert.Equal(zs.EmbeddingKey, adapt.EmbeddingKey);
        Assert.Equal(zs.EmbeddingKey, lp.EmbeddingKey);
        Assert.True(adapt.EmbeddingCacheHit && lp.EmbeddingCacheHit);
        Assert.Equal(TinyData.Rows, EmbeddingStore.BackboneForwardImages - forwards);
        // Usage is part of the cell identity; the same split and data for all.
        Assert.Equal(3, new[] { zs.CellId, adapt.CellId, lp.CellId }.Distinct().Count());
        Assert.Equal(zs.SplitHash, adapt.SplitHash);
        // Zero-shot and adapted predictions differ (the prototypes trained).
        Assert.NotEqual(File.ReadAllText(zs.PredictionsFile!), File.ReadAllText(adapt.PredictionsFile!));
        // A second run reuses the stored result.
        Assert.Equal(zs.FinishedUtc, _fx.Runner.Run(Spec("clip-zs")).FinishedUtc);
    }

    [Fact]
    public void A_lora_cell_trains_the_adapted_backbone_on_images()
    {
        long forwards = EmbeddingStore.BackboneForwardImages;
        var spec = Spec("lora", UsageTestModels.Vit, lora: LoraUsage.CellSettings(UsageTestModels.Vit, new LoraConfig { Rank = 4 }));
        Assert.Equal(new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, Targets = ["qkv"] }, spec.Lora);
        var r = _fx.Runner.Run(spec);
        AssertDoneWithGroups(r, TinyData.Rows);
        Assert.Null(r.EmbeddingKey);                                       // no embedding cache, by nature
        Assert.Equal(forwards, EmbeddingStore.BackboneForwardImages);
        Assert.Equal(TinyCellFixture.Training.Epochs, r.History!.Count);
        Assert.Equal("random-init-seed-1234", r.WeightsHash);
        Assert.Equal(spec.Lora, r.Spec.Lora);
        // The LoRA settings are part of the cell identity.
        Assert.NotEqual(spec.CellId, (spec with { Lora = spec.Lora! with { Rank = 8 } }).CellId);
    }

    [Theory]
    [InlineData("clip-zs", TinyData.Model, "has no text tower (not a CLIP-style model)")]
    [InlineData("clip-adapt", "resnet18", "has no text tower (not a CLIP-style model)")]
    [InlineData("lora", UsageTestModels.Clip, "is not LoRA-eligible")]
    [InlineData("lora", TinyData.Model, "is not LoRA-eligible")]
    public void Ineligible_models_fail_their_cell_before_any_backbone_work(string usage, string model, string message)
    {
        long forwards = EmbeddingStore.BackboneForwardImages;
        var r = _fx.Runner.Run(Spec(usage, model));
        Assert.Equal("failed", r.Status);
        Assert.Contains($"model '{model}' {message}", r.Error);
        Assert.Equal(forwards, EmbeddingStore.BackboneForwardImages);
    }

    [Fact]
    public void A_card_without_zero_shot_prompts_fails_naming_the_card()
    {
        var plain = TinyData.WriteCard(_fx.Tmp.Sub("plain"), "tiny_no_prompts");
        var r = _fx.Runner.Run(Spec("clip-zs", card: plain));
        Assert.Equal("failed", r.Status);
        Assert.Contains("tiny_no_prompts.yaml", r.Error);
        Assert.Contains("zero_shot", r.Error);
    }
}
