using System.Text.Json.Nodes;
using FairMedFM.Models.Clip;
using FairMedFM.Models.Contrastive;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The two-tower families joined for zero-shot: BiomedCLIP's open_clip image map and PLIP's HF CLIPModel map, each
/// checked by loading a golden-verified component's weights under the foreign names and reproducing the golden
/// outputs; key-name round trips; strict errors that name the key and the map.
/// </summary>
public class ContrastiveModelTests(ITestOutputHelper output)
{
    // ---------------- BiomedCLIP image tower (open_clip TimmModel) ----------------

    /// <summary>The golden timm ViT's tensors renamed to open_clip's layout (visual.trunk.*, visual.head.proj.weight; no proj bias).</summary>
    private static Dictionary<string, Tensor> GoldenVitAsOpenClip(GoldenCase gc)
    {
        var ckpt = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in SafeTensors.Load(gc.Weights("safetensors")))
        {
            if (k == "head.bias") { t.Dispose(); continue; } // open_clip's proj has no bias
            ckpt[k == "head.weight" ? "visual.head.proj.weight" : "visual.trunk." + k] = t;
        }
        // What the rest of an open_clip checkpoint holds: the text tower and the temperature (dropped by the map).
        ckpt["text.transformer.embeddings.word_embeddings.weight"] = zeros(10, 4);
        ckpt["text.proj.0.weight"] = zeros(3, 4);
        ckpt["logit_scale"] = tensor(4.6052f);
        return ckpt;
    }

    private static VitConfig GoldenClsConfig(bool headBias) => new()
    {
        ImgSize = 32, PatchSize = 8, EmbedDim = 64, Depth = 2, NumHeads = 4, NumClasses = 5, GlobalPool = "token", HeadBias = headBias,
    };

    [Fact]
    public void BiomedClip_visual_map_reproduces_the_golden_timm_vit()
    {
        using var gc = new GoldenCase("timm_vit_cls");
        using var scope = NewDisposeScope();
        var ckpt = GoldenVitAsOpenClip(gc);
        using var m = new VisionTransformer("biomedclip-tiny", GoldenClsConfig(headBias: false));
        var report = OpenClipTimmLayout.Load(m, ckpt, "open_clip_pytorch_model.bin");
        Assert.True(report.IsExact);
        m.eval();
        using var _ = no_grad();
        var x = gc.Io["input"];
        var log = new DiffLog(output, "biomedclip<-timm_vit_cls", gc.Rel);
        log.Check(gc.Io["pooled"], m.ForwardPooled(x), "pooled (normed CLS)");
        // model.visual(x) = proj(pooled) = the golden head output without its bias.
        using var headBias = SafeTensors.Load(gc.Weights("safetensors"))["head.bias"];
        log.Check(gc.Io["output"] - headBias, m.forward(x), "visual(x) = head.proj(pooled)");
    }

    [Fact]
    public void BiomedClip_card_encoder_is_model_visual_and_reports_its_key_map_on_bad_files()
    {
        using var gc = new GoldenCase("timm_vit_cls");
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var card = new ModelCard
        {
            Id = "test-biomedclip-tiny", Family = ContrastiveModels.FamilyOpenClipTimm, Vit = GoldenClsConfig(false), FeatureDim = 5, ImageSize = 32,
            WeightsFile = "tiny/open_clip_model.safetensors", NormalizationKind = "dataset", LoraTargets = ["qkv"],
        };
        Directory.CreateDirectory(Path.Combine(dir.Path, "tiny"));
        var ckpt = GoldenVitAsOpenClip(gc);
        SafeTensors.Save(Path.Combine(dir.Path, card.WeightsFile), ckpt);
        using (var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path))
        {
            Assert.IsAssignableFrom<IAdaptableImageEncoder>(enc); // FairMedFM's lora_targets ["qkv"] for BiomedCLIP
            using var headBias = SafeTensors.Load(gc.Weights("safetensors"))["head.bias"];
            new DiffLog(output, "biomedclip card", gc.Rel).Check(gc.Io["output"] - headBias, enc.Encode(gc.Io["input"]), "Encode");
        }

        // A checkpoint whose trunk lacks a block tensor: the error names the module key, the file and the map.
        ckpt.Remove("visual.trunk.blocks.1.mlp.fc2.weight");
        ckpt["visual.trunk.blocks.1.mlp.fc9.weight"] = zeros(64, 256);
        SafeTensors.Save(Path.Combine(dir.Path, card.WeightsFile), ckpt);
        var ex = Assert.Throws<WeightLoadException>(() => ModelZoo.CreateEncoder(card, dir.Path, dir.Path));
        Assert.Contains("blocks.1.mlp.fc2.weight", ex.Missing);
        Assert.Contains("blocks.1.mlp.fc9.weight", ex.Unexpected);
        Assert.Contains(OpenClipTimmLayout.Name, ex.Message);
        Assert.Contains("open_clip_model.safetensors", ex.Message);
    }

    [Fact]
    public void OpenClip_key_map_round_trips_every_key_of_the_full_size_tower()
    {
        using var m = new VisionTransformer("biomedclip", OpenClipTimmLayout.BiomedClipVit with { Depth = 2 });
        var keys = m.state_dict().Keys.ToList();
        Assert.Contains("head.weight", keys);
        Assert.DoesNotContain("head.bias", keys);
        foreach (var k in keys)
        {
            var ck = OpenClipTimmLayout.ToCheckpoint(k);
            Assert.True(ck.StartsWith("visual.trunk.", StringComparison.Ordinal) || ck == "visual.head.proj.weight", ck);
            Assert.Equal(k, OpenClipTimmLayout.ToModule(ck));
        }
        Assert.Equal("visual.head.proj.weight", OpenClipTimmLayout.ToCheckpoint("head.weight"));
        Assert.Equal("visual.trunk.blocks.0.attn.qkv.weight", OpenClipTimmLayout.ToCheckpoint("blocks.0.attn.qkv.weight"));
        Assert.Null(OpenClipTimmLayout.ToModule("text.transformer.encoder.layer.0.output.dense.weight"));
        Assert.Null(OpenClipTimmLayout.ToModule("logit_scale"));
        Assert.Equal("visual.attnpool.weight", OpenClipTimmLayout.ToModule("visual.attnpool.weight")); // unknown: passed through, strict load names it

        // Export → strict load into a fresh module → identical outputs.
        using var scope = NewDisposeScope();
        var exported = OpenClipTimmLayout.Export(m);
        using var m2 = new VisionTransformer("biomedclip2", OpenClipTimmLayout.BiomedClipVit with { Depth = 2 });
        Assert.True(OpenClipTimmLayout.Load(m2, exported, "export").IsExact);
        m.eval(); m2.eval();
        using var _ = no_grad();
        var x = randn(1, 3, 224, 224, generator: new Generator(seed: 3));
        Assert.True(m.forward(x).eq(m2.forward(x)).all().item<bool>());
    }

    // ---------------- PLIP: HF CLIPModel on openai/CLIP's module ----------------

    /// <summary>
    /// The golden openai/CLIP tensors written by hand under transformers' CLIPModel names (independently of
    /// <see cref="HfClipModel.Layout"/>): in_proj rows split q; k; v, projections transposed, HF embedding names.
    /// </summary>
    private static Dictionary<string, Tensor> GoldenClipAsHf(IReadOnlyDictionary<string, Tensor> o, int visionLayers, int textLayers)
    {
        var hf = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        void Layer(string src, string dst)
        {
            var w = o[src + "attn.in_proj_weight"];
            var b = o[src + "attn.in_proj_bias"];
            long d = w.shape[1];
            string[] qkv = ["q_proj", "k_proj", "v_proj"];
            for (int j = 0; j < 3; j++)
            {
                hf[$"{dst}self_attn.{qkv[j]}.weight"] = w.narrow(0, j * d, d).clone();
                hf[$"{dst}self_attn.{qkv[j]}.bias"] = b.narrow(0, j * d, d).clone();
            }
            foreach (var (a, z) in new[] { ("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("mlp.c_fc", "mlp.fc1"),
                                           ("mlp.c_proj", "mlp.fc2"), ("ln_2", "layer_norm2") })
            {
                hf[$"{dst}{z}.weight"] = o[$"{src}{a}.weight"];
                hf[$"{dst}{z}.bias"] = o[$"{src}{a}.bias"];
            }
        }
        for (int i = 0; i < visionLayers; i++) Layer($"visual.transformer.resblocks.{i}.", $"vision_model.encoder.layers.{i}.");
        for (int i = 0; i < textLayers; i++) Layer($"transformer.resblocks.{i}.", $"text_model.encoder.layers.{i}.");
        hf["vision_model.embeddings.class_embedding"] = o["visual.class_embedding"];
        hf["vision_model.embeddings.patch_embedding.weight"] = o["visual.conv1.weight"];
        hf["vision_model.embeddings.position_embedding.weight"] = o["visual.positional_embedding"];
        hf["vision_model.embeddings.position_ids"] = arange(o["visual.positional_embedding"].shape[0]).unsqueeze(0);
        foreach (var p in new[] { "weight", "bias" })
        {
            hf[$"vision_model.pre_layrnorm.{p}"] = o[$"visual.ln_pre.{p}"];
            hf[$"vision_model.post_layernorm.{p}"] = o[$"visual.ln_post.{p}"];
            hf[$"text_model.final_layer_norm.{p}"] = o[$"ln_final.{p}"];
        }
        hf["visual_projection.weight"] = o["visual.proj"].t().contiguous();
        hf["text_model.embeddings.token_embedding.weight"] = o["token_embedding.weight"];
        hf["text_model.embeddings.position_embedding.weight"] = o["positional_embedding"];
        hf["text_model.embeddings.position_ids"] = arange(77).unsqueeze(0);
        hf["text_projection.weight"] = o["text_projection"].t().contiguous();
        hf["logit_scale"] = o["logit_scale"];
        return hf;
    }

    /// <summary>The golden CLIP's constructor arguments as transformers' CLIPConfig.</summary>
    private static string HfClipConfigJson(int? eos) => new JsonObject
    {
        ["model_type"] = "clip",
        ["projection_dim"] = 32,
        ["vision_config"] = new JsonObject { ["hidden_size"] = 128, ["intermediate_size"] = 512, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 2,
                                             ["image_size"] = 32, ["patch_size"] = 8, ["hidden_act"] = "quick_gelu", ["layer_norm_eps"] = 1e-5 },
        ["text_config"] = new JsonObject { ["hidden_size"] = 8, ["intermediate_size"] = 32, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 2,
                                           ["max_position_embeddings"] = 77, ["vocab_size"] = 49408, ["hidden_act"] = "quick_gelu",
                                           ["eos_token_id"] = eos },
    }.ToJsonString();

    private static ModelCard PlipTinyCard => new()
    {
        Id = "test-plip-tiny", Family = HfClipModel.Family, FeatureDim = 32, ImageSize = 32, HfFolder = "plip-tiny",
        NormalizationKind = "meanstd", Mean = ModelZoo.ClipMean, Std = ModelZoo.ClipStd,
        ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0, "CLIPModel logits"),
    };

    private static string WritePlipFolder(string root, int? eos)
    {
        var folder = Path.Combine(root, "plip-tiny");
        Directory.CreateDirectory(folder);
        var o = SafeTensors.Load(Path.Combine(TestPaths.Golden("clip_vit"), "weights.safetensors"));
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), GoldenClipAsHf(o, 2, 2));
        File.WriteAllText(Path.Combine(folder, "config.json"), HfClipConfigJson(eos));
        return folder;
    }

    [Theory]
    [InlineData(2)]      // configs written before transformers 4.31: argmax pooling, as openai/CLIP
    [InlineData(49407)]  // a real eos_token_id: first position holding it
    public void Plip_hf_clip_checkpoint_reproduces_the_golden_openai_clip(int eos)
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        WritePlipFolder(dir.Path, eos);
        using var gc = new GoldenCase("clip_vit");
        using var enc = (ClipEncoder)ModelZoo.CreateEncoder(PlipTinyCard, dir.Path, dir.Path);
        Assert.Equal(eos == 2 ? null : eos, enc.Model.TextEosTokenId);
        var log = new DiffLog(output, $"plip(eos {eos})<-clip_vit", gc.Rel);
        var img = enc.Encode(gc.Io["input_image"]);
        var txt = enc.EncodeTokens(gc.Io["input_text"]);
        log.Check(gc.Io["image_embeds"], img, "get_image_features");
        log.Check(gc.Io["text_embeds"], txt, "get_text_features");
        Assert.Equal(gc.Io["logit_scale_exp"].item<float>(), enc.LogitScaleExp, 4);
        var lpi = (img / img.norm(1, keepdim: true)).matmul((txt / txt.norm(1, keepdim: true)).t()) * enc.LogitScaleExp;
        log.Check(gc.Io["logits_per_image"], lpi, "logits_per_image");
        // The prompt path: the CLIP BPE tokenizer feeds the same tower (vocab 49408 = the model's).
        Assert.Equal(new long[] { 2, 32 }, enc.EncodeText(["a chest x-ray of a diseased", "a chest x-ray of a normal"]).shape);
    }

    [Fact]
    public void Hf_clip_pooling_at_a_real_eos_id_needs_that_id_in_every_row()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        WritePlipFolder(dir.Path, 49407);
        using var enc = (ClipEncoder)ModelZoo.CreateEncoder(PlipTinyCard, dir.Path, dir.Path);
        var ids = tensor(new long[] { 49406, 320, 1125, 0, 0 }).unsqueeze(0);
        Assert.Contains("49407", Assert.Throws<ArgumentException>(() => enc.EncodeTokens(ids)).Message);
        // HF pads openai tokenizers with <|endoftext|> itself: the first one is read, as argmax does.
        var padded = tensor(new long[] { 49406, 320, 49407, 49407, 49407 }).unsqueeze(0);
        var zeroPadded = tensor(new long[] { 49406, 320, 49407, 0, 0 }).unsqueeze(0);
        Assert.True(enc.EncodeTokens(padded).allclose(enc.EncodeTokens(zeroPadded), rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Hf_clip_key_map_round_trips_and_strict_errors_name_the_map()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var folder = WritePlipFolder(dir.Path, 2);
        var cfg = HfClipModel.ReadConfig(Path.Combine(folder, "config.json"));
        using var m = new ClipModel(cfg.Clip);
        var exported = HfClipModel.Layout.ToHf(m.state_dict());
        var expected = SafeTensors.Load(Path.Combine(folder, "model.safetensors")).Keys.Where(k => !k.EndsWith("position_ids")).Order().ToList();
        Assert.Equal(expected, exported.Keys.Order().ToList());          // the map's HF names are exactly HF's
        using var m2 = new ClipModel(cfg.Clip);
        Assert.True(WeightLoader.LoadStateDict(m2, HfClipModel.Layout.FromHf(exported), new WeightLoadOptions { Strict = true }).IsExact);
        foreach (var (k, t) in m.state_dict()) Assert.True(t.eq(m2.state_dict()[k]).all().item<bool>(), k);

        var broken = SafeTensors.Load(Path.Combine(folder, "model.safetensors"));
        broken.Remove("text_model.encoder.layers.1.self_attn.k_proj.weight");
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), broken);
        var ex = Assert.Throws<WeightLoadException>(() => ModelZoo.CreateEncoder(PlipTinyCard, dir.Path, dir.Path));
        Assert.Contains("transformer.resblocks.1.attn.in_proj_weight", ex.Missing);
        Assert.Contains("text_model.encoder.layers.1.self_attn.q_proj.weight", ex.Unexpected); // its q/v partners were not fused
        Assert.Contains(HfClipModel.Layout.Name, ex.Message);
    }

    [Fact]
    public void Hf_clip_config_refuses_what_openai_clip_cannot_express()
    {
        using var dir = new TestPaths.TempDir();
        var p = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(p, HfClipConfigJson(2).Replace("\"hidden_act\":\"quick_gelu\",\"layer_norm_eps\"", "\"hidden_act\":\"gelu\",\"layer_norm_eps\""));
        Assert.Contains("vision_config.hidden_act 'gelu'", Assert.Throws<NotSupportedException>(() => HfClipModel.ReadConfig(p)).Message);
        File.WriteAllText(p, """{"model_type": "siglip"}""");
        Assert.Contains("model_type 'siglip'", Assert.Throws<InvalidDataException>(() => HfClipModel.ReadConfig(p)).Message);
    }
}
