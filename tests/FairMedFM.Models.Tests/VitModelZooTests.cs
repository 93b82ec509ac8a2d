using System.Collections;
using FairMedFM.Models.Vit;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The transformer cards of the model zoo: real ViT-B configurations, missing-weights errors, and the IImageEncoder
/// wrappers with each card's loading policy exercised on the tiny golden configurations.
/// </summary>
public class VitModelZooTests
{
    private readonly ITestOutputHelper _out;
    public VitModelZooTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void CardsCarryTheRealViTBConfigs()
    {
        var dino = ModelZoo.GetCard("dinov2-vitb14");
        Assert.Equal(VitModelZoo.FamilyDinoV2, dino.Family);
        Assert.Equal(new DinoV2Config { ImgSize = 518, PatchSize = 14, EmbedDim = 768, Depth = 12, NumHeads = 12, InitValues = 1e-5, InterpolateOffset = 0.1 }, dino.DinoV2);
        Assert.Equal(("meanstd", 768, 224), (dino.NormalizationKind, dino.FeatureDim, dino.ImageSize));
        Assert.Equal(ModelZoo.ImageNetMean, dino.Mean);

        var mae = ModelZoo.GetCard("medmae-vitb16");
        Assert.Equal(VitModelZoo.FamilyTimmVit, mae.Family);
        Assert.Equal(new VitConfig { ImgSize = 224, PatchSize = 16, EmbedDim = 768, Depth = 12, NumHeads = 12, GlobalPool = "token", ClassToken = true }, mae.Vit);
        Assert.Equal(768, mae.FeatureDim);

        var lvm = ModelZoo.GetCard("lvmmed-vitb16");
        Assert.Equal(VitModelZoo.FamilySamVit, lvm.Family);
        var s = lvm.SamVit!;
        Assert.Equal((1024, 16, 768, 12, 12, 14, false, true), (s.ImgSize, s.PatchSize, s.EmbedDim, s.Depth, s.NumHeads, s.WindowSize, s.UseAbsPos, s.UseRelPos));
        Assert.Equal(new[] { 2, 5, 8, 11 }, s.GlobalAttnIndexes);
        Assert.Equal((768, 224), (lvm.FeatureDim, lvm.ImageSize));
    }

