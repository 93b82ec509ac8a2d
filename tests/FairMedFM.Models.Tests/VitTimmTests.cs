using System.Text.Json;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>timm 1.0.3 VisionTransformer against the timm_vit_{cls,map,avg} fixtures.</summary>
public class VitTimmTests
{
    private readonly ITestOutputHelper _out;
    public VitTimmTests(ITestOutputHelper output) => _out = output;

    public static VitConfig ConfigOf(JsonElement c) => new()
    {
        ImgSize = c.GetProperty("img_size").GetInt32(),
        PatchSize = c.GetProperty("patch_size").GetInt32(),
        EmbedDim = c.GetProperty("embed_dim").GetInt32(),
        Depth = c.GetProperty("depth").GetInt32(),
        NumHeads = c.GetProperty("num_heads").GetInt32(),
        NumClasses = c.GetProperty("num_classes").GetInt32(),
        GlobalPool = c.GetProperty("global_pool").GetString()!,
        ClassToken = !c.TryGetProperty("class_token", out var ct) || ct.GetBoolean(),
        FcNorm = c.TryGetProperty("fc_norm", out var fn) ? fn.GetBoolean() : null,
    };

    [Theory]
    [InlineData("timm_vit_cls", "safetensors")]
    [InlineData("timm_vit_cls", "pth")]
    [InlineData("timm_vit_map", "safetensors")]
    [InlineData("timm_vit_map", "pth")]
    [InlineData("timm_vit_avg", "safetensors")]
    [InlineData("timm_vit_avg", "pth")]
    public void MatchesTimm(string caseName, string ext)
    {
        using var g = new GoldenCase(caseName);
        using var model = new VisionTransformer(caseName, ConfigOf(g.Config));
        var report = WeightLoader.Load(model, g.Weights(ext)); // strict
        Assert.True(report.IsExact);
        Assert.Equal(g.WeightKeys().Count, report.Loaded.Count);
        model.eval();

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var io = g.Io;
        var x = io["input"];
        var log = new DiffLog(_out, $"{caseName}.{ext}", g.Rel);

        var patches = model.EmbedPatches(x);
        log.Check(io["patch_embed_out"], patches, "patch_embed_out");
        var tokens = model.AddPosEmbed(patches);
        log.Check(io["tokens_with_pos"], tokens, "tokens_with_pos");
        log.Check(io["block0_out"], model.ForwardBlock(0, tokens), "block0_out");
        var features = model.ForwardFeatures(x);
        log.Check(io["forward_features"], features, "forward_features");
        log.Check(io["pooled"], model.ForwardHead(features, preLogits: true), "pooled");
        log.Check(io["output"], model.forward(x), "output");
        log.Check(io["pooled"], model.ForwardPooled(x), "ForwardPooled");
        if (io.ContainsKey("attn_pool_out"))
            log.Check(io["attn_pool_out"], model.AttentionPool(features), "attn_pool_out");

        int expectedTensors = io.Count - 1; // all but the input
        Assert.Equal(expectedTensors, log.Diffs.Keys.Count(k => io.ContainsKey(k)));
    }

    [Theory]
    [InlineData("timm_vit_cls")]
    [InlineData("timm_vit_map")]
    [InlineData("timm_vit_avg")]
    public void StateDictKeysAreTimms(string caseName)
    {
        using var g = new GoldenCase(caseName);
        using var model = new VisionTransformer(caseName, ConfigOf(g.Config));
        var expected = g.WeightKeys();
        var sd = model.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.Equal(shape, sd[k].shape);
    }

    [Fact]
    public void FusedAttentionAgreesWithExplicit()
    {
        using var g = new GoldenCase("timm_vit_map");
        using var model = new VisionTransformer("m", ConfigOf(g.Config));
        WeightLoader.Load(model, g.Weights("safetensors"));
        model.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        VitOps.SetFusedAttention(model, true);
        var fused = model.forward(g.Io["input"]);
        double d = TensorAssert.Close(g.Io["output"], fused, "fused SDPA output");
        _out.WriteLine($"fused SDPA output max|diff| {d:E2}");
        VitOps.SetFusedAttention(model, false);
        TensorAssert.Close(g.Io["output"], model.forward(g.Io["input"]), "explicit again");
    }

    [Fact]
    public void WrongInputSizeIsRejectedLikeTimm()
    {
        using var model = new VisionTransformer("v", new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 16, Depth = 1, NumHeads = 2, NumClasses = 0 });
        using var x = zeros(1, 3, 40, 32);
        var ex = Assert.Throws<ArgumentException>(() => model.forward(x));
        Assert.Contains("doesn't match model", ex.Message);
        Assert.Throws<ArgumentException>(() => new VisionTransformer("bad", new VitConfig { ClassToken = false }));
        Assert.Throws<ArgumentException>(() => new VisionTransformer("bad", new VitConfig { GlobalPool = "max" }));
    }
}
