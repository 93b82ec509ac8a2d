using FairMedFM.Engine.Config;
using FairMedFM.Engine.Training;
using FairMedFM.Engine.Usages;
using FairMedFM.Models;
using FairMedFM.Models.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// The lora usage on a tiny timm ViT (img 32, patch 8, width 64, depth 2) with in-memory images: only LoRA A/B and
/// the head train, every base parameter stays bit for bit, predictions come from merged weights equal to the
/// unmerged adapted model, and the settings reach the adapters.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class LoraUsageTests
{
    /// <summary>n images 3×32×32: noise, plus a bright top-left quadrant in the first channel for label 1.</summary>
    private static (Tensor Images, int[] Labels) Bank(int n, ulong seed)
    {
        var g = new Generator(seed, CPU);
        var x = randn(new long[] { n, 3, 32, 32 }, generator: g);
        var y = Enumerable.Range(0, n).Select(i => i % 2).ToArray();
        using (no_grad())
            for (int i = 0; i < n; i++)
                if (y[i] == 1) x[i, 0, TensorIndex.Slice(0, 16), TensorIndex.Slice(0, 16)].add_(1.5);
        return (x, y);
    }

    private static SplitData Rows(int from, int count, int[] labels) =>
        new(Enumerable.Range(from, count).ToArray(), Array.Empty<float>(), 0, labels.Skip(from).Take(count).ToArray());

    private static readonly TrainingConfig Cfg = new() { Epochs = 6, WarmupEpochs = 1, Blr = 5e-3, MinLr = 1e-5, BatchSize = 16, WeightDecay = 0.05, Optimizer = "adamw" };

    [Fact]
    public void Only_LoRA_and_the_head_train_and_the_base_stays_bit_for_bit()
    {
        var (bank, labels) = Bank(96, 7);
        var train = Rows(0, 64, labels);
        var val = Rows(64, 16, labels);
        var test = Rows(80, 16, labels);
        Tensor Load(int[] idx) => bank.index_select(0, tensor(idx.Select(i => (long)i).ToArray()));

        using var enc = UsageTestModels.TinyVitEncoder();
        var before = enc.Backbone.named_parameters().ToDictionary(p => p.name, p => UsageTestModels.Floats(p.parameter));
        var headBefore = UsageTestModels.Floats(SeededInit.Linear(64, 2, 3).weight!);

        using var run = LoraUsage.Run(enc, new LoraSettings(["qkv"]), train, val, test, Load, Cfg, seed: 3);

        // Exactly the two qkv Linears are wrapped; trainable = their A and B, and the head.
        Assert.Equal(new[] { "blocks.0.attn.qkv", "blocks.1.attn.qkv" }, run.Adapters.Select(a => a.Name));
        var trainable = enc.Backbone.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).Order().ToList();
        Assert.Equal(new[] { "blocks.0.attn.qkv.lora_A", "blocks.0.attn.qkv.lora_B", "blocks.1.attn.qkv.lora_A", "blocks.1.attn.qkv.lora_B" }, trainable);
        Assert.All(run.Head.parameters(), p => Assert.True(p.requires_grad));

        foreach (var (name, p) in enc.Backbone.named_parameters())
        {
            var now = UsageTestModels.Floats(p);
            if (name.EndsWith(".lora_A") || name.EndsWith(".lora_B"))
                continue;
            // The wrapped layers' weights moved under base_layer; every base parameter is unchanged bit for bit.
            var original = before[name.Replace(".base_layer", "")];
            Assert.True(UsageTestModels.BitEqual(original, now), $"base parameter {name} changed");
            Assert.False(p.requires_grad, $"base parameter {name} requires grad");
        }
        // The adapters and the head did train (B starts at zero; the head at its seeded init).
        Assert.All(run.Adapters, a => Assert.True(a.Adapter.B.abs().max().item<float>() > 0, $"{a.Name}.lora_B is still zero"));
        Assert.False(UsageTestModels.BitEqual(headBefore, UsageTestModels.Floats(run.Head.weight!)), "the head did not change");
        Assert.Equal(Cfg.Epochs, run.Probe.History.Count);
        Assert.True(run.Probe.History[^1].TrainLoss < run.Probe.History[0].TrainLoss, "training loss did not go down");

        // Predictions come from merged weights and equal the unmerged adapted model (≤ 1e-5).
        Assert.All(run.Adapters, a => Assert.True(a.Adapter.IsMerged));
        LoraInjector.Unmerge(enc.Backbone);
        enc.Backbone.eval();
        float[] unmerged;
        using (no_grad())
        using (var logits = run.Head.forward(enc.ForwardFeatures(Load(test.Indices))))
            unmerged = UsageTestModels.Floats(nn.functional.softmax(logits, 1).select(1, 1));
        var maxDiff = unmerged.Zip(run.Probe.TestProbs, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= 1e-5, $"merged vs unmerged test probabilities differ by {maxDiff:E2}");
    }

    [Fact]
    public void Rank_alpha_and_dropout_reach_the_adapters()
    {
        var (bank, labels) = Bank(48, 8);
        Tensor Load(int[] idx) => bank.index_select(0, tensor(idx.Select(i => (long)i).ToArray()));
        using var enc = UsageTestModels.TinyVitEncoder();
        using var run = LoraUsage.Run(enc, new LoraSettings(["qkv"], Rank: 4, Alpha: 16, Dropout: 0.1), Rows(0, 32, labels), Rows(32, 8, labels),
            Rows(40, 8, labels), Load, Cfg with { Epochs = 2 }, seed: 0);
        Assert.All(run.Adapters, a =>
        {
            Assert.Equal(4, a.Adapter.Rank);
            Assert.Equal(4.0, a.Adapter.Scale);
            Assert.Equal(0.1, a.Adapter.Dropout);
            Assert.Equal(new long[] { 4, 64 }, a.Adapter.A.shape);
            Assert.Equal(new long[] { 192, 4 }, a.Adapter.B.shape);
        });
    }

    [Fact]
    public void Card_settings_and_grid_overrides_resolve_as_documented()
    {
        UsageTestModels.Register();
        var medmae = ModelZoo.GetCard("medmae-vitb16");
        Assert.Equal(new LoraSettings(["qkv"], 8, 8, 0), LoraConfig.Resolve(medmae, null));
        Assert.Equal(new LoraSettings(["qkv"], 4, 8, 0), LoraConfig.Resolve(medmae, new LoraConfig { Rank = 4 }));
        Assert.Equal(new LoraSettings(["proj"], 16, 32, 0.1), LoraConfig.Resolve(medmae, new LoraConfig { Rank = 16, Alpha = 32, Dropout = 0.1, Targets = ["proj"] }));
        Assert.Equal(new LoraSettings(["query", "key", "value"], 8, 8, 0), LoraConfig.Resolve(ModelZoo.GetCard("rad-dino"), null));
        foreach (var id in new[] { "clip-vit-b32", "pubmedclip-vit-b32", "resnet18", TinyData.Model, UsageTestModels.Clip, "siglip-base", "medsiglip-448", "plip" })
        {
            var e = Assert.Throws<ConfigException>(() => LoraConfig.Resolve(ModelCatalog.Card(id), new LoraConfig { Targets = ["qkv"] }));
            Assert.Contains($"model '{id}' is not LoRA-eligible", e.Message);
        }
        foreach (var id in new[] { "dinov2-vitb14", "medmae-vitb16", "lvmmed-vitb16" })
            Assert.Equal(new[] { "qkv" }, ModelZoo.GetCard(id).LoraTargets);
    }
}
