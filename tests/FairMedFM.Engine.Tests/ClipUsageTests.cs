using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Training;
using FairMedFM.Engine.Usages;
using FairMedFM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// clip-zs and clip-adapt on the golden tiny CLIP (openai/CLIP a1d0717, 32 px): the zero-shot logits are the fixture's
/// logits_per_image for its own image and prompts (same formula; the card's scale 100 versus the weights'
/// exp(logit_scale)), P(y=1) = softmax[:, 1], CLIP-adapt starts at zero-shot and lowers its validation loss by
/// training the prototypes and nothing else.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class ClipUsageTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly Workspace _ws;
    private readonly DatasetCard _cxpCard;

    public ClipUsageTests()
    {
        UsageTestModels.Register();
        _ws = UsageTestModels.ClipWorkspace(_tmp);
        _cxpCard = DatasetCard.Load(TinyData.WriteCard(_tmp.Sub("card"), "tiny_cxp_prompts", extraYaml: UsageTestModels.CxpZeroShot));
    }

    public void Dispose() => _tmp.Dispose();

    private static double MaxAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Fact]
    public void Zero_shot_logits_equal_the_golden_logits_per_image()
    {
        var io = UsageTestModels.ClipIo();
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        var golden = io["logits_per_image"];          // [2 images, 3 prompts] = exp(logit_scale) · cos
        double expScale = io["logit_scale_exp"].item<float>();

        // Image features from the model (what the embedding store caches: encode_image).
        using var enc = ModelCatalog.CreateEncoder(UsageTestModels.Clip, _ws);
        var img = enc.Encode(io["input_image"]);
        Assert.True((img - io["image_embeds"]).abs().max().item<float>() < 1e-4);

        // The card's prompts are the fixture's first two strings, so the text embeddings are its first two rows.
        var fixed100 = ClipUsages.Text(_ws, UsageTestModels.Clip, _cxpCard);
        Assert.Equal(new[] { "a chest X-ray of a diseased", "a chest X-ray of a normal" }, fixed100.Embeddings.Prompts);
        var goldenText = UsageTestModels.Floats(io["text_embeds"].narrow(0, 0, 2));
        Assert.True(MaxAbsDiff(goldenText, fixed100.Embeddings.Values) < 1e-4, "text embeddings differ from the fixture's");
        Assert.Equal(100.0, fixed100.Scale);
        Assert.Equal(0.0, fixed100.Bias);
        Assert.Equal(expScale, fixed100.Embeddings.LogitScaleExp!.Value, 5);

        var learned = ClipUsages.Text(_ws, UsageTestModels.ClipLearnedScale, _cxpCard);
        Assert.Equal(expScale, learned.Scale, 5);

        var goldenTwo = UsageTestModels.Floats(golden.narrow(1, 0, 2));
        using (var head = learned.Head(trainable: false))
        {
            // With exp(logit_scale), exactly CLIP.forward's logits (fixture tolerance: 1e-3 absolute on logits).
            var logits = UsageTestModels.Floats(head.forward(img));
            Assert.True(MaxAbsDiff(goldenTwo, logits) < 1e-3, $"max|diff| {MaxAbsDiff(goldenTwo, logits):E2}");
        }
        using (var head = fixed100.Head(trainable: false))
        {
            // FairMedFM's CLIP: 100 · cos = golden · 100 / exp(logit_scale).
            var logits = UsageTestModels.Floats(head.forward(img));
            var expected = goldenTwo.Select(v => (float)(v * 100 / expScale)).ToArray();
            Assert.True(MaxAbsDiff(expected, logits) < 1e-3 * 100 / expScale + 1e-4, $"max|diff| {MaxAbsDiff(expected, logits):E2}");

            // Probabilities are softmax(logits)[:, 1], as the zero-shot usage reports them.
            var rows = new SplitData(new[] { 0, 1 }, UsageTestModels.Floats(img), 32, new[] { 0, 1 });
            var probe = ClipUsages.ZeroShot(fixed100, rows, rows, rows);
            for (int i = 0; i < 2; i++)
            {
                double l0 = logits[2 * i], l1 = logits[2 * i + 1];
                double p1 = Math.Exp(l1 - Math.Max(l0, l1)) / (Math.Exp(l0 - Math.Max(l0, l1)) + Math.Exp(l1 - Math.Max(l0, l1)));
                Assert.Equal(p1, probe.TestProbs[i], 5);
                Assert.Equal(probe.TestProbs[i], probe.ValProbs[i]);
            }
            Assert.Empty(probe.History);
        }
    }

    [Fact]
    public void Text_embeddings_are_cached_by_weights_and_prompts()
    {
        long before = TextEmbeddingStore.PromptsEncoded;
        var first = ClipUsages.Text(_ws, UsageTestModels.Clip, _cxpCard);
        Assert.False(first.Embeddings.CacheHit);
        Assert.Equal(2, TextEmbeddingStore.PromptsEncoded - before);
        // Another card with the same weights and prompts, another cell: the same entry, no text forward.
        var second = ClipUsages.Text(_ws, UsageTestModels.ClipLearnedScale, _cxpCard);
        Assert.True(second.Embeddings.CacheHit);
        Assert.Equal(first.Embeddings.Key, second.Embeddings.Key);
        Assert.Equal(first.Embeddings.Values, second.Embeddings.Values);
        Assert.Equal(2, TextEmbeddingStore.PromptsEncoded - before);
        Assert.True(File.Exists(Path.Combine(_ws.TextEmbeddingsDir, first.Embeddings.Key + ".json")));
        // Other prompts: another key.
        Assert.NotEqual(first.Embeddings.Key, TextEmbeddingStore.KeyFor(ModelCatalog.WeightsHash(UsageTestModels.Clip, _ws), new[] { "a", "b" }));
        Assert.NotEqual(TextEmbeddingStore.KeyFor("w", new[] { "a b", "c" }), TextEmbeddingStore.KeyFor("w", new[] { "a", "b c" }));
    }

    /// <summary>Features in the 32-d joint space with a label signal the text prototypes do not point along.</summary>
    private static SplitData Features(int n, int seed, float[] direction)
    {
        var rng = new Random(seed);
        var f = new float[n * 32];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 2;
            for (int d = 0; d < 32; d++)
            {
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                f[i * 32 + d] = (float)(g + (2 * y[i] - 1) * 1.5 * direction[d]);
            }
        }
        return new SplitData(Enumerable.Range(0, n).ToArray(), f, 32, y);
    }

    [Fact]
    public void Clip_adapt_starts_at_zero_shot_and_trains_only_the_prototypes()
    {
        var text = ClipUsages.Text(_ws, UsageTestModels.Clip, _cxpCard);
        var rng = new Random(3);
        var dir = Enumerable.Range(0, 32).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var norm = (float)Math.Sqrt(dir.Sum(v => v * v));
        dir = dir.Select(v => v / norm).ToArray();
        var train = Features(160, 1, dir);
        var val = Features(60, 2, dir);
        var test = Features(60, 3, dir);
        var cfg = new TrainingConfig { Epochs = 12, WarmupEpochs = 2, Blr = 0.05, MinLr = 1e-4, BatchSize = 32, WeightDecay = 0.05, Optimizer = "adamw" };

        var zs = ClipUsages.ZeroShot(text, train, val, test);

        // Before training, CLIP-adapt's head is the zero-shot head: the same probabilities, bit for bit.
        double zsValLoss;
        using (var head = text.Head(trainable: true))
        using (var model = new EmbeddingHeadModel(head, train, val, test))
        {
            Assert.True(UsageTestModels.BitEqual(zs.ValProbs, ErmTrainer.Predict(model, ErmSplit.Validation, val.Count)));
            Assert.True(UsageTestModels.BitEqual(zs.TestProbs, ErmTrainer.Predict(model, ErmSplit.Test, test.Count)));
            zsValLoss = ErmTrainer.ValidationLoss(model, val.Labels, ErmTrainer.ClassWeights(train.Labels, cfg));
        }

        float[]? trained = null;
        string[]? trainedNames = null;
        bool[]? grads = null;
        var adapt = ClipUsages.Adapt(text, train, val, test, cfg, seed: 0, inspect: h =>
        {
            var ps = h.named_parameters().ToList();
            trainedNames = ps.Select(p => p.name).ToArray();
            grads = ps.Select(p => p.parameter.requires_grad).ToArray();
            trained = UsageTestModels.Floats(h.Prototypes);
            Assert.Equal(text.Scale, h.Scale);
            Assert.Equal(text.Bias, h.Bias);
        });

        // Prototypes [2, D] are the only parameters, they train, and they moved away from the text embeddings.
        Assert.Equal(new[] { "prototypes" }, trainedNames);
        Assert.Equal(new[] { true }, grads);
        Assert.Equal(2 * 32, trained!.Length);
        Assert.True(MaxAbsDiff(trained, text.Embeddings.Values) > 1e-3, "the prototypes did not change");
        // Training lowered the validation loss below zero-shot's, and the kept epoch is the best one.
        var best = adapt.History.Min(h => h.ValLoss);
        Assert.True(best < zsValLoss, $"CLIP-adapt best val loss {best:0.000} is not below zero-shot's {zsValLoss:0.000}");
        Assert.Equal(adapt.History.MinBy(h => h.ValLoss)!.Epoch, adapt.SelectedEpoch);
        Assert.Equal(cfg.Epochs, adapt.History.Count);

        // Deterministic: the same seed gives the same prototypes' predictions.
        var again = ClipUsages.Adapt(text, train, val, test, cfg, seed: 0);
        Assert.True(UsageTestModels.BitEqual(adapt.TestProbs, again.TestProbs));
    }

    [Fact]
    public void A_bias_is_added_to_every_logit_when_the_card_asks_for_one()
    {
        var baseCard = ModelCatalog.Card(UsageTestModels.Clip);
        ModelCard With(string id, ZeroShotLogitScale s) => new()
        {
            Id = id, Family = baseCard.Family, Clip = baseCard.Clip, FeatureDim = baseCard.FeatureDim, ImageSize = baseCard.ImageSize,
            WeightsFile = baseCard.WeightsFile, NormalizationKind = baseCard.NormalizationKind, Mean = baseCard.Mean, Std = baseCard.Std,
            ZeroShotLogitScale = s,
        };
        ModelCatalog.Register(With("test-clip-fixed-bias", new ZeroShotLogitScale(100.0, 1.0, "fixed bias") { FixedBias = -2.5 }));
        ModelCatalog.Register(With("test-clip-siglip-bias", new ZeroShotLogitScale(null, 1.0, "SigLIP-style") { BiasFromWeights = true }));
        try
        {
            var plain = ClipUsages.Text(_ws, UsageTestModels.Clip, _cxpCard);
            var biased = ClipUsages.Text(_ws, "test-clip-fixed-bias", _cxpCard);
            Assert.Equal(-2.5, biased.Bias);
            var x = torch.randn(new long[] { 4, 32 }, generator: new torch.Generator(9, CPU));
            using (var a = plain.Head(false))
            using (var b = biased.Head(false))
            {
                var d = UsageTestModels.Floats(b.forward(x) - a.forward(x));
                Assert.All(d, v => Assert.Equal(-2.5, v, 4));
            }
            // CLIP weights carry no logit_bias: a card that wants the weights' bias says so.
            var e = Assert.Throws<InvalidOperationException>(() => ClipUsages.Text(_ws, "test-clip-siglip-bias", _cxpCard));
            Assert.Contains("logit_bias", e.Message);
        }
        finally
        {
            ModelCatalog.Unregister("test-clip-fixed-bias");
            ModelCatalog.Unregister("test-clip-siglip-bias");
        }
    }

    [Fact]
    public void A_model_without_a_text_tower_or_a_card_without_prompts_is_a_clear_error()
    {
        var noTower = Assert.Throws<ConfigException>(() => ClipUsages.Text(_ws, TinyData.Model, _cxpCard));
        Assert.Contains($"model '{TinyData.Model}' has no text tower (not a CLIP-style model)", noTower.Message);

        var plain = DatasetCard.Load(TinyData.WriteCard(_tmp.Sub("plain"), "no_prompts"));
        var noPrompts = Assert.Throws<ConfigException>(() => ClipUsages.Text(_ws, UsageTestModels.Clip, plain));
        Assert.Contains("no_prompts.yaml", noPrompts.Message);
        Assert.Contains("zero_shot", noPrompts.Message);
    }
}
