using FairMedFM.Models.Hf;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// Hugging Face layouts of the vision towers mapped onto the ported modules: each module with random weights is
/// exported under the HF key names and tensor layouts (checked against the key/shape list of the HF modeling code
/// for the same tiny config), saved as a sharded HF checkpoint with its config.json, loaded back through the key map
/// and the card, and must give identical outputs.
/// </summary>
public class HfKeyMapTests
{
    private readonly ITestOutputHelper _out;
    public HfKeyMapTests(ITestOutputHelper output) => _out = output;

    private static void Randomize(nn.Module m, int seed)
    {
        var g = new Generator(seed: (ulong)seed);
        using var _ = no_grad();
        foreach (var (name, p) in m.named_parameters())
        {
            using var r = randn(p.shape, generator: g);
            // LayerNorm/LayerScale gains near 1 keep activations in range; everything else small and random.
            if (name.EndsWith("norm1.weight") || name.EndsWith("norm2.weight") || name.EndsWith("norm.weight") || name.EndsWith("norm_pre.weight"))
                p.copy_(r.mul(0.1).add(1));
            else p.copy_(r.mul(0.1));
        }
    }

    private static Dictionary<string, long[]> Keys(IEnumerable<(string, long[])> items) => items.ToDictionary(x => x.Item1, x => x.Item2);

    private static IEnumerable<(string, long[])> ClipStyleLayers(int layers, int d, int mlp) =>
        Enumerable.Range(0, layers).SelectMany(i =>
        {
            var p = $"vision_model.encoder.layers.{i}.";
            return new (string, long[])[]
            {
                (p + "self_attn.k_proj.weight", [d, d]), (p + "self_attn.k_proj.bias", [d]),
                (p + "self_attn.v_proj.weight", [d, d]), (p + "self_attn.v_proj.bias", [d]),
                (p + "self_attn.q_proj.weight", [d, d]), (p + "self_attn.q_proj.bias", [d]),
                (p + "self_attn.out_proj.weight", [d, d]), (p + "self_attn.out_proj.bias", [d]),
                (p + "layer_norm1.weight", [d]), (p + "layer_norm1.bias", [d]),
                (p + "mlp.fc1.weight", [mlp, d]), (p + "mlp.fc1.bias", [mlp]),
                (p + "mlp.fc2.weight", [d, mlp]), (p + "mlp.fc2.bias", [d]),
                (p + "layer_norm2.weight", [d]), (p + "layer_norm2.bias", [d]),
            };
        });