    [Theory]
    [InlineData("dinov2-vitb14", "dinov2_vitb14_pretrain.pth")]
    [InlineData("medmae-vitb16", "vit-b_CXR_0.5M_mae.pth")]
    [InlineData("lvmmed-vitb16", "lvmmed_vit.pth")]
    public void MissingWeightsNameTheExpectedFile(string id, string file)
    {
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder(id, dir.Path, dir.Path));
        Assert.Contains(file, ex.Message);
        Assert.Contains(dir.Path, ex.Message);
        var ex2 = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder(id, null, dir.Path));
        Assert.Contains(file, ex2.Message);
    }

    private static void Pickle(string path, IEnumerable<KeyValuePair<string, Tensor>> sd, string? wrapper = null)
    {
        var inner = new Hashtable();
        foreach (var (k, t) in sd) inner[k] = t;
        PyTorchPickler.PickleStateDict(path, wrapper is null ? inner : new Hashtable { [wrapper] = inner, ["epoch"] = 799 });
    }

    [Fact]
    public void DinoV2EncoderFromWeightsDir()
    {
        using var g = new GoldenCase("dinov2_vit");
        using var dir = new TestPaths.TempDir();
        File.Copy(g.Weights("pth"), Path.Combine(dir.Path, "dinov2_vitb14_pretrain.pth"));
        var card = new ModelCard
        {
            Id = "dinov2-tiny", Family = VitModelZoo.FamilyDinoV2, DinoV2 = VitDinoV2Tests.ConfigOf(g.Config), FeatureDim = 64,
            ImageSize = 56, WeightsFile = "dinov2_vitb14_pretrain.pth",
        };
        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null);
        Assert.Equal(WeightLoader.FileSha256(g.Weights("pth")), enc.WeightsHash);
        Assert.Equal(64, enc.FeatureDim);
        using var scope = NewDisposeScope();
        for (int i = 0; i < 3; i++)
            _out.WriteLine($"dinov2 encoder output_{i}: {TensorAssert.Close(g.Io[$"output_{i}"], enc.Encode(g.Io[$"input_{i}"]), $"output_{i}", g.Rel):E2}");
    }

    [Fact]
    public void MedMaeEncoderDropsHeadAndDecoderKeysButNotEncoderKeys()
    {
        using var g = new GoldenCase("timm_vit_cls");
        using var dir = new TestPaths.TempDir();
        var sd = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        using var decoderEmbed = randn(32, 64);
        using var maskToken = zeros(1, 1, 32);
        try
        {
            // An MAE pretraining checkpoint: {"model": encoder + decoder keys, ...}; the head (here 5 classes, not the
            // model's) is dropped whatever its shape.
            var card = new ModelCard
            {
                Id = "medmae-tiny", Family = VitModelZoo.FamilyTimmVit, Vit = VitTimmTests.ConfigOf(g.Config), FeatureDim = 64,
                ImageSize = 32, WeightsFile = "vit-b_CXR_0.5M_mae.pth",
            };
            var file = Path.Combine(dir.Path, card.WeightsFile);
            Pickle(file, sd.Append(new("decoder_embed.weight", decoderEmbed)).Append(new("mask_token", maskToken)), wrapper: "model");
            using (var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null))
            {
                using var scope = NewDisposeScope();
                var d = TensorAssert.Close(g.Io["pooled"], enc.Encode(g.Io["input"]), "medmae pooled", g.Rel);
                _out.WriteLine($"medmae encoder pooled: {d:E2}");
                Assert.Equal(64, enc.FeatureDim);
                var model = ((VitImageEncoder<VisionTransformer>)enc).Model;
                Assert.DoesNotContain("head.weight", model.state_dict().Keys);
            }

            // An encoder key missing from the file is an error (FairMedFM's strict=False would leave it random).
            File.Delete(file);
            Pickle(file, sd.Where(kv => kv.Key != "norm.weight"), wrapper: "model");
            var ex = Assert.Throws<WeightLoadException>(() => ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null));
            Assert.Contains("norm.weight", ex.Missing);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void LvmMedEncoderLoadsModelPrefixedKeysStrictly()
    {
        using var g = new GoldenCase("sam_vit");
        using var dir = new TestPaths.TempDir();
        var sd = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        try
        {
            // The fixture's encoder has an absolute pos-embed (LVM-Med's has none); the loading policy is the same.
            var card = new ModelCard
            {
                Id = "lvmmed-tiny", Family = VitModelZoo.FamilySamVit, SamVit = VitSamTests.ConfigOf(g.Config), FeatureDim = 64,
                ImageSize = 128, WeightsFile = "lvmmed_vit.pth",
            };
            var file = Path.Combine(dir.Path, card.WeightsFile);
            var encoderKeys = sd.Where(kv => kv.Key.StartsWith("image_encoder."))
                                .Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key["image_encoder.".Length..], kv.Value)).ToList();
            Pickle(file, encoderKeys);
            using (var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null))
            {
                using var scope = NewDisposeScope();
                var f = enc.Encode(g.Io["fm_input"]);
                Assert.Equal(new long[] { 1, 64 }, f.shape); // B = 1 keeps its batch axis (B24)
                var d = TensorAssert.Close(g.Io["fm_block_last_out"].mean([1, 2]), f, "lvmmed pooled", g.Rel);
                _out.WriteLine($"lvmmed encoder pooled: {d:E2}");
            }

            // Strict: a file with an extra key (here a prompt-encoder tensor) is refused, naming it.
            File.Delete(file);
            Pickle(file, encoderKeys.Append(new("model.prompt_encoder.no_mask_embed.weight", sd["prompt_encoder.no_mask_embed.weight"])));
            var ex = Assert.Throws<WeightLoadException>(() => ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null));
            Assert.Contains("prompt_encoder.no_mask_embed.weight", ex.Unexpected);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void CardWhoseDeclaredWidthDisagreesWithItsConfigIsRejected()
    {
        using var g = new GoldenCase("dinov2_vit");
        using var dir = new TestPaths.TempDir();
        File.Copy(g.Weights("safetensors"), Path.Combine(dir.Path, "w.safetensors"));
        var card = new ModelCard
        {
            Id = "bad", Family = VitModelZoo.FamilyDinoV2, DinoV2 = VitDinoV2Tests.ConfigOf(g.Config), FeatureDim = 768,
            ImageSize = 56, WeightsFile = "w.safetensors",
        };
        var ex = Assert.Throws<InvalidOperationException>(() => ModelZoo.CreateEncoder(card, dir.Path, dir.Path, device: null));
        Assert.Contains("FeatureDim", ex.Message);
    }
}
