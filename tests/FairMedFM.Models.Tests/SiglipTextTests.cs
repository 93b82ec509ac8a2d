using System.Text.Json;
using System.Text.Json.Nodes;
using FairMedFM.Models.Contrastive;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// SigLIP's text side against Fixtures/siglip_text — an INDEPENDENT RE-IMPLEMENTATION of transformers'
/// SiglipTextModel / SiglipTokenizer semantics in torch 1.13 primitives (make_siglip_text_fixture.py), with the real
/// sentencepiece library (0.1.97) tokenizing: not the original transformers code, which cannot be installed here.
/// </summary>
public class SiglipTextTests(ITestOutputHelper output)
{
    public static string FixtureDir => Path.Combine(TestPaths.RepoRoot, "tests", "FairMedFM.Models.Tests", "Fixtures", "siglip_text");

    private static JsonElement Case()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "case.json")));
        return doc.RootElement.Clone();
    }

    private static SiglipTokenizer Tokenizer() => new(Path.Combine(FixtureDir, "spiece.model"));

    [Fact]
    public void Tokenizer_equals_sentencepiece_with_siglips_preprocessing_on_every_fixture_text()
    {
        var c = Case();
        var tok = Tokenizer();
        Assert.False(string.IsNullOrEmpty(tok.Source));
        var texts = c.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToList();
        var ids = c.GetProperty("token_ids").EnumerateArray().Select(a => a.EnumerateArray().Select(e => e.GetInt32()).ToList()).ToList();
        Assert.Equal(16, texts.Count);
        int same = 0;
        for (int i = 0; i < texts.Count; i++)
        {
            var got = tok.Encode(texts[i]);
            output.WriteLine($"{JsonSerializer.Serialize(texts[i])}: {(got.SequenceEqual(ids[i]) ? "equal" : $"DIFF ours [{string.Join(",", got)}] ref [{string.Join(",", ids[i])}]")}");
            if (got.SequenceEqual(ids[i])) same++;
        }
        Assert.Equal(texts.Count, same);
    }

    [Fact]
    public void Batch_truncation_keeps_the_end_token_and_pads_with_the_pad_id()
    {
        using var io = new FixtureIo();
        var c = Case();
        var texts = c.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToList();
        var (ids, mask) = Tokenizer().EncodeBatch(texts, 16, padToMax: true);
        Assert.True(ids.eq(io["ids_max"]).all().item<bool>());
        Assert.True(mask.eq(io["mask_max"]).all().item<bool>());
        var (idsL, maskL) = Tokenizer().EncodeBatch(texts.Take(6).ToList(), 16, padToMax: false);
        Assert.True(idsL.eq(io["ids_longest"]).all().item<bool>());
        Assert.True(maskL.eq(io["mask_longest"]).all().item<bool>());
        Assert.Equal(1L, ids[12, 15].item<long>()); // the long prompt: cut to 15 pieces + </s>
    }

    private sealed class FixtureIo : IDisposable
    {
        private readonly Dictionary<string, Tensor> _t = SafeTensors.Load(Path.Combine(FixtureDir, "io.safetensors"));
        public Tensor this[string k] => _t[k];
        public void Dispose() { foreach (var t in _t.Values) t.Dispose(); }
    }

    private static SiglipTextModel LoadFixtureModel()
    {
        var cfg = SiglipTextConfig.FromConfigJson(Path.Combine(FixtureDir, "config.json"));
        var m = new SiglipTextModel("siglip-text", cfg);
        var sd = SafeTensors.Load(Path.Combine(FixtureDir, "weights.safetensors"));
        try { Assert.True(ContrastiveModels.LoadSiglipText(m, sd, "weights.safetensors").IsExact); }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        m.eval();
        return m;
    }

    [Fact]
    public void Text_model_equals_the_reimplementation_with_and_without_padding_mask()
    {
        using var io = new FixtureIo();
        using var m = LoadFixtureModel();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var log = new DiffLog(output, "siglip_text", 1e-4);
        var (last, pooled) = m.ForwardAll(io["ids_max"]);
        log.Check(io["last_hidden_state_max"], last, "last_hidden_state (max_length, no mask)");
        log.Check(io["pooled_max"], pooled, "pooler_output = head(last position)");
        log.Check(io["pooled_max_masked"], m.Forward(io["ids_max"], io["mask_max"]), "pooled (max_length, padding mask)");
        log.Check(io["pooled_longest_masked"], m.Forward(io["ids_longest"], io["mask_longest"]), "pooled (longest, padding mask)");
        // The mask changes the result (pad keys excluded), so both variants are really exercised.
        Assert.False(pooled.allclose(io["pooled_max_masked"], rtol: 1e-3, atol: 1e-3));
    }

    [Fact]
    public void Text_model_keys_are_hf_siglip_names_and_strict_errors_name_key_and_map()
    {
        var cfg = SiglipTextConfig.FromConfigJson(Path.Combine(FixtureDir, "config.json"));
        using var m = new SiglipTextModel("t", cfg);
        var ours = m.state_dict().Keys.Order().ToList();
        var file = SafeTensors.Load(Path.Combine(FixtureDir, "weights.safetensors"));
        var hfText = file.Keys.Where(k => k.StartsWith("text_model.") && !k.EndsWith("position_ids")).Order().ToList();
        Assert.Equal(hfText, ours);
        file.Remove("text_model.encoder.layers.1.mlp.fc2.bias");
        var ex = Assert.Throws<WeightLoadException>(() => ContrastiveModels.LoadSiglipText(m, file, "model.safetensors"));
        Assert.Equal(["text_model.encoder.layers.1.mlp.fc2.bias"], ex.Missing);
        Assert.Contains(ContrastiveModels.SiglipTextMapName, ex.Message);
        foreach (var t in file.Values) t.Dispose();
    }

    /// <summary>A tiny HF SiglipModel folder: a random tiny vision tower + the fixture's text tower, logit constants and spiece.model.</summary>
    private static (ModelCard Card, VitConfig Vit) WriteTinySiglip(string root, bool withSpiece = true)
    {
        var folder = Path.Combine(root, "siglip-tiny");
        Directory.CreateDirectory(folder);
        var vit = new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 1, NumHeads = 4, MlpHiddenDim = 48, ClassToken = false,
                                  GlobalPool = "map", FcNorm = false, NumClasses = 0, Activation = "gelu_tanh" };
        using var scope = NewDisposeScope();
        using var v = new VisionTransformer("v", vit);
        var ckpt = HfVisionModels.Export(v, HfKeyMaps.SiglipVision);
        foreach (var (k, t) in SafeTensors.Load(Path.Combine(FixtureDir, "weights.safetensors")))
            if (!k.StartsWith("vision_model.")) ckpt[k] = t;
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), ckpt);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, "config.json")))!.AsObject();
        cfg["vision_config"] = new JsonObject { ["hidden_size"] = 32, ["intermediate_size"] = 48, ["num_hidden_layers"] = 1, ["num_attention_heads"] = 4,
                                                ["image_size"] = 32, ["patch_size"] = 8 };
        File.WriteAllText(Path.Combine(folder, "config.json"), cfg.ToJsonString());
        if (withSpiece) File.Copy(Path.Combine(FixtureDir, "spiece.model"), Path.Combine(folder, "spiece.model"));
        var card = new ModelCard
        {
            Id = "test-siglip-tiny", Family = HfVisionModels.FamilySiglipVision, Vit = vit, FeatureDim = 32, ImageSize = 32, HfFolder = "siglip-tiny",
            NormalizationKind = "meanstd", Mean = [0.5f, 0.5f, 0.5f], Std = [0.5f, 0.5f, 0.5f],
            TextTower = ContrastiveModels.TextTowerSiglip,
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0, "siglip") { BiasFromWeights = true },
        };
        return (card, vit);
    }

    [Fact]
    public void Siglip_card_joins_the_vision_and_text_towers_of_one_checkpoint()
    {
        using var dir = new TestPaths.TempDir();
        using var io = new FixtureIo();
        var (card, _) = WriteTinySiglip(dir.Path);
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        var joined = Assert.IsAssignableFrom<ContrastiveEncoder>(enc);
        using var scope = NewDisposeScope();
        Assert.Equal(new long[] { 2, 32 }, enc.Encode(randn(2, 3, 32, 32)).shape);
        Assert.False(joined.TextLoaded); // a linear probe never builds the text tower
        var texts = Case().GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var emb = joined.EncodeText(texts);
        Assert.True(joined.TextLoaded);
        // Default: padding to 64 → here max_position_embeddings 16, no attention mask (as SigLIP was trained).
        new DiffLog(output, "siglip card", 1e-4).Check(io["pooled_max"], emb, "EncodeText = get_text_features");
        Assert.Equal(Math.Exp(2.302585), joined.LogitScaleExp, 5);
        Assert.Equal(-10.0, joined.LogitBias!.Value, 6);
    }

    [Fact]
    public void Siglip_text_side_without_its_tokenizer_is_an_error_naming_the_file()
    {
        using var dir = new TestPaths.TempDir();
        var (card, _) = WriteTinySiglip(dir.Path, withSpiece: false);
        using var enc = (ContrastiveEncoder)ModelZoo.CreateEncoder(card, dir.Path, dir.Path); // the image side needs no tokenizer
        var ex = Assert.Throws<FileNotFoundException>(() => enc.EncodeText(["a photo"]));
        Assert.Contains("spiece.model", ex.Message);
    }
}
