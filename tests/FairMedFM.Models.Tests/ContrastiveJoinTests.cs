using FairMedFM.Models.Contrastive;
using FairMedFM.Models.Swin;
using FairMedFM.Models.Text;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// BiomedCLIP and MedCLIP as one encoder each: one checkpoint in the reference layout (open_clip's
/// <c>visual.*</c> + <c>text.*</c> + <c>logit_scale</c>; MedCLIP's <c>vision_model.*</c> + <c>text_model.*</c> +
/// <c>logit_scale</c>), seeded random tiny towers, a small vocab.txt. The joined encoder must give exactly what the
/// separately verified towers give (the BERT towers are checked against ONNX Runtime in BertTextTowerTests), the
/// checkpoint's exp(logit_scale), and build the text tower only when zero-shot asks.
/// </summary>
public class ContrastiveJoinTests
{
    private static readonly string[] Words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "chest", "x", "-", "ray", "of", "diseased", "normal",
                                              "photo", "benign", "malignant", "lesion", "fundus", "image", "glaucoma"];

    private static BertConfig TinyBert(int maxPos) => new()
    {
        VocabSize = Words.Length, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = maxPos,
    };

    private static void WriteTextFiles(string folder, BertConfig b)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), Words);
        File.WriteAllText(Path.Combine(folder, "config.json"),
            $$"""{"model_type": "bert", "hidden_size": {{b.HiddenSize}}, "num_hidden_layers": {{b.NumHiddenLayers}}, "num_attention_heads": {{b.NumAttentionHeads}}, "intermediate_size": {{b.IntermediateSize}}, "vocab_size": {{b.VocabSize}}, "max_position_embeddings": {{b.MaxPositionEmbeddings}}, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0}""");
    }

    private static void Randomise(nn.Module m, int seed)
    {
        var g = new Generator(seed: (ulong)seed);
        using var _ = no_grad();
        foreach (var (_, p) in m.named_parameters()) p.copy_(randn(p.shape, generator: g).mul_(0.2));
    }

    private static readonly string[] Prompts = ["a chest x-ray of a diseased", "a chest x-ray of a normal", "a photo of a malignant lesion"];

    [Fact]
    public void BiomedClip_one_open_clip_checkpoint_gives_image_and_text_towers_and_logit_scale()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var vit = new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 1, NumHeads = 4, NumClasses = 512, HeadBias = false };
        using var visual = new VisionTransformer("v", vit);
        Randomise(visual, 1);
        var bert = TinyBert(256) with { AddPoolingLayer = false };
        using var text = new OpenClipHfTextTower("t", bert, 512, "cls_last_hidden_state_pooler", "mlp");
        Randomise(text, 2);
        var ckpt = OpenClipTimmLayout.Export(visual);
        foreach (var (k, t) in text.state_dict()) ckpt["text." + k] = t;
        ckpt["text.transformer.embeddings.position_ids"] = arange(256L).unsqueeze(0);
        ckpt["logit_scale"] = tensor(MathF.Log(50f));
        WriteTextFiles(Path.Combine(dir.Path, "biomedclip"), bert);
        SafeTensors.Save(Path.Combine(dir.Path, "biomedclip", "open_clip_model.safetensors"), ckpt);

        var card = new ModelCard
        {
            Id = "test-biomedclip", Family = ContrastiveModels.FamilyOpenClipTimm, Vit = vit, FeatureDim = 512, ImageSize = 32,
            WeightsFile = "biomedclip/open_clip_pytorch_model.bin", WeightsFileAlternatives = ["biomedclip/open_clip_model.safetensors"],
            NormalizationKind = "dataset", LoraTargets = ["qkv"], TextTower = "biomedclip",
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0, "exp(logit_scale)"),
        };
        using var enc = (ContrastiveEncoder)ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        Assert.IsType<AdaptableContrastiveEncoder>(enc);
        var x = randn(2, 3, 32, 32, generator: new Generator(seed: 3));
        visual.eval();
        using (no_grad()) TensorAssert.Close(visual.forward(x), enc.Encode(x), "model.visual(x)", 1e-6);
        Assert.False(enc.TextLoaded);

        using var reference = TextModelZoo.CreateEncoder("biomedclip", dir.Path);
        TensorAssert.Close(reference.EncodeText(Prompts), enc.EncodeText(Prompts), "encode_text = the biomedclip text card", 0);
        Assert.Equal(50.0, enc.LogitScaleExp, 4);
        Assert.Null(enc.LogitBias);
    }

    [Fact]
    public void MedClip_one_checkpoint_gives_swin_image_and_bert_text_towers_and_logit_scale()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var swin = new SwinConfig { EmbedDim = 8, Depths = [1, 1], NumHeads = [1, 2], WindowSize = [2, 2], NumClasses = 0 };
        using var vision = new MedClipVisionModel("vision_model", swin, 512);
        Randomise(vision, 4);
        var bert = TinyBert(77);
        using var text = new MedClipTextTower("text_model", bert, 512);
        Randomise(text, 5);
        var ckpt = MedClipVisionModel.CheckpointLayout(swin).ToHf(vision.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        foreach (var (k, t) in text.state_dict()) ckpt["text_model." + k] = t;
        ckpt["logit_scale"] = tensor(MathF.Log(1 / 0.07f));
        WriteTextFiles(Path.Combine(dir.Path, "medclip-vit"), bert);
        SafeTensors.Save(Path.Combine(dir.Path, "medclip-vit", "model.safetensors"), ckpt);

        var zoo = ModelZoo.GetCard("medclip-vit");
        var card = new ModelCard
        {
            Id = "test-medclip", Family = SwinModelZoo.FamilySwin, Swin = swin, FeatureDim = 512, ImageSize = 16,
            WeightsFile = zoo.WeightsFile, WeightsFileAlternatives = zoo.WeightsFileAlternatives, NormalizationKind = "dataset",
            LoraTargets = zoo.LoraTargets, TextTower = zoo.TextTower, ZeroShotLogitScale = zoo.ZeroShotLogitScale,
        };
        Assert.Equal("medclip-vit", card.TextTower);
        using var enc = (ContrastiveEncoder)ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        Assert.IsType<AdaptableContrastiveEncoder>(enc); // FairMedFM's lora_targets query/key/value on the Swin
        var x = randn(2, 3, 16, 16, generator: new Generator(seed: 6));
        vision.eval();
        using (no_grad()) TensorAssert.Close(vision.forward(x), enc.Encode(x), "vision_model(x)", 1e-6);
        using var reference = TextModelZoo.CreateEncoder("medclip-vit", dir.Path);
        TensorAssert.Close(reference.EncodeText(Prompts), enc.EncodeText(Prompts), "text_model = the medclip-vit text card", 0);
        Assert.Equal(1 / 0.07, enc.LogitScaleExp, 3);

        // Zero-shot without the vocabulary: the image side works, the text side names what is missing.
        File.Delete(Path.Combine(dir.Path, "medclip-vit", "vocab.txt"));
        using var enc2 = (ContrastiveEncoder)ModelZoo.CreateEncoder(card, dir.Path, dir.Path);
        Assert.Equal(new long[] { 2, 512 }, enc2.Encode(x).shape);
        Assert.Contains("vocab.txt", Assert.Throws<FileNotFoundException>(() => enc2.EncodeText(Prompts)).Message);
    }

    [Fact]
    public void Models_list_says_whether_the_zero_shot_tokenizer_files_are_there()
    {
        using var dir = new TestPaths.TempDir();
        var card = ModelZoo.GetCard("medclip-vit");
        Directory.CreateDirectory(Path.Combine(dir.Path, "medclip-vit"));
        // A well-formed torch.save file (models list checks the layout, not the keys).
        File.Copy(Path.Combine(TestPaths.Golden("clip_vit"), "weights.pth"), Path.Combine(dir.Path, "medclip-vit", "pytorch_model.bin"));
        var a = ModelStatus.Check(card, dir.Path);
        Assert.True(a.Available);
        Assert.EndsWith("zero-shot needs medclip-vit/vocab.txt", a.Weights);
        File.WriteAllLines(Path.Combine(dir.Path, "medclip-vit", "vocab.txt"), Words);
        Assert.EndsWith("zero-shot: vocab.txt found", ModelStatus.Check(card, dir.Path).Weights);
        Assert.Contains("text = BERT", ModelStatus.Verification(card));
    }

    [Fact]
    public void Zoo_cards_of_the_two_tower_families_carry_their_text_tower_and_zero_shot_scale()
    {
        foreach (var id in new[] { "biomedclip", "medclip-vit", "siglip-base", "medsiglip-448", "plip", "clip-vit-b32", "pubmedclip-vit-b32" })
        {
            var c = ModelZoo.GetCard(id);
            Assert.NotNull(c.ZeroShotLogitScale);
            Assert.True(ContrastiveModels.Handles(c) || c.Family == "clip", id);
            Assert.DoesNotContain("not verified", ModelStatus.Verification(c));
        }
        Assert.True(ModelZoo.GetCard("siglip-base").ZeroShotLogitScale!.BiasFromWeights);
        Assert.False(ModelZoo.GetCard("biomedclip").ZeroShotLogitScale!.BiasFromWeights);
        Assert.DoesNotContain(ModelStatus.NotYetAvailable, n => n.Id.StartsWith("biomedclip"));
        Assert.Contains(ModelStatus.NotYetAvailable, n => n.Id == "blip-vitb16");
        // FairMedFM lora_targets: BiomedCLIP qkv, MedCLIP query/key/value; PLIP/SigLIP not eligible.
        Assert.Equal(["qkv"], ModelZoo.GetCard("biomedclip").LoraTargets!);
        Assert.Null(ModelZoo.GetCard("plip").LoraTargets);
        Assert.Null(ModelZoo.GetCard("siglip-base").LoraTargets);
    }
}
