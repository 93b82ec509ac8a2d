using System.Text.Json.Nodes;
using FairMedFM.Models.Clip;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>Parity of <see cref="ClipModel"/> with openai/CLIP on the golden clip_vit / clip_rn fixtures.</summary>
public class ClipModelTests
{
    private readonly ITestOutputHelper _out;
    public ClipModelTests(ITestOutputHelper output) => _out = output;

    internal static JsonObject Case(string caseName) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Golden(caseName), "case.json")))!.AsObject();

    internal static ClipConfig Config(string caseName) => ClipConfig.FromJson(Case(caseName)["config"]!);

    /// <summary>Every io tensor the fixture stores except the inputs; each must be produced and compared.</summary>
    private static readonly Dictionary<string, string[]> Expected = new()
    {
        ["clip_vit"] =
        [
            "image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "logit_scale_exp", "vision_conv1_out",
            "vision_ln_pre_out_NLD", "vision_block0_out_LND", "vision_ln_post_cls", "text_block0_out_LND", "text_ln_final_out",
        ],
        ["clip_rn"] =
        [
            "image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "logit_scale_exp", "vision_conv1_out",
            "vision_stem_out", "vision_layer1_out", "vision_layer4_out", "vision_attnpool_out", "text_block0_out_LND", "text_ln_final_out",
        ],
    };

    /// <summary>case.json's tolerance: 1e-4·max(1, max|ref|); logits (scaled by exp(logit_scale)) 1e-3 absolute.</summary>
    private static double Tolerance(string name, Tensor expected)
    {
        double maxRef;
        using (var a = expected.abs().max()) maxRef = a.to(float64).item<double>();
        double rel = 1e-4 * Math.Max(1, maxRef);
        return name.StartsWith("logits_") ? Math.Max(rel, 1e-3) : rel;
    }

    [Theory]
    [InlineData("clip_vit", "safetensors")]
    [InlineData("clip_vit", "pth")]
    [InlineData("clip_rn", "safetensors")]
    [InlineData("clip_rn", "pth")]
    public void ForwardMatchesOpenAiClip(string caseName, string ext)
    {
        var dir = TestPaths.Golden(caseName);
        using var model = new ClipModel(Config(caseName));
        var report = WeightLoader.Load(model, Path.Combine(dir, "weights." + ext), strict: true);
        Assert.True(report.IsExact);
        model.eval();

        var io = SafeTensors.Load(Path.Combine(dir, "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        using var _ = inference_mode();

        var got = model.ForwardIntermediates(io["input_image"], io["input_text"]);
        foreach (var t in got.Values) scope.Attach(t);

        var names = io.Keys.Where(k => !k.StartsWith("input_")).Order().ToList();
        Assert.Equal(Expected[caseName].Order(), names);
        foreach (var name in names)
        {
            Assert.True(got.ContainsKey(name), $"{caseName}: no output named {name}");
            var expected = io[name];
            var actual = got[name];
            Assert.Equal(expected.shape, actual.shape);
            double diff;
            using (var d = (actual.to(float64) - expected.to(float64)).abs().max()) diff = d.item<double>();
            double tol = Tolerance(name, expected);
            _out.WriteLine($"{caseName}/{ext} {name}: max|diff| {diff:E2} (tol {tol:E1})");
            Assert.True(diff <= tol, $"{caseName}/{name}: max|diff| = {diff:E3} > {tol:E3}");
        }

        // The public entry points agree with the intermediates path.
        TensorAssert.Close(io["image_embeds"], model.EncodeImage(io["input_image"]), "EncodeImage");
        TensorAssert.Close(io["text_embeds"], model.EncodeText(io["input_text"]), "EncodeText");
        TensorAssert.Close(io["text_embeds"], model.EncodeText(io["input_text"].to(int64)), "EncodeText(int64)");
        var (lpi, lpt) = model.forward(io["input_image"], io["input_text"]);
        TensorAssert.Close(io["logits_per_image"], lpi, "forward logits_per_image", 1e-3 / 3.6);
        TensorAssert.Close(io["logits_per_text"], lpt, "forward logits_per_text", 1e-3 / 3.6);
        Assert.Equal(io["logit_scale_exp"].item<float>(), model.LogitScaleExp, 5);
    }

    [Theory]
    [InlineData("clip_vit")]
    [InlineData("clip_rn")]
    public void StateDictKeysAndShapesAreOpenAiClips(string caseName)
    {
        using var model = new ClipModel(Config(caseName));
        var sd = model.state_dict();
        var keys = Case(caseName)["weights_keys"]!.AsObject();
        Assert.Equal(keys.Select(kv => kv.Key).Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, v) in keys)
            Assert.Equal(v!["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(), sd[k].shape);
        // The causal mask is built at run time, never a weight; logit_scale is a 0-d parameter.
        Assert.DoesNotContain(sd.Keys, k => k.Contains("attn_mask"));
        Assert.Empty(sd["logit_scale"].shape);
    }

    [Fact]
    public void ResNetShortcutKeepsOpenAiNaming()
    {
        using var model = new ClipModel(Config("clip_rn"));
        var names = model.named_modules().Select(m => m.name).ToHashSet();
        // The average pool of a strided shortcut is module "-1" (no weights, so absent from the state dict).
        Assert.Contains("visual.layer2.0.downsample.-1", names);
        Assert.Contains("visual.layer1.0.downsample.-1", names); // AvgPool2d(1) when only the width changes
        Assert.Contains("visual.layer2.0.avgpool", names);
        Assert.DoesNotContain("visual.layer1.0.avgpool", names);
    }

    [Fact]
    public void TextIsCausal()
    {
        // Changing a token after position p must not change the features up to p: take the EOT early and perturb later ids.
        using var model = new ClipModel(Config("clip_rn"));
        model.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var a = tensor(new int[] { 998, 5, 6, 999, 0, 0, 0, 0 }, [1, 8]);
        var b = tensor(new int[] { 998, 5, 6, 999, 7, 8, 9, 10 }, [1, 8]);
        TensorAssert.Close(model.EncodeText(a), model.EncodeText(b), "causal", 1e-6);
    }

    [Fact]
    public void BuildModelInferenceMatchesTheConstructorConfig()
    {
        foreach (var caseName in new[] { "clip_rn", "clip_vit" })
        {
            var shapes = Case(caseName)["weights_keys"]!.AsObject()
                .ToDictionary(kv => kv.Key, kv => kv.Value!["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray());
            var config = Config(caseName);
            if (caseName == "clip_rn")
            {
                Assert.Equal(config, ClipConfig.InferFromStateDict(shapes));
            }
            else
            {
                // transformer_width 8: build_model's width // 64 = 0 heads; the heads must be given.
                var ex = Assert.Throws<ArgumentException>(() => ClipConfig.InferFromStateDict(shapes));
                Assert.Contains("heads", ex.Message);
                Assert.Equal(config, ClipConfig.InferFromStateDict(shapes, transformerHeads: 2));
            }
        }
    }

    [Fact]
    public void InferenceRoundTripsTheKnownConfigsShapes()
    {
        // Shapes only (meta tensors would be nicer; a tiny real model per family keeps it cheap).
        foreach (var cfg in new[]
                 {
                     new ClipConfig(16, 64, [2], 64, 16, 12, 50, 64, 1, 3),
                     new ClipConfig(16, 96, [1, 1, 2, 1], 16, null, 10, 40, 128, 2, 1),
                 })
        {
            using var m = new ClipModel(cfg);
            var shapes = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
            Assert.Equal(cfg, ClipConfig.InferFromStateDict(shapes));
        }
        Assert.Equal(512, ClipConfig.ViTB32.EmbedDim);
        Assert.Equal(12, ClipConfig.ViTB32.VisionHeads);
        Assert.Equal(32, ClipConfig.RN50.VisionHeads);
    }

    [Fact]
    public void ClipLoaderInfersRnConfigAndDropsMetadataKeys()
    {
        var dir = TestPaths.Golden("clip_rn");
        using var model = ClipLoader.Load(Path.Combine(dir, "weights.safetensors"));
        Assert.Equal(Config("clip_rn"), model.Config);
        Assert.False(model.training);
        Assert.Equal(WeightLoader.FileSha256(Path.Combine(dir, "weights.safetensors")), model.WeightsHash);

        // A real openai checkpoint also carries input_resolution / context_length / vocab_size: ignored as build_model does.
        var sd = WeightLoader.ReadStateDict(Path.Combine(dir, "weights.safetensors"));
        try
        {
            sd["input_resolution"] = tensor(64L);
            sd["context_length"] = tensor(77L);
            sd["vocab_size"] = tensor(1000L);
            using var m2 = new ClipModel(model.Config);
            var report = ClipLoader.LoadStateDict(m2, sd);
            Assert.True(report.IsExact);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }

        var vit = Path.Combine(TestPaths.Golden("clip_vit"), "weights.pth");
        Assert.Throws<ArgumentException>(() => ClipLoader.Load(vit));            // heads not inferable
        using var v = ClipLoader.Load(vit, transformerHeads: 2);
        Assert.Equal(Config("clip_vit"), v.Config);
    }

    [Fact]
    public void ConfigJsonAndValidation()
    {
        var vit = Config("clip_vit");
        Assert.True(vit.IsVisionTransformer);
        Assert.Equal(2, vit.VisionHeads);
        var rn = Config("clip_rn");
        Assert.False(rn.IsVisionTransformer);
        Assert.Null(rn.VisionPatchSize);
        Assert.Equal(4, rn.VisionHeads);
        Assert.Contains("vision_layers=(1,2,1,1)", rn.ToString());

        var bad = Case("clip_vit")["config"]!.DeepClone().AsObject();
        bad["vision_layer"] = 3;
        Assert.Contains("vision_layer", Assert.Throws<ArgumentException>(() => ClipConfig.FromJson(bad)).Message);
        Assert.Contains("transformer_heads", Assert.Throws<ArgumentException>(() => new ClipModel(vit with { TransformerHeads = 3 })).Message);
        Assert.Contains("vision_patch_size", Assert.Throws<ArgumentException>(() => new ClipModel(vit with { VisionPatchSize = null })).Message);
        Assert.Contains("vision heads", Assert.Throws<ArgumentException>(() => new ClipModel(vit with { VisionWidth = 32 })).Message);
        Assert.Contains("multiple of 32", Assert.Throws<ArgumentException>(() => new ClipModel(rn with { ImageResolution = 48 })).Message);
        // A ViT whose width is not a multiple of 64 can still be built with explicit vision heads.
        using var m = new ClipModel(vit with { VisionWidth = 32, VisionHeadsOverride = 2 });
        Assert.Equal(2, m.Config.VisionHeads);
    }

    [Fact]
    public void WrongResolutionIsAClearError()
    {
        using var model = new ClipModel(Config("clip_vit"));
        using var x = zeros(1, 3, 48, 48);
        var ex = Assert.Throws<ArgumentException>(() => model.EncodeImage(x));
        Assert.Contains("32×32", ex.Message);
    }
}
