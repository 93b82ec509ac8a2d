using System.Collections;
using System.IO.Compression;
using FairMedFM.Models.Clip;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>CLIP model cards, <see cref="ClipEncoder"/> as image and text encoder, weights resolution.</summary>
public class ClipEncoderTests
{
    /// <summary>A card like the zoo's CLIP cards but with the golden fixture's tiny architecture.</summary>
    private static ModelCard TinyCard(ModelCard like, string caseName) => new()
    {
        Id = like.Id + "-tiny",
        Family = like.Family,
        Clip = ClipModelTests.Config(caseName),
        FeatureDim = ClipModelTests.Config(caseName).EmbedDim,
        ImageSize = ClipModelTests.Config(caseName).ImageResolution,
        WeightsFile = like.WeightsFile,
        WeightsFileAlternatives = like.WeightsFileAlternatives,
        WeightsUrl = like.WeightsUrl,
        WeightsWrapperKey = like.WeightsWrapperKey,
        NormalizationKind = like.NormalizationKind,
        Mean = like.Mean,
        Std = like.Std,
        ZeroShotLogitScale = like.ZeroShotLogitScale,
    };

    /// <summary>A zip laid out like torch.jit.save's output (what OpenAI's ViT-B-32.pt is).</summary>
    internal static void WriteFakeTorchScript(string path)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var name in new[] { "ViT-B-32/data.pkl", "ViT-B-32/constants.pkl", "ViT-B-32/code/__torch__/model.py", "ViT-B-32/version" })
            using (var w = new StreamWriter(zip.CreateEntry(name).Open())) w.Write("x");
    }

    [Fact]
    public void ZooEncoderMatchesGoldenImageAndTextEmbeddings()
    {
        var golden = TestPaths.Golden("clip_vit");
        using var dir = new TestPaths.TempDir();
        var card = TinyCard(ModelZoo.GetCard("clip-vit-b32"), "clip_vit");
        // The downloaded TorchScript .pt is skipped in favour of the converted state dict beside it.
        WriteFakeTorchScript(Path.Combine(dir.Path, "ViT-B-32.pt"));
        var file = Path.Combine(dir.Path, "ViT-B-32.safetensors");
        File.Copy(Path.Combine(golden, "weights.safetensors"), file);

        using var enc = ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        var clip = Assert.IsType<ClipEncoder>(enc);
        ITextEncoder text = clip;
        Assert.Equal(32, enc.FeatureDim);
        Assert.Equal(32, text.FeatureDim);
        Assert.Equal(WeightLoader.FileSha256(file), enc.WeightsHash);
        Assert.False(clip.Model.training);
        Assert.All(clip.Model.parameters(), p => Assert.False(p.requires_grad));

        var io = SafeTensors.Load(Path.Combine(golden, "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        TensorAssert.Close(io["image_embeds"], enc.Encode(io["input_image"]), "Encode = encode_image");
        var te = text.EncodeText(["a chest X-ray of a diseased", "a chest X-ray of a normal", "a photo of a malignant lesion!"]);
        Assert.Equal(ScalarType.Float32, te.dtype);
        Assert.Equal(TorchSharp.DeviceType.CPU, te.device.type);
        TensorAssert.Close(io["text_embeds"], te, "EncodeText = encode_text(tokenize(prompts))");
        Assert.Equal(new long[] { 0, 32 }, text.EncodeText([]).shape);

        // FairMedFM's zero-shot scale for CLIP is a fixed 100, whatever exp(logit_scale) (here ≈ 15.01) is.
        Assert.Equal(100.0, card.ZeroShotLogitScale!.Apply(clip.LogitScaleExp));
        Assert.Equal(io["logit_scale_exp"].item<float>(), clip.LogitScaleExp, 4);
    }

    [Fact]
    public void PubMedClipStyleCheckpointWrappedInStateDictLoads()
    {
        var golden = TestPaths.Golden("clip_vit");
        using var dir = new TestPaths.TempDir();
        var card = TinyCard(ModelZoo.GetCard("pubmedclip-vit-b32"), "clip_vit");
        var sd = WeightLoader.ReadStateDict(Path.Combine(golden, "weights.safetensors"));
        var inner = new Hashtable();
        foreach (var (k, t) in sd) inner[k] = t;
        PyTorchPickler.PickleStateDict(Path.Combine(dir.Path, "PubMedCLIP_ViT32.pth"), new Hashtable { ["state_dict"] = inner, ["epoch"] = 7 });
        foreach (var t in sd.Values) t.Dispose();

        using var enc = (ClipEncoder)ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        var io = SafeTensors.Load(Path.Combine(golden, "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        TensorAssert.Close(io["image_embeds"], enc.Encode(io["input_image"]), "PubMedCLIP-style image embeds");

        // FairMedFM's PubMedCLIP quirk: e^0.01 / e^0.07 · exp(logit_scale).
        Assert.Equal(Math.Exp(-0.06) * enc.LogitScaleExp, card.ZeroShotLogitScale!.Apply(enc.LogitScaleExp), 12);
    }

    [Fact]
    public void RnTowerThroughTheEncoderAndTokenIds()
    {
        var golden = TestPaths.Golden("clip_rn");
        using var model = ClipLoader.Load(Path.Combine(golden, "weights.safetensors"));
        using var enc = new ClipEncoder("clip-rn-tiny", model);
        var io = SafeTensors.Load(Path.Combine(golden, "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        TensorAssert.Close(io["image_embeds"], enc.Encode(io["input_image"]), "RN Encode");
        TensorAssert.Close(io["text_embeds"], enc.EncodeTokens(io["input_text"]), "RN EncodeTokens");
        // vocab_size 1000 ≠ the BPE vocabulary: prompts cannot be tokenized for this model.
        var ex = Assert.Throws<InvalidOperationException>(() => enc.EncodeText(["a chest X-ray"]));
        Assert.Contains("vocab_size (1000)", ex.Message);
    }

    [Fact]
    public void CardsForOpenAiClipAndPubMedClip()
    {
        var clip = ModelZoo.GetCard("clip-vit-b32");
        var pub = ModelZoo.GetCard("pubmedclip-vit-b32");
        foreach (var c in new[] { clip, pub })
        {
            Assert.Equal("clip", c.Family);
            Assert.Equal(ClipConfig.ViTB32, c.Clip);
            Assert.Equal(512, c.FeatureDim);
            Assert.Equal(224, c.ImageSize);
            Assert.Equal("meanstd", c.NormalizationKind);
            Assert.Equal(ModelZoo.ClipMean, c.Mean);
            Assert.Equal(ModelZoo.ClipStd, c.Std);
        }
        Assert.Equal("ViT-B-32.pt", clip.WeightsFile);
        Assert.Contains("ViT-B-32.safetensors", clip.WeightsFileAlternatives);
        Assert.Equal("PubMedCLIP_ViT32.pth", pub.WeightsFile);
        Assert.Equal("state_dict", pub.WeightsWrapperKey);
        Assert.Equal(100.0, clip.ZeroShotLogitScale!.Fixed);
        Assert.Null(pub.ZeroShotLogitScale!.Fixed);
        Assert.Equal(Math.Exp(-0.06), pub.ZeroShotLogitScale.Multiplier, 12);
    }

    [Fact]
    public void MissingOrTorchScriptWeightsAreClearErrors()
    {
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder("clip-vit-b32", dir.Path, dir.Path));
        Assert.Contains("ViT-B-32.pt", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
        var ex2 = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder("pubmedclip-vit-b32", null, dir.Path));
        Assert.Contains("PubMedCLIP_ViT32.pth", ex2.Message);

        var pt = Path.Combine(dir.Path, "ViT-B-32.pt");
        WriteFakeTorchScript(pt);
        var ts = Assert.Throws<InvalidDataException>(() => ModelZoo.CreateEncoder("clip-vit-b32", dir.Path, dir.Path));
        Assert.Contains("TorchScript", ts.Message);
        Assert.Contains("torch.jit.load", ts.Message);
        Assert.Contains("ViT-B-32.safetensors", ts.Message);
        Assert.True(WeightLoader.IsTorchScriptArchive(pt));
        Assert.False(WeightLoader.IsTorchScriptArchive(Path.Combine(TestPaths.Golden("clip_vit"), "weights.pth")));
        Assert.False(WeightLoader.IsTorchScriptArchive(Path.Combine(TestPaths.Golden("clip_vit"), "weights.safetensors")));
        var direct = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(pt));
        Assert.Contains("TorchScript", direct.Message);
    }
}
