using System.Text.Json;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Swin;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// torchvision 0.14.1 SwinTransformer (v1) against the committed fixture Fixtures/swin (tiny config: shifted and padded
/// windows, odd patch merging, a stage whose shift is switched off), the HF SwinModel / MedCLIP key maps by round trip,
/// and the medclip-vit card.
/// </summary>
public class SwinTests
{
    private readonly ITestOutputHelper _out;
    public SwinTests(ITestOutputHelper output) => _out = output;

    public static string FixtureDir => Path.Combine(TestPaths.RepoRoot, "tests", "FairMedFM.Models.Tests", "Fixtures", "swin");

    public static SwinConfig ConfigOf(JsonElement c) => new()
    {
        PatchSize = c.GetProperty("patch_size")[0].GetInt32(),
        EmbedDim = c.GetProperty("embed_dim").GetInt32(),
        Depths = c.GetProperty("depths").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        NumHeads = c.GetProperty("num_heads").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        WindowSize = c.GetProperty("window_size").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        MlpRatio = c.GetProperty("mlp_ratio").GetDouble(),
        NumClasses = c.GetProperty("num_classes").GetInt32(),
    };

    private static JsonElement Case()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "case.json")));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void MatchesTorchvision()
    {
        var c = Case();
        Assert.Equal("0.14.1a0", c.GetProperty("torchvision").GetString());
        using var model = new SwinTransformer("swin", ConfigOf(c.GetProperty("config")));
        var report = WeightLoader.Load(model, Path.Combine(FixtureDir, "weights.safetensors")); // strict
        Assert.True(report.IsExact);
        Assert.Equal(c.GetProperty("weights_keys").EnumerateObject().Count(), report.Loaded.Count);
        model.eval();

        var io = SafeTensors.Load(Path.Combine(FixtureDir, "io.safetensors"));
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        var log = new DiffLog(_out, "swin", 1e-4);
        var x = io["input"];
        var each = model.ForwardEach(x);
        Assert.Equal(model.NumFeatureModules, each.Count);
        for (int i = 0; i < each.Count; i++) log.Check(io[$"features_{i}"], each[i], $"features_{i}");
        log.Check(io["norm_out"], model.Norm(each[^1]), "norm_out");
        log.Check(io["pooled"], model.ForwardPooled(x), "pooled");
        log.Check(io["output"], model.forward(x), "output");
        Assert.Equal(io.Count - 1, log.Diffs.Count); // every stored tensor but the input was compared
    }

    [Fact]
    public void StateDictKeysAreTorchvisions()
    {
        var c = Case();
        using var model = new SwinTransformer("swin", ConfigOf(c.GetProperty("config")));
        var sd = model.state_dict();
        var expected = c.GetProperty("weights_keys").EnumerateObject().ToDictionary(p => p.Name,
            p => p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.Equal(shape, sd[k].shape);
        // The computed index buffer equals torchvision's stored one.
        var w = SafeTensors.Load(Path.Combine(FixtureDir, "weights.safetensors"));
        try { Assert.True(TensorAssert.Same(w["features.1.0.attn.relative_position_index"], sd["features.1.0.attn.relative_position_index"])); }
        finally { foreach (var t in w.Values) t.Dispose(); }
    }

    [Fact]
    public void StrictLoadNamesMissingKeys()
    {
        var c = Case();
        using var model = new SwinTransformer("swin", ConfigOf(c.GetProperty("config")));
        var w = SafeTensors.Load(Path.Combine(FixtureDir, "weights.safetensors"));
        try
        {
            w.Remove("features.3.1.attn.relative_position_bias_table", out var t1);
            w.Remove("features.2.reduction.weight", out var t2);
            t1!.Dispose(); t2!.Dispose();
            var ex = Assert.Throws<WeightLoadException>(() => WeightLoader.LoadStateDict(model, w, new WeightLoadOptions { Strict = true }, "swin-fixture"));
            Assert.Contains("features.3.1.attn.relative_position_bias_table", ex.Message);
            Assert.Contains("features.2.reduction.weight", ex.Message);
        }
        finally { foreach (var t in w.Values) t.Dispose(); }
    }

    /// <summary>
    /// The fixture's torchvision weights exported to HF SwinModel names (q/k/v split), loaded back through the HF map into
    /// a fresh module: identical parameters and outputs. Checks the names HF uses and that the map is a bijection.
    /// </summary>
    [Fact]
    public void HfSwinRoundTrip()
    {
        var c = Case();
        var cfg = ConfigOf(c.GetProperty("config")) with { NumClasses = 0 };
        using var a = new SwinTransformer("a", cfg);
        WeightLoader.Load(a, Path.Combine(FixtureDir, "weights.safetensors"), new WeightLoadOptions
        {
            KeyMap = k => k.StartsWith("head.", StringComparison.Ordinal) ? null : k,
        });
        var layout = SwinTransformer.HfSwinLayout(cfg);
        var hf = HfVisionModels.Export(a, layout);
        using var scope = NewDisposeScope();
        foreach (var t in hf.Values) scope.Attach(t);
        Assert.Contains("embeddings.patch_embeddings.projection.weight", hf.Keys);
        Assert.Contains("embeddings.norm.bias", hf.Keys);
        Assert.Contains("encoder.layers.1.blocks.1.attention.self.query.weight", hf.Keys);
        Assert.Contains("encoder.layers.1.blocks.1.attention.self.relative_position_bias_table", hf.Keys);
        Assert.Contains("encoder.layers.0.downsample.reduction.weight", hf.Keys);
        Assert.Contains("encoder.layers.2.blocks.0.intermediate.dense.weight", hf.Keys);
        Assert.Contains("layernorm.weight", hf.Keys);
        Assert.DoesNotContain(hf.Keys, k => k.StartsWith("features.", StringComparison.Ordinal) || k.Contains(".qkv."));
        Assert.DoesNotContain("encoder.layers.2.downsample.norm.weight", hf.Keys);
        Assert.Equal(cfg.EmbedDim, hf["encoder.layers.0.blocks.0.attention.self.key.weight"].shape[0]);

        using var b = new SwinTransformer("b", cfg);
        var mapped = layout.FromHf(hf);
        foreach (var t in mapped.Values) scope.Attach(t);
        Assert.True(WeightLoader.LoadStateDict(b, mapped).IsExact); // strict
        var sa = a.state_dict();
        foreach (var (k, t) in b.state_dict()) Assert.True(TensorAssert.Same(sa[k], t), k);

        var io = SafeTensors.Load(Path.Combine(FixtureDir, "io.safetensors"));
        foreach (var t in io.Values) scope.Attach(t);
        using var _ = inference_mode();
        a.eval(); b.eval();
        var pa = a.forward(io["input"]);
        Assert.True(TensorAssert.Same(pa, b.forward(io["input"])));
        TensorAssert.Close(io["pooled"], pa, "pooled via HF names");
    }

    /// <summary>A tiny MedCLIP vision model: full checkpoint (vision_model.* + text_model.* + logit_scale) → encoder.</summary>
    [Fact]
    public void MedClipCheckpointThroughTheZoo()
    {
        var c = Case();
        var cfg = ConfigOf(c.GetProperty("config")) with { NumClasses = 0 };
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var src = new MedClipVisionModel("src", cfg, projectionDim: 12);
        WeightLoader.Load(src.Backbone, Path.Combine(FixtureDir, "weights.safetensors"), new WeightLoadOptions
        {
            KeyMap = k => k.StartsWith("head.", StringComparison.Ordinal) ? null : k,
        });
        var ckpt = new Dictionary<string, Tensor>();
        foreach (var (k, t) in MedClipVisionModel.CheckpointLayout(cfg).ToHf(src.state_dict())) ckpt[k] = t;
        Assert.Contains("vision_model.model.encoder.layers.0.blocks.1.attention.self.value.bias", ckpt.Keys);
        Assert.Contains("vision_model.projection_head.weight", ckpt.Keys);
        ckpt["text_model.model.embeddings.word_embeddings.weight"] = randn(5, 4);
        ckpt["text_model.projection_head.weight"] = randn(12, 4);
        ckpt["logit_scale"] = tensor(2.0f);
        // transformers versions that do not persist the index: the module's own is used.
        foreach (var k in ckpt.Keys.Where(k => k.EndsWith("blocks.0.attention.self.relative_position_index")).ToList()) ckpt.Remove(k);
        Directory.CreateDirectory(Path.Combine(dir.Path, "medclip-vit"));
        SafeTensors.Save(Path.Combine(dir.Path, "medclip-vit", "model.safetensors"), ckpt);

        var card = new ModelCard
        {
            Id = "medclip-tiny", Family = SwinModelZoo.FamilySwin, Swin = cfg, FeatureDim = 12, ImageSize = 40,
            WeightsFile = "medclip-vit/pytorch_model.bin", WeightsFileAlternatives = ["medclip-vit/model.safetensors"],
            NormalizationKind = "dataset",
        };
        Assert.StartsWith("verified:", ModelStatus.Verification(card));
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        Assert.Equal(12, enc.FeatureDim);
        var io = SafeTensors.Load(Path.Combine(FixtureDir, "io.safetensors"));
        foreach (var t in io.Values) scope.Attach(t);
        src.eval();
        using var _ = inference_mode();
        var expected = src.forward(io["input"]);
        var got = enc.Encode(io["input"]);
        Assert.True(TensorAssert.Same(expected, got));
        // One grey channel is repeated to three, as MedCLIP does.
        var grey = io["input"].narrow(1, 0, 1);
        Assert.True(TensorAssert.Same(src.forward(grey.repeat(1, 3, 1, 1)), src.forward(grey)));
    }

    [Fact]
    public void MedClipCardNeedsItsFile()
    {
        var card = ModelZoo.GetCard("medclip-vit");
        Assert.Equal((SwinModelZoo.FamilySwin, 512, 224, 768), (card.Family, card.FeatureDim, card.ImageSize, card.Swin!.NumFeatures));
        Assert.Equal([2, 2, 6, 2], card.Swin.Depths);
        Assert.Equal([3, 6, 12, 24], card.Swin.NumHeads);
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder("medclip-vit", dir.Path, dir.Path));
        Assert.Contains("medclip-vit/pytorch_model.bin", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
        var status = ModelStatus.Check(card, dir.Path);
        Assert.False(status.Available);
        Assert.Contains("medclip-vit/pytorch_model.bin", status.Weights);
        // The text side of MedCLIP keeps its own card.
        Assert.Contains(Text.TextModelZoo.Cards, t => t.Id == "medclip-vit");
    }

    /// <summary>FairMedFM's lora_targets for MedCLIP (query/key/value) adapt the thirds of every fused qkv; B = 0 changes nothing.</summary>
    [Fact]
    public void LoraQueryKeyValueOnFusedQkv()
    {
        var cfg = ConfigOf(Case().GetProperty("config")) with { NumClasses = 0 };
        manual_seed(3);
        using var m = new MedClipVisionModel("m", cfg, projectionDim: 12);
        m.eval();
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 40, 44);
        Tensor before;
        using (no_grad()) before = m.forward(x);
        var settings = Peft.LoraSettings.FromCard(ModelZoo.GetCard("medclip-vit"))!;
        var adapters = Peft.LoraInjector.Apply(m, settings, seed: 1);
        Assert.Equal(cfg.Depths.Sum(), adapters.Count);
        Assert.All(adapters, a => Assert.EndsWith(".attn.qkv", a.Name));
        using (no_grad()) Assert.True(TensorAssert.Same(before, m.forward(x)));
    }
}
