using System.Diagnostics;
using System.Text.Json;
using FairMedFM.Models.Sam;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>MobileSAM's TinyViT image encoder against the mobilesam_tinyvit fixture (MobileSAM @ 34bbbfd, torch 1.13).</summary>
public class TinyVitGoldenTests
{
    private const string Case = "mobilesam_tinyvit";
    private readonly ITestOutputHelper _out;
    public TinyVitGoldenTests(ITestOutputHelper output) => _out = output;

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    /// <summary>The fixture's constructor arguments (img_size 1024, in_chans 3, local_conv_size 3 are the constructor text's).</summary>
    public static TinyVitConfig ConfigOf(GoldenCase g)
    {
        var c = g.Config;
        var ctor = g.Case.GetProperty("constructor").GetString()!;
        Assert.Contains("img_size=1024", ctor);
        Assert.Contains("local_conv_size=3", ctor);
        return new TinyVitConfig(
            ImgSize: 1024, InChans: 3, NumClasses: c.GetProperty("num_classes").GetInt32(),
            EmbedDims: Ints(c.GetProperty("embed_dims")), Depths: Ints(c.GetProperty("depths")),
            NumHeads: Ints(c.GetProperty("num_heads")), WindowSizes: Ints(c.GetProperty("window_sizes")),
            MlpRatio: c.GetProperty("mlp_ratio").GetDouble(), MbConvExpandRatio: c.GetProperty("mbconv_expand_ratio").GetDouble(),
            LocalConvSize: 3);
    }

    private static TensorIndex Every(long step) => TensorIndex.Slice(null, null, step);

