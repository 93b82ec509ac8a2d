using System.Text.Json;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>segment-anything ImageEncoderViT (and LVM-Med's pooled feature) against the sam_vit fixture's encoder outputs.</summary>
public class VitSamTests
{
    private readonly ITestOutputHelper _out;
    public VitSamTests(ITestOutputHelper output) => _out = output;

    public static SamVitConfig ConfigOf(JsonElement c) => new()
    {
        ImgSize = c.GetProperty("img_size").GetInt32(),
        PatchSize = c.GetProperty("patch_size").GetInt32(),
        EmbedDim = c.GetProperty("embed_dim").GetInt32(),
        Depth = c.GetProperty("depth").GetInt32(),
        NumHeads = c.GetProperty("num_heads").GetInt32(),
        WindowSize = c.GetProperty("window_size").GetInt32(),
        GlobalAttnIndexes = c.GetProperty("global_attn_indexes").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        OutChans = c.GetProperty("prompt_dim").GetInt32(),
        UseAbsPos = true,
        UseRelPos = true,
    };

    [Theory]
    [InlineData("safetensors")]
    [InlineData("pth")]
    public void ImageEncoderMatchesSegmentAnything(string ext)
    {
        using var g = new GoldenCase("sam_vit");
        using var enc = new SamImageEncoderViT("image_encoder", ConfigOf(g.Config));
        var report = enc.LoadFromSamCheckpoint(g.Weights(ext));

        // Every image-encoder key loaded; the prompt encoder / mask decoder keys are reported, exactly those.
        var keys = g.WeightKeys().Keys.ToList();
        var encoderKeys = keys.Where(k => k.StartsWith("image_encoder.")).Select(k => k["image_encoder.".Length..]).Order(StringComparer.Ordinal);
        Assert.Equal(encoderKeys, report.Loaded.Order(StringComparer.Ordinal));
        Assert.Equal(keys.Where(k => !k.StartsWith("image_encoder.")).Order(StringComparer.Ordinal), report.Unexpected);
        Assert.Empty(report.Missing);
        Assert.Empty(report.MisShaped);
        Assert.Contains(report.Unexpected, k => k.StartsWith("prompt_encoder."));
        Assert.Contains(report.Unexpected, k => k.StartsWith("mask_decoder."));
        enc.eval();

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var io = g.Io;
        var log = new DiffLog(_out, $"sam_vit.{ext}", g.Rel);
        var x = io["fm_input"];
        var patches = enc.EmbedPatches(x);
        log.Check(io["fm_patch_embed_out"], patches, "fm_patch_embed_out");
        var b0 = enc.ForwardBlock(0, patches.add(enc.state_dict()["pos_embed"]));
        log.Check(io["fm_block0_out"], b0, "fm_block0_out");
        var last = enc.ForwardBlocks(x);
        log.Check(io["fm_block_last_out"], last, "fm_block_last_out");
        log.Check(io["fm_image_embeddings"], enc.forward(x), "fm_image_embeddings");
        // The official Sam.forward path: a batch of two preprocessed images.
        log.Check(io["fwd_image_embeddings"], enc.forward(io["fwd_preprocessed"]), "fwd_image_embeddings");

        // LVM-Med's feature: global average of the last block map, batch axis kept for B = 1 (B24 fixed).
        var pooled = enc.ForwardPooled(x);
        Assert.Equal(new long[] { 1, 64 }, pooled.shape);
        log.Check(io["fm_block_last_out"].mean([1, 2]), pooled, "lvmmed_pooled(fm_block_last_out)");
    }

    [Fact]
    public void StateDictKeysAreSegmentAnythings()
    {
        using var g = new GoldenCase("sam_vit");
        using var enc = new SamImageEncoderViT("e", ConfigOf(g.Config));
        var expected = g.WeightKeys().Where(kv => kv.Key.StartsWith("image_encoder."))
            .ToDictionary(kv => kv.Key["image_encoder.".Length..], kv => kv.Value);
        var sd = enc.state_dict();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.Equal(shape, sd[k].shape);
    }

    [Fact]
    public void EncoderOnlyFileAndMismatchedConfig()
    {
        using var g = new GoldenCase("sam_vit");
        using var dir = new TestPaths.TempDir();
        var sd = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        try
        {
            // A file holding only the encoder (no prefix) loads strictly with nothing unexpected.
            var file = Path.Combine(dir.Path, "enc.safetensors");
            SafeTensors.Save(file, sd.Where(kv => kv.Key.StartsWith("image_encoder."))
                                    .ToDictionary(kv => kv.Key["image_encoder.".Length..], kv => kv.Value));
            using var enc = new SamImageEncoderViT("e", ConfigOf(g.Config));
            var r = enc.LoadFromSamCheckpoint(file);
            Assert.True(r.IsExact);

            // A config that does not fit the file (window 4 → rel-pos tables of 7, not 9) throws naming the key.
            using var wrong = new SamImageEncoderViT("w", ConfigOf(g.Config) with { WindowSize = 4 });
            var ex = Assert.Throws<WeightLoadException>(() => wrong.LoadFromSamCheckpoint(g.Weights("safetensors")));
            Assert.Contains("blocks.0.attn.rel_pos_h", ex.Message);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void RelPosTablesAreLinearlyResampledWhenSizesDiffer()
    {
        // get_rel_pos with a table of 9 rows for 7×7 attention (13 rows needed): F.interpolate(mode="linear",
        // align_corners=False), checked against the closed form src = (i + 0.5)·in/out − 0.5 clamped at 0.
        using var scope = NewDisposeScope();
        var table = randn(9, 4, generator: new Generator(5));
        var got = SamRelPos.GetRelPos(7, 7, table);
        Assert.Equal(new long[] { 7, 7, 4 }, got.shape);
        var t = table.data<float>().ToArray();
        int inLen = 9, outLen = 13;
        for (int qi = 0; qi < 7; qi++)
            for (int ki = 0; ki < 7; ki++)
            {
                int r = qi - ki + 6;
                double src = Math.Max((r + 0.5) * inLen / outLen - 0.5, 0);
                int i0 = (int)Math.Floor(src), i1 = Math.Min(i0 + 1, inLen - 1);
                double lam = src - i0;
                for (int c = 0; c < 4; c++)
                {
                    double expected = (1 - lam) * t[i0 * 4 + c] + lam * t[i1 * 4 + c];
                    Assert.Equal(expected, got[qi, ki, c].item<float>(), 5);
                }
            }
        // Equal sizes: a pure gather, row (q − k + k_size − 1).
        var same = SamRelPos.GetRelPos(5, 5, table);
        Assert.True(TensorAssert.Same(table[8], same[4, 0]));
        Assert.True(TensorAssert.Same(table[4], same[2, 2]));
        Assert.True(TensorAssert.Same(table[0], same[0, 4]));
    }

    [Fact]
    public void LvmMedShapesAt224WithoutAbsPos()
    {
        // The LVM-Med layout (1024 setting, no abs pos) at a tiny width: 224 px → 14×14 tokens, rel-pos tables of the
        // global blocks sized for 64×64 (127 rows) resampled to 27; windows of 14 need no padding.
        var cfg = SamVitConfig.LvmMedVitB with { EmbedDim = 32, NumHeads = 2, Depth = 3, GlobalAttnIndexes = [2], OutChans = 16 };
        using var enc = new SamImageEncoderViT("lvm", cfg);
        var sd = enc.state_dict();
        Assert.DoesNotContain("pos_embed", sd.Keys);
        Assert.Equal(new long[] { 127, 16 }, sd["blocks.2.attn.rel_pos_h"].shape);
        Assert.Equal(new long[] { 27, 16 }, sd["blocks.0.attn.rel_pos_w"].shape);
        enc.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 224, 224);
        Assert.Equal(new long[] { 2, 14, 14, 32 }, enc.ForwardBlocks(x).shape);
        Assert.Equal(new long[] { 2, 32 }, enc.ForwardPooled(x).shape);
        Assert.Equal(new long[] { 1, 32 }, enc.ForwardPooled(x.narrow(0, 0, 1)).shape);

        using var withAbs = new SamImageEncoderViT("sam", cfg with { UseAbsPos = true });
        Assert.Throws<ArgumentException>(() => withAbs.forward(x));
    }
}
