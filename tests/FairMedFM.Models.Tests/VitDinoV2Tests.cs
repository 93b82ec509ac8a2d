using System.Text.Json;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>DINOv2 DinoVisionTransformer against the dinov2_vit fixture (three inputs: interpolated, non-square, as-is).</summary>
public class VitDinoV2Tests
{
    private readonly ITestOutputHelper _out;
    public VitDinoV2Tests(ITestOutputHelper output) => _out = output;

    public static DinoV2Config ConfigOf(JsonElement c) => new()
    {
        ImgSize = c.GetProperty("img_size").GetInt32(),
        PatchSize = c.GetProperty("patch_size").GetInt32(),
        EmbedDim = c.GetProperty("embed_dim").GetInt32(),
        Depth = c.GetProperty("depth").GetInt32(),
        NumHeads = c.GetProperty("num_heads").GetInt32(),
        MlpRatio = c.GetProperty("mlp_ratio").GetDouble(),
        InitValues = c.GetProperty("init_values").GetDouble(),
        NumRegisterTokens = c.GetProperty("num_register_tokens").GetInt32(),
        InterpolateAntialias = c.GetProperty("interpolate_antialias").GetBoolean(),
        InterpolateOffset = c.GetProperty("interpolate_offset").GetDouble(),
    };

    public static DinoVisionTransformer Load(GoldenCase g, string ext)
    {
        var model = new DinoVisionTransformer("dinov2", ConfigOf(g.Config));
        var report = WeightLoader.Load(model, g.Weights(ext)); // strict
        Assert.True(report.IsExact);
        Assert.Equal(g.WeightKeys().Count, report.Loaded.Count);
        model.eval();
        return model;
    }

    [Theory]
    [InlineData("safetensors")]
    [InlineData("pth")]
    public void MatchesDinoV2(string ext)
    {
        using var g = new GoldenCase("dinov2_vit");
        using var model = Load(g, ext);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var io = g.Io;
        var log = new DiffLog(_out, $"dinov2_vit.{ext}", g.Rel);
        for (int i = 0; i < 3; i++)
        {
            var x = io[$"input_{i}"];
            // interpolate_pos_encoding(cat(cls, patch_embed(x)), W=x.shape[2], H=x.shape[3]) needs only the token count.
            long n = (x.shape[2] / 14) * (x.shape[3] / 14);
            var pe = model.InterpolatePosEncoding(zeros(x.shape[0], 1 + n, model.FeatureDim), x.shape[2], x.shape[3]);
            log.Check(io[$"pos_embed_interpolated_{i}"], pe, $"pos_embed_interpolated_{i}");
            var prepared = model.PrepareTokens(x);
            log.Check(io[$"prepared_tokens_{i}"], prepared, $"prepared_tokens_{i}");
            log.Check(io[$"block0_out_{i}"], model.ForwardBlock(0, prepared), $"block0_out_{i}");
            using var f = model.ForwardFeatures(x);
            log.Check(io[$"x_norm_clstoken_{i}"], f.XNormClsToken, $"x_norm_clstoken_{i}");
            log.Check(io[$"x_norm_patchtokens_{i}"], f.XNormPatchTokens, $"x_norm_patchtokens_{i}");
            log.Check(io[$"x_prenorm_{i}"], f.XPrenorm, $"x_prenorm_{i}");
            log.Check(io[$"output_{i}"], model.forward(x), $"output_{i}");
        }
        Assert.Equal(io.Count - 3, log.Diffs.Count);
    }

    [Fact]
    public void StateDictKeysAreDinoV2s()
    {
        using var g = new GoldenCase("dinov2_vit");
        using var model = new DinoVisionTransformer("d", ConfigOf(g.Config));
        var expected = g.WeightKeys();
        var sd = model.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.Equal(shape, sd[k].shape);
        Assert.Contains("mask_token", sd.Keys);
        Assert.Contains("blocks.1.ls2.gamma", sd.Keys);
    }

    [Fact]
    public void NoInterpolationReturnsPosEmbedItself()
    {
        using var g = new GoldenCase("dinov2_vit");
        using var model = Load(g, "safetensors");
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        // 70×70 → 5×5 patches = the stored grid: pos_embed as is (bit-exact).
        var pe = model.InterpolatePosEncoding(zeros(1, 26, 64), 70, 70);
        Assert.True(TensorAssert.Same(model.state_dict()["pos_embed"], pe));
        // Sizes that are not multiples of the patch fail like DINOv2's PatchEmbed assertion.
        Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 3, 57, 56)));
    }

    [Fact]
    public void ScaleFactorNotSizeDrivesTheBicubicMapping()
    {
        // Negative control: the same weights interpolated to an explicit size (offset 0: the coordinate map uses
        // M/w0 instead of M/(w0 + 0.1)) miss the fixture by far more than the tolerance, so the parity above really
        // pins the scale-factor mapping.
        using var g = new GoldenCase("dinov2_vit");
        using var bySize = new DinoVisionTransformer("d", ConfigOf(g.Config) with { InterpolateOffset = 0 });
        WeightLoader.Load(bySize, g.Weights("safetensors"));
        bySize.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var pe = bySize.InterpolatePosEncoding(zeros(2, 17, 64), 56, 56);
        var expected = g.Io["pos_embed_interpolated_0"];
        double diff = (pe - expected).abs().max().item<float>();
        _out.WriteLine($"size-based interpolation misses by {diff:E2}");
        Assert.True(diff > 1e-2, $"size-based interpolation unexpectedly close ({diff:E2})");
    }

    [Fact]
    public void HubLayoutAt224InterpolatesThe37GridTo16()
    {
        // dinov2_vitb14's layout (518 px → 37×37 pos-embed grid, layer scale) at a tiny width, fed FairMedFM's 224 px.
        using var model = new DinoVisionTransformer("hub-tiny", DinoV2Config.VitB14 with { EmbedDim = 16, NumHeads = 2, Depth = 1 });
        Assert.Equal(new long[] { 1, 1370, 16 }, model.state_dict()["pos_embed"].shape);
        model.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 224, 224);
        Assert.Equal(new long[] { 1, 257, 16 }, model.InterpolatePosEncoding(zeros(2, 257, 16), 224, 224).shape);
        Assert.Equal(new long[] { 2, 257, 16 }, model.PrepareTokens(x).shape);
        Assert.Equal(new long[] { 2, 16 }, model.forward(x).shape);
        Assert.Equal(new long[] { 1, 16 }, model.forward(x.narrow(0, 0, 1)).shape);
    }

    [Fact]
    public void RegisterTokensSitAfterTheClassTokenWithoutPosEmbed()
    {
        using var model = new DinoVisionTransformer("reg", new DinoV2Config { ImgSize = 28, EmbedDim = 16, NumHeads = 2, Depth = 1, NumRegisterTokens = 4 });
        var sd = model.state_dict();
        Assert.Equal(new long[] { 1, 4, 16 }, sd["register_tokens"].shape);
        using (no_grad()) sd["register_tokens"].normal_();
        model.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 28, 28);
        var t = model.PrepareTokens(x);
        Assert.Equal(new long[] { 2, 9, 16 }, t.shape);
        Assert.True(TensorAssert.Same(sd["register_tokens"][0], t[1].narrow(0, 1, 4)));
        using var f = model.ForwardFeatures(x);
        Assert.Equal(new long[] { 2, 4, 16 }, f.XNormRegTokens.shape);
        Assert.Equal(new long[] { 2, 4, 16 }, f.XNormPatchTokens.shape);
        TensorAssert.Close(f.XNormClsToken, model.forward(x), "forward = normed CLS", 1e-6);
    }
}