    /// <summary>max|diff| ≤ abs (the fixture's rule for the row/column sums).</summary>
    private void CheckAbs(Tensor expected, Tensor actual, string what, double abs)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        double d = (actual.to(float64) - expected.to(float64)).abs().max().item<double>();
        _out.WriteLine($"{Case}/{what}: max|diff| {d:E2} (abs tol {abs:E1})");
        Assert.True(d <= abs, $"{what}: max|diff| = {d:E3} > {abs:E3}");
    }

    [Fact]
    public void EncoderMatchesMobileSamAndEveryStoredIntermediate()
    {
        using var g = new GoldenCase(Case);
        using var enc = new TinyViT(ConfigOf(g));
        var report = enc.LoadFromSamCheckpoint(g.Weights("safetensors"));
        Assert.True(report.IsExact);
        Assert.Equal(g.WeightKeys().Count, report.Loaded.Count);
        enc.eval();

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var io = g.Io;
        var log = new DiffLog(_out, Case, g.Rel);

        // The fixture's input: the stored 128² image bilinearly upsampled (align_corners=False) to 1024².
        var x = nn.functional.interpolate(io["input_small"], size: [1024, 1024], mode: InterpolationMode.Bilinear, align_corners: false);
        double sum = x.to(float64).sum().item<double>(), refSum = io["input_sum"].item<double>();
        _out.WriteLine($"{Case}/input_sum: ours {sum:R}, ref {refSum:R}");
        Assert.True(Math.Abs(sum - refSum) <= 1e-6 * x.abs().sum().item<float>(), $"input sum {sum} vs {refSum}");

        var sw = Stopwatch.StartNew();
        var pe = enc.EmbedPatches(x);
        Assert.Equal(new long[] { 1, 8, 256, 256 }, pe.shape);
        log.Check(io["patch_embed_out_s8"], pe.index(TensorIndex.Colon, TensorIndex.Colon, Every(8), Every(8)), "patch_embed_out_s8");

        var y = pe;
        long[][] fullShapes = [[1, 16384, 16], [1, 4096, 24], [1, 4096, 320], [1, 4096, 320]];
        for (int k = 0; k < enc.LayerCount; k++)
        {
            y = enc.ForwardLayer(k, y);
            Assert.Equal(fullShapes[k], y.shape);
            int s = k < 2 ? 16 : 64;
            var key = $"layer{k}_out_tok_s{s}";
            log.Check(io[key], y.index(TensorIndex.Colon, Every(s)), key);
        }

        var output = enc.Neck(y);
        _out.WriteLine($"{Case}: staged forward {sw.ElapsedMilliseconds} ms");
        Assert.Equal(new long[] { 1, 256, 64, 64 }, output.shape);
        log.Check(io["output_s4"], output.index(TensorIndex.Colon, TensorIndex.Colon, Every(4), Every(4)), "output_s4");
        log.Check(io["output_corner"], output.index(TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(0, 8), TensorIndex.Slice(0, 8)), "output_corner");
        log.Check(io["output_chan_mean"], output.mean([2, 3]), "output_chan_mean");
        CheckAbs(io["output_rowsum"], output.sum(3), "output_rowsum", 2e-3);
        CheckAbs(io["output_colsum"], output.sum(2), "output_colsum", 2e-3);

        // The module's own forward is the same computation as the staged calls above.
        Assert.True(TensorAssert.Same(output, enc.forward(x)));
    }

    [Fact]
    public void StateDictKeysAndShapesAreMobileSams()
    {
        using var g = new GoldenCase(Case);
        using var enc = new TinyViT(ConfigOf(g));
        var expected = g.WeightKeys();
        var sd = enc.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.True(shape.SequenceEqual(sd[k].shape), $"{k}: [{string.Join(",", sd[k].shape)}]");
        Assert.Equal(int64, sd["layers.0.blocks.0.conv1.bn.num_batches_tracked"].dtype);

        // attention_bias_idxs: a registered non-persistent buffer (persistent=False in the reference), so absent from
        // the state dict; converting the module (which re-registers buffers) must not make it persistent.
        Assert.DoesNotContain(sd.Keys, k => k.Contains("attention_bias_idxs"));
        enc.to(float64);
        Assert.DoesNotContain(enc.state_dict().Keys, k => k.Contains("attention_bias_idxs"));
    }

    [Fact]
    public void FullCheckpointWithImageEncoderPrefixLoadsAndReportsTheRest()
    {
        using var g = new GoldenCase(Case);
        using var dir = new TestPaths.TempDir();
        var sd = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        using var pe = randn(2, 128);
        using var tok = randn(1, 256);
        try
        {
            // mobile_sam.pt layout: image_encoder.* next to the prompt encoder and mask decoder.
            var full = sd.ToDictionary(kv => TinyViT.SamCheckpointPrefix + kv.Key, kv => kv.Value);
            full["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = pe;
            full["mask_decoder.iou_token.weight"] = tok;
            var file = Path.Combine(dir.Path, "mobile_sam.safetensors");
            SafeTensors.Save(file, full);

            using var enc = new TinyViT(ConfigOf(g));
            var r = enc.LoadFromSamCheckpoint(file);
            Assert.Empty(r.Missing);
            Assert.Empty(r.MisShaped);
            Assert.Equal(sd.Keys.Order(StringComparer.Ordinal), r.Loaded.Order(StringComparer.Ordinal));
            Assert.Equal(["mask_decoder.iou_token.weight", "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"], r.Unexpected);
            var mine = enc.state_dict();
            foreach (var (k, t) in sd) Assert.True(TensorAssert.Same(t, mine[k]), k);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void StrictLoadNamesAMissingKeyAndCopiesNothing()
    {
        using var g = new GoldenCase(Case);
        using var dir = new TestPaths.TempDir();
        var sd = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        try
        {
            const string dropped = "layers.2.blocks.0.attn.attention_biases";
            var file = Path.Combine(dir.Path, "partial.safetensors");
            SafeTensors.Save(file, sd.Where(kv => kv.Key != dropped).ToDictionary(kv => TinyViT.SamCheckpointPrefix + kv.Key, kv => kv.Value));
            using var enc = new TinyViT(ConfigOf(g));
            using var before = enc.state_dict()["neck.0.weight"].clone();
            var ex = Assert.Throws<WeightLoadException>(() => enc.LoadFromSamCheckpoint(file));
            Assert.Equal([dropped], ex.Missing);
            Assert.Contains(dropped, ex.Message);
            Assert.Contains("partial.safetensors", ex.Message);
            Assert.True(TensorAssert.Same(before, enc.state_dict()["neck.0.weight"]), "strict load must copy nothing on failure");
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void StrictLoadNamesAMisShapedKey()
    {
        using var g = new GoldenCase(Case);
        // Windows of 7 in stage 2 give 49 bias offsets; the checkpoint was made with 14 (196 offsets).
        var cfg = ConfigOf(g) with { WindowSizes = [7, 7, 7, 7] };
        using var enc = new TinyViT(cfg);
        var ex = Assert.Throws<WeightLoadException>(() => enc.LoadFromSamCheckpoint(g.Weights("safetensors")));
        Assert.Empty(ex.Missing);
        var m = Assert.Single(ex.ShapeMismatches);
        Assert.Equal("layers.2.blocks.0.attn.attention_biases", m.Name);
        Assert.Equal(new long[] { 3, 49 }, m.Expected);
        Assert.Equal(new long[] { 3, 196 }, m.InFile);
        Assert.Contains("layers.2.blocks.0.attn.attention_biases: expected [3, 49], file has [3, 196]", ex.Message);
    }

    [Fact]
    public void AttentionBiasIndexesFollowTheReferenceOffsetRule()
    {
        // Square window: offset (|dr|, |dc|) first appears at point (0,0) → index |dr|·w + |dc|; w² offsets.
        var (idx, count) = TinyVitAttention.AttentionBiasIndexes(7, 7);
        Assert.Equal(49, count);
        for (int p1 = 0; p1 < 49; p1++)
            for (int p2 = 0; p2 < 49; p2++)
                Assert.Equal(Math.Abs(p1 / 7 - p2 / 7) * 7 + Math.Abs(p1 % 7 - p2 % 7), idx[p1 * 49 + p2]);
        Assert.Equal(196, TinyVitAttention.AttentionBiasIndexes(14, 14).Offsets);
        // A 2×3 window: offsets in first-seen order from (0,0): (0,0),(0,1),(0,2),(1,0),(1,1),(1,2).
        var (small, n) = TinyVitAttention.AttentionBiasIndexes(2, 3);
        Assert.Equal(6, n);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5 }, small.Take(6).ToArray());
        Assert.Equal(new long[] { 4, 3, 4, 1, 0, 1 }, small.Skip(6 * 4).Take(6).ToArray()); // point (1,1)
    }

    [Fact]
    public void AttentionBiasIsGatheredFromTheLiveParameterInEvalMode()
    {
        // The reference caches attention_biases[:, idxs] at .eval(); weights set afterwards must still count here.
        using var attn = new TinyVitAttention("attn", 8, 4, 2, 1.0, (3, 3));
        attn.eval();
        using var scope = NewDisposeScope();
        var gen = new Generator(11);
        using (no_grad())
            foreach (var (_, w) in attn.named_parameters()) w.copy_(randn(w.shape, generator: gen));
        var p = attn.named_parameters().Single(kv => kv.name == "attention_biases").parameter;
        using (no_grad()) p.copy_(arange(2 * 9, dtype: float32).view(2, 9));
        var bias = attn.AttentionBias();
        Assert.Equal(new long[] { 2, 9, 9 }, bias.shape);
        // Points 0 = (0,0) and 5 = (1,2): offset (1,2) → index 1·3 + 2 = 5; head 1 adds 9.
        Assert.Equal(5f, bias[0, 0, 5].item<float>());
        Assert.Equal(14f, bias[1, 5, 0].item<float>());
        Assert.Equal(9f, bias[1, 4, 4].item<float>());
        var x = randn(3, 9, 8);
        var y1 = attn.forward(x);
        // The new parameter values are used at once (no stale copy from the .eval() above): a constant shift of the
        // bias shows in the gathered table but leaves softmax unchanged; a position-dependent change alters the output.
        using (no_grad()) p.add_(1.0);
        Assert.True(TensorAssert.Same(attn.AttentionBias(), bias.add(1.0)));
        TensorAssert.Close(y1, attn.forward(x), "constant bias shift", 1e-5);
        using (no_grad()) p.mul_(3.0);
        Assert.True((y1 - attn.forward(x)).abs().max().item<float>() > 1e-2);

        // A dtype change keeps the (integer) index table and gathers the converted parameter.
        var before = attn.AttentionBias();
        attn.to(float64);
        var after = attn.AttentionBias();
        Assert.Equal(float64, after.dtype);
        Assert.True(TensorAssert.Same(before.to(float64), after));
    }

    [Fact]
    public void MobileSamConfigIsTheRealTinyVit5M()
    {
        var c = TinyVitConfig.MobileSam;
        Assert.Equal(1024, c.ImgSize);
        Assert.Equal([64, 128, 160, 320], c.EmbedDims);
        Assert.Equal([2, 2, 6, 2], c.Depths);
        Assert.Equal([2, 4, 5, 10], c.NumHeads);
        Assert.Equal([7, 7, 14, 7], c.WindowSizes);
        Assert.Equal((4.0, 4.0, 3, 1000), (c.MlpRatio, c.MbConvExpandRatio, c.LocalConvSize, c.NumClasses));
        Assert.Equal(64, c.OutputGrid);
        Assert.Equal(c, TinyVitConfig.TinySam);
        Assert.Equal(c, c with { EmbedDims = [64, 128, 160, 320] }); // lists compared by value

        // Counts from the reference constructor (tiny_vit_sam.TinyViT with build_sam_vit_t's arguments, torch 1.13):
        // 302 state-dict entries, 6,065,532 parameters (norm_head/head included).
        using var enc = new TinyViT(c);
        var sd = enc.state_dict();
        Assert.Equal(302, sd.Count);
        Assert.Equal(6_065_532L, enc.parameters().Sum(p => p.numel()));
        Assert.Equal(new long[] { 5, 196 }, sd["layers.2.blocks.5.attn.attention_biases"].shape);
        Assert.Equal(new long[] { 480, 160 }, sd["layers.2.blocks.5.attn.qkv.weight"].shape);
        Assert.Equal(new long[] { 640, 160 }, sd["layers.2.blocks.5.mlp.fc1.weight"].shape);
        Assert.Equal(new long[] { 256, 64, 1, 1 }, sd["layers.0.blocks.1.conv1.c.weight"].shape);
        Assert.Equal(new long[] { 160, 1, 3, 3 }, sd["layers.1.downsample.conv2.c.weight"].shape);
        Assert.Equal(new long[] { 320, 1, 3, 3 }, sd["layers.2.downsample.conv2.c.weight"].shape);
        Assert.Equal(new long[] { 1000, 320 }, sd["head.weight"].shape);
        Assert.Equal(new long[] { 256, 320, 1, 1 }, sd["neck.0.weight"].shape);
        Assert.DoesNotContain(sd.Keys, k => k.StartsWith("layers.3.downsample"));
    }

    [Fact]
    public void MobileSamArchitectureRunsAtASmallSize()
    {
        // The real widths/depths/heads/windows at 128 px (32² patch grid, then 16², 8², 8²: every window pads), random
        // weights: the shapes and finiteness of every stage. The reference itself only runs at 1024 (bench: full size).
        var cfg = TinyVitConfig.MobileSam with { ImgSize = 128 };
        var sw = Stopwatch.StartNew();
        using var enc = new TinyViT(cfg);
        enc.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 128, 128, generator: new Generator(3));
        var y = enc.EmbedPatches(x);
        Assert.Equal(new long[] { 2, 64, 32, 32 }, y.shape);
        long[][] shapes = [[2, 256, 128], [2, 64, 160], [2, 64, 320], [2, 64, 320]];
        for (int k = 0; k < 4; k++)
        {
            y = enc.ForwardLayer(k, y);
            Assert.Equal(shapes[k], y.shape);
        }
        var emb = enc.Neck(y);
        Assert.Equal(new long[] { 2, 256, 8, 8 }, emb.shape);
        Assert.True(emb.isfinite().all().item<bool>());
        // Each image is encoded on its own: batch 2 = two batches of 1.
        TensorAssert.Close(enc.forward(x.narrow(0, 1, 1)), emb.narrow(0, 1, 1), "batch independence", 1e-5);
        _out.WriteLine($"MobileSAM TinyViT built and run at 128 px, batch 2 (+1): {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void BadConfigsAndInputsAreRefusedWithTheReason()
    {
        var c = TinyVitConfig.MobileSam;
        Assert.Contains("320, 448 or 576", Assert.Throws<ArgumentException>(() => new TinyViT(c with { EmbedDims = [64, 128, 160, 250] })).Message);
        Assert.Contains("multiple of 16", Assert.Throws<ArgumentException>(() => new TinyViT(c with { ImgSize = 1000 })).Message);
        Assert.Contains("num_heads", Assert.Throws<ArgumentException>(() => new TinyViT(c with { NumHeads = [2, 4, 3, 10] })).Message);
        Assert.Contains("4 entries", Assert.Throws<ArgumentException>(() => new TinyViT(c with { Depths = [2, 2, 6] })).Message);

        using var enc = new TinyViT(c with { ImgSize = 64, EmbedDims = [8, 16, 24, 320], Depths = [1, 1, 1, 1], NumHeads = [1, 1, 1, 1], NumClasses = 0 });
        Assert.DoesNotContain(enc.state_dict().Keys, k => k.StartsWith("head."));
        using var wrong = zeros(1, 3, 128, 128);
        Assert.Contains("[B, 3, 64, 64]", Assert.Throws<ArgumentException>(() => enc.forward(wrong)).Message);
        using var gray = zeros(1, 1, 64, 64);
        Assert.Throws<ArgumentException>(() => enc.forward(gray));
    }
}