    private void AssertHfKeys(Dictionary<string, long[]> expected, Dictionary<string, Tensor> hf)
    {
        var missing = expected.Keys.Except(hf.Keys).ToList();
        var extra = hf.Keys.Except(expected.Keys).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0, $"missing: {string.Join(", ", missing)}; extra: {string.Join(", ", extra)}");
        foreach (var (k, shape) in expected) Assert.True(shape.SequenceEqual(hf[k].shape), $"{k}: [{string.Join(",", hf[k].shape)}], HF has [{string.Join(",", shape)}]");
    }

    /// <summary>Writes config.json and the export as a sharded safetensors checkpoint; returns the number of shards.</summary>
    private static int WriteHfFolder(string folder, Dictionary<string, Tensor> hf, string configJson)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), configJson);
        long total = hf.Values.Sum(t => t.NumberOfElements * t.ElementSize);
        HfCheckpoint.SaveSharded(folder, hf, total / 3 + 1);
        return HfCheckpoint.ReadIndex(Path.Combine(folder, "model.safetensors.index.json")).Values.Distinct().Count();
    }

    private const string Dinov2Json = """
        {"architectures": ["Dinov2Model"], "model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2,
         "num_attention_heads": 4, "mlp_ratio": 4, "patch_size": 14, "image_size": 56, "num_channels": 3,
         "layerscale_value": 1.0, "layer_norm_eps": 1e-06, "hidden_act": "gelu", "qkv_bias": true, "use_swiglu_ffn": false}
        """;

    [Fact]
    public void Dinov2RoundTripThroughHfLayout()
    {
        using var dir = new TestPaths.TempDir();
        var folder = Path.Combine(dir.Path, "rad-dino-tiny");
        File.WriteAllText(Path.Combine(dir.Path, "c.json"), Dinov2Json);
        var cfg = HfVisionModels.Dinov2Config(Path.Combine(dir.Path, "c.json"));
        Assert.Equal(new DinoV2Config { ImgSize = 56, PatchSize = 14, EmbedDim = 32, Depth = 2, NumHeads = 4, InitValues = 1.0, InterpolateOffset = 0 }, cfg);

        using var a = new DinoVisionTransformer("a", cfg);
        Randomize(a, 1);
        var hf = HfVisionModels.Export(a, HfKeyMaps.Dinov2);
        const int d = 32;
        var expected = Keys(new (string, long[])[]
        {
            ("embeddings.cls_token", [1, 1, d]), ("embeddings.mask_token", [1, d]), ("embeddings.position_embeddings", [1, 17, d]),
            ("embeddings.patch_embeddings.projection.weight", [d, 3, 14, 14]), ("embeddings.patch_embeddings.projection.bias", [d]),
            ("layernorm.weight", [d]), ("layernorm.bias", [d]),
        }.Concat(Enumerable.Range(0, 2).SelectMany(i =>
        {
            var p = $"encoder.layer.{i}.";
            return new (string, long[])[]
            {
                (p + "norm1.weight", [d]), (p + "norm1.bias", [d]),
                (p + "attention.attention.query.weight", [d, d]), (p + "attention.attention.query.bias", [d]),
                (p + "attention.attention.key.weight", [d, d]), (p + "attention.attention.key.bias", [d]),
                (p + "attention.attention.value.weight", [d, d]), (p + "attention.attention.value.bias", [d]),
                (p + "attention.output.dense.weight", [d, d]), (p + "attention.output.dense.bias", [d]),
                (p + "layer_scale1.lambda1", [d]), (p + "norm2.weight", [d]), (p + "norm2.bias", [d]),
                (p + "mlp.fc1.weight", [4 * d, d]), (p + "mlp.fc1.bias", [4 * d]), (p + "mlp.fc2.weight", [d, 4 * d]), (p + "mlp.fc2.bias", [d]),
                (p + "layer_scale2.lambda1", [d]),
            };
        })));
        AssertHfKeys(expected, hf);
        // The fused qkv rows are query, then key, then value.
        using (var sd = a.state_dict()["blocks.1.attn.qkv.weight"].detach())
            Assert.True(TensorAssert.Same(sd.narrow(0, d, d), hf["encoder.layer.1.attention.attention.key.weight"]));

        int shards = WriteHfFolder(folder, hf, Dinov2Json);
        foreach (var t in hf.Values) t.Dispose();
        Assert.True(shards >= 2);

        var card = new ModelCard { Id = "rad-dino-tiny", Family = HfVisionModels.FamilyDinov2, HfFolder = "rad-dino-tiny", FeatureDim = d, ImageSize = 56 };
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null);
        using var scope = NewDisposeScope();
        var loaded = ((Vit.VitImageEncoder<DinoVisionTransformer>)enc).Model.state_dict();
        foreach (var (k, t) in a.state_dict()) Assert.True(TensorAssert.Same(t, loaded[k]), $"{k} differs after the round trip");
        var x = randn([2, 3, 56, 56], generator: new Generator(seed: 3));
        using (inference_mode())
        {
            var ours = a.forward(x);
            TensorAssert.Close(ours, enc.Encode(x), "pooler_output after the HF round trip", 1e-6);
            // At another size the position embeddings are resampled as HF does (by output size).
            var y = randn([1, 3, 28, 42], generator: new Generator(seed: 4));
            var b = ((Vit.VitImageEncoder<DinoVisionTransformer>)enc).Model;
            TensorAssert.Close(a.forward(y), b.forward(y), "pooler_output at 28×42 after the HF round trip", 1e-6);
        }
        _out.WriteLine($"dinov2: {expected.Count} HF tensors in {shards} shards, weights identical");
    }

    private const string SiglipJson = """
        {"architectures": ["SiglipModel"], "model_type": "siglip", "projection_dim": 32,
         "text_config": {"model_type": "siglip_text_model", "hidden_size": 16},
         "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "intermediate_size": 80, "patch_size": 8, "image_size": 32, "num_channels": 3, "layer_norm_eps": 1e-06,
                           "hidden_act": "gelu_pytorch_tanh"}}
        """;

    [Fact]
    public void SiglipVisionRoundTripThroughHfLayout()
    {
        using var dir = new TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "c.json"), SiglipJson);
        var cfg = HfVisionModels.SiglipVisionConfig(Path.Combine(dir.Path, "c.json"));
        Assert.Equal((32, 8, 32, 2, 4, 80, "gelu_tanh", false, "map"), (cfg.ImgSize, cfg.PatchSize, cfg.EmbedDim, cfg.Depth, cfg.NumHeads, cfg.MlpHiddenDim, cfg.Activation, cfg.ClassToken, cfg.GlobalPool));

        using var a = new VisionTransformer("a", cfg);
        Randomize(a, 2);
        var hf = HfVisionModels.Export(a, HfKeyMaps.SiglipVision);
        const int d = 32, mlp = 80;
        var expected = Keys(new (string, long[])[]
        {
            ("vision_model.embeddings.patch_embedding.weight", [d, 3, 8, 8]), ("vision_model.embeddings.patch_embedding.bias", [d]),
            ("vision_model.embeddings.position_embedding.weight", [16, d]),
            ("vision_model.post_layernorm.weight", [d]), ("vision_model.post_layernorm.bias", [d]),
            ("vision_model.head.probe", [1, 1, d]),
            ("vision_model.head.attention.in_proj_weight", [3 * d, d]), ("vision_model.head.attention.in_proj_bias", [3 * d]),
            ("vision_model.head.attention.out_proj.weight", [d, d]), ("vision_model.head.attention.out_proj.bias", [d]),
            ("vision_model.head.layernorm.weight", [d]), ("vision_model.head.layernorm.bias", [d]),
            ("vision_model.head.mlp.fc1.weight", [mlp, d]), ("vision_model.head.mlp.fc1.bias", [mlp]),
            ("vision_model.head.mlp.fc2.weight", [d, mlp]), ("vision_model.head.mlp.fc2.bias", [d]),
        }.Concat(ClipStyleLayers(2, d, mlp)));
        AssertHfKeys(expected, hf);

        // The MAP head computed by libtorch's own nn.MultiheadAttention from the HF tensors (in_proj = q; k; v rows),
        // then HF's residual MLP on the layernormed result: the split of in_proj into q and kv is checked, not assumed.
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var tokens = randn([2, 16, d], generator: new Generator(seed: 5));
            using var mha = nn.MultiheadAttention(d, 4);
            var msd = mha.state_dict();
            msd["in_proj_weight"].copy_(hf["vision_model.head.attention.in_proj_weight"]);
            msd["in_proj_bias"].copy_(hf["vision_model.head.attention.in_proj_bias"]);
            msd["out_proj.weight"].copy_(hf["vision_model.head.attention.out_proj.weight"]);
            msd["out_proj.bias"].copy_(hf["vision_model.head.attention.out_proj.bias"]);
            var probe = hf["vision_model.head.probe"].expand(2, -1, -1);
            var (attended, _) = mha.forward(probe.transpose(0, 1), tokens.transpose(0, 1), tokens.transpose(0, 1), null, false, null);
            var h = attended.transpose(0, 1);
            var ln = nn.functional.layer_norm(h, [d], hf["vision_model.head.layernorm.weight"], hf["vision_model.head.layernorm.bias"], 1e-6);
            var m1 = nn.functional.linear(ln, hf["vision_model.head.mlp.fc1.weight"], hf["vision_model.head.mlp.fc1.bias"]);
            var m2 = nn.functional.linear(nn.functional.gelu(m1, TorchSharp.Modules.GELU.Approximate.tanh), hf["vision_model.head.mlp.fc2.weight"], hf["vision_model.head.mlp.fc2.bias"]);
            var expectedPool = h.add(m2).select(1, 0);
            var ours = a.AttentionPool(tokens);
            double diff = TensorAssert.Close(expectedPool, ours, "MAP head vs torch MultiheadAttention", 1e-5);
            // Negative control: the same head with in_proj's q and k rows swapped is far off.
            var w = hf["vision_model.head.attention.in_proj_weight"];
            msd["in_proj_weight"].copy_(cat([w.narrow(0, d, d), w.narrow(0, 0, d), w.narrow(0, 2 * d, d)], 0));
            var (swapped, _) = mha.forward(probe.transpose(0, 1), tokens.transpose(0, 1), tokens.transpose(0, 1), null, false, null);
            Assert.True((swapped.transpose(0, 1).select(1, 0) - h.select(1, 0)).abs().max().item<float>() > 1e-3);
            _out.WriteLine($"siglip MAP head vs libtorch MultiheadAttention: max|diff| {diff:E2}");
        }

        int shards = WriteHfFolder(Path.Combine(dir.Path, "siglip-tiny"), hf, SiglipJson);
        foreach (var t in hf.Values) t.Dispose();
        var card = new ModelCard { Id = "siglip-tiny", Family = HfVisionModels.FamilySiglipVision, HfFolder = "siglip-tiny", FeatureDim = d, ImageSize = 32 };
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null);
        using var scope2 = NewDisposeScope();
        var x = randn([3, 3, 32, 32], generator: new Generator(seed: 6));
        var loaded = ((Vit.VitImageEncoder<VisionTransformer>)enc).Model.state_dict();
        foreach (var (k, t) in a.state_dict()) Assert.True(TensorAssert.Same(t, loaded[k]), $"{k} differs after the round trip");
        // Weights are bit-identical (above); the outputs agree to float rounding (MKL's results can depend on memory alignment).
        double rt;
        using (inference_mode()) rt = TensorAssert.Close(a.ForwardPooled(x), enc.Encode(x), "get_image_features after the HF round trip", 1e-6);
        _out.WriteLine($"siglip: {expected.Count} HF tensors in {shards} shards, weights identical, outputs max|diff| {rt:E2}");
    }

    private const string ClipJson = """
        {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 24,
         "text_config": {"model_type": "clip_text_model", "hidden_size": 16},
         "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "intermediate_size": 64, "patch_size": 8, "image_size": 32, "layer_norm_eps": 1e-05, "hidden_act": "quick_gelu"}}
        """;

    [Fact]
    public void ClipVisionRoundTripThroughHfLayout()
    {
        using var dir = new TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "c.json"), ClipJson);
        var cfg = HfVisionModels.ClipVisionConfig(Path.Combine(dir.Path, "c.json"));
        Assert.Equal((true, "quick_gelu", 1e-5, 24, false, "token"), (cfg.PreNorm, cfg.Activation, cfg.LayerNormEps, cfg.NumClasses, cfg.HeadBias, cfg.GlobalPool));

        using var a = new VisionTransformer("a", cfg);
        Randomize(a, 3);
        var hf = HfVisionModels.Export(a, HfKeyMaps.ClipVision);
        const int d = 32;
        var expected = Keys(new (string, long[])[]
        {
            ("vision_model.embeddings.class_embedding", [d]), ("vision_model.embeddings.patch_embedding.weight", [d, 3, 8, 8]),
            ("vision_model.embeddings.position_embedding.weight", [17, d]),
            ("vision_model.pre_layrnorm.weight", [d]), ("vision_model.pre_layrnorm.bias", [d]),
            ("vision_model.post_layernorm.weight", [d]), ("vision_model.post_layernorm.bias", [d]),
            ("visual_projection.weight", [24, d]),
        }.Concat(ClipStyleLayers(2, d, 64)));
        AssertHfKeys(expected, hf);

        // A full CLIPModel checkpoint: the text tower, text_projection, logit_scale and position_ids buffers are dropped.
        var full = new Dictionary<string, Tensor>(hf)
        {
            ["text_model.embeddings.token_embedding.weight"] = zeros(10, 16),
            ["text_projection.weight"] = zeros(24, 16),
            ["logit_scale"] = tensor(2.6592f),
            ["vision_model.embeddings.position_ids"] = arange(17L).unsqueeze(0),
        };
        var folder = Path.Combine(dir.Path, "plip-tiny");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), ClipJson);
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), full);
        foreach (var t in full.Values) t.Dispose();

        var card = new ModelCard { Id = "plip-tiny", Family = HfVisionModels.FamilyClipVision, HfFolder = "plip-tiny", FeatureDim = d, ImageSize = 32 };
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null);
        using var scope = NewDisposeScope();
        var x = randn([2, 3, 32, 32], generator: new Generator(seed: 7));
        using (inference_mode())
        {
            TensorAssert.Close(a.ForwardPooled(x), enc.Encode(x), "pooler_output after the HF round trip", 1e-6);
            var b = ((Vit.VitImageEncoder<VisionTransformer>)enc).Model;
            TensorAssert.Close(a.forward(x), b.forward(x), "image_embeds (visual_projection) after the HF round trip", 1e-6);
            foreach (var (k, t) in a.state_dict()) Assert.True(TensorAssert.Same(t, b.state_dict()[k]), $"{k} differs after the round trip");
        }
    }

    [Fact]
    public void AMissingOrExtraHfTensorFailsTheStrictLoad()
    {
        using var dir = new TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), Dinov2Json);
        var cfg = HfVisionModels.Dinov2Config(Path.Combine(dir.Path, "config.json"));
        using var a = new DinoVisionTransformer("a", cfg);
        var hf = HfVisionModels.Export(a, HfKeyMaps.Dinov2);
        hf.Remove("encoder.layer.1.attention.attention.value.bias", out var removed);
        removed!.Dispose();
        hf["encoder.layer.0.attention.attention.extra"] = zeros(3);
        var path = Path.Combine(dir.Path, "model.safetensors");
        SafeTensors.Save(path, hf);
        foreach (var t in hf.Values) t.Dispose();
        using var b = new DinoVisionTransformer("b", cfg);
        var ex = Assert.Throws<WeightLoadException>(() => HfVisionModels.Load(b, HfKeyMaps.Dinov2, path));
        Assert.Contains("blocks.1.attn.qkv.bias", ex.Missing);
        Assert.Contains("encoder.layer.1.attention.attention.query.bias", ex.Unexpected); // q and k left without their v
        Assert.Contains("encoder.layer.0.attention.attention.extra", ex.Unexpected);
    }

    [Fact]
    public void ShardedIndexMustMatchItsShards()
    {
        using var dir = new TestPaths.TempDir();
        var sd = new Dictionary<string, Tensor> { ["a"] = ones(4), ["b"] = zeros(4), ["c"] = ones(2, 2) };
        HfCheckpoint.SaveSharded(dir.Path, sd, 16);
        var index = Path.Combine(dir.Path, "model.safetensors.index.json");
        var read = HfCheckpoint.Read(index);
        Assert.Equal(["a", "b", "c"], read.Keys.OrderBy(k => k));
        Assert.True(TensorAssert.Same(sd["c"], read["c"]));
        foreach (var t in read.Values) t.Dispose();
        Assert.Equal(index, HfCheckpoint.Find(dir.Path));

        var shard = HfCheckpoint.ReadIndex(index)["b"];
        File.Delete(Path.Combine(dir.Path, shard));
        Assert.Contains(shard, Assert.Throws<FileNotFoundException>(() => HfCheckpoint.Read(index)).Message);
        foreach (var t in sd.Values) t.Dispose();
    }

    [Theory]
    [InlineData("rad-dino", 768, 224)]
    [InlineData("siglip-base", 768, 224)]
    [InlineData("medsiglip-448", 1152, 448)]
    [InlineData("plip", 512, 224)]
    public void HfCardsNameTheirFilesWhenMissing(string id, int dim, int size)
    {
        var card = ModelZoo.GetCard(id);
        Assert.True(HfVisionModels.Handles(card) || card.Family == HfClipModel.Family);
        Assert.Equal((dim, size), (card.FeatureDim, card.ImageSize));
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder(id, dir.Path, dir.Path));
        Assert.Contains("config.json", ex.Message);
        Assert.Contains("model.safetensors", ex.Message);
        Assert.Contains(Path.Combine(dir.Path, card.HfFolder!), ex.Message);
    }
}
