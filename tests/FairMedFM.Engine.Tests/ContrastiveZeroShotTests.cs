using System.Text.Json.Nodes;
using FairMedFM.Data;
using FairMedFM.Engine.Training;
using FairMedFM.Engine.Usages;
using FairMedFM.Models;
using FairMedFM.Models.Contrastive;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Text;
using FairMedFM.Models.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// clip-zs through the joined two-tower encoders on tiny configurations, per logit family (spec §3.2):
/// SigLIP/MedSigLIP <c>exp(logit_scale)·cos + logit_bias</c> with the checkpoint's constants; BiomedCLIP/MedCLIP/PLIP
/// <c>exp(logit_scale)·cos</c>. FairMedFM uses one template per dataset (no prompt ensembling) and P(y=1) =
/// softmax(logits)[:, 1] for every family — for SigLIP too, so its bias cancels in the two-prompt softmax.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class ContrastiveZeroShotTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly DatasetCard _cxp;

    public ContrastiveZeroShotTests()
    {
        _cxp = DatasetCard.Load(TinyData.WriteCard(_tmp.Sub("card"), "tiny_cxp_prompts", extraYaml: UsageTestModels.CxpZeroShot));
    }

    public void Dispose() => _tmp.Dispose();

    private static string SiglipFixture => Path.Combine(TestPaths.RepoRoot, "tests", "FairMedFM.Models.Tests", "Fixtures", "siglip_text");

    /// <summary>A tiny HF SiglipModel folder (random tiny vision tower, the fixture's text tower and constants, spiece.model).</summary>
    private ModelCard WriteTinySiglip(string weights)
    {
        var folder = Path.Combine(weights, "siglip-zs-tiny");
        Directory.CreateDirectory(folder);
        var vit = new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 1, NumHeads = 4, MlpHiddenDim = 48, ClassToken = false,
                                  GlobalPool = "map", FcNorm = false, NumClasses = 0, Activation = "gelu_tanh" };
        using (var scope = NewDisposeScope())
        {
            using var v = new VisionTransformer("v", vit);
            UsageTestModels.Randomize(v, 11);
            var ckpt = HfVisionModels.Export(v, HfKeyMaps.SiglipVision);
            foreach (var (k, t) in WeightLoader.ReadStateDict(Path.Combine(SiglipFixture, "weights.safetensors")))
                { scope.Attach(t); if (!k.StartsWith("vision_model.")) ckpt[k] = t; }
            SafeTensors.Save(Path.Combine(folder, "model.safetensors"), ckpt);
        }
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(SiglipFixture, "config.json")))!.AsObject();
        cfg["vision_config"] = new JsonObject { ["hidden_size"] = 32, ["intermediate_size"] = 48, ["num_hidden_layers"] = 1, ["num_attention_heads"] = 4,
                                                ["image_size"] = 32, ["patch_size"] = 8 };
        File.WriteAllText(Path.Combine(folder, "config.json"), cfg.ToJsonString());
        File.Copy(Path.Combine(SiglipFixture, "spiece.model"), Path.Combine(folder, "spiece.model"));
        var zoo = ModelZoo.GetCard("siglip-base");
        return new ModelCard
        {
            Id = "test-siglip-zs-tiny", Family = zoo.Family, Vit = vit, FeatureDim = 32, ImageSize = 32, HfFolder = "siglip-zs-tiny",
            NormalizationKind = "meanstd", Mean = zoo.Mean, Std = zoo.Std, TextTower = zoo.TextTower, ZeroShotLogitScale = zoo.ZeroShotLogitScale,
        };
    }

    private static double Softmax1(double l0, double l1) => 1 / (1 + Math.Exp(l0 - l1));

    [Fact]
    public void Siglip_zero_shot_logits_are_scale_cos_plus_bias_and_probabilities_the_two_prompt_softmax()
    {
        var weights = _tmp.Sub("weights");
        var card = WriteTinySiglip(weights);
        ModelCatalog.Register(card);
        try
        {
            var ws = new Workspace(_tmp.Sub("cache-siglip"), weights);
            var text = ClipUsages.Text(ws, card.Id, _cxp);
            Assert.Equal(new[] { "a chest X-ray of a diseased", "a chest X-ray of a normal" }, text.Embeddings.Prompts); // one template, no ensembling
            Assert.Equal(Math.Exp(2.302585), text.Scale, 4);  // exp(logit_scale) of the checkpoint
            Assert.Equal(-10.0, text.Bias, 5);                 // its logit_bias

            // The cached text embeddings are the SigLIP text tower's get_text_features of the two prompts.
            using var enc = (ContrastiveEncoder)ModelCatalog.CreateEncoder(card.Id, ws);
            using var scope = NewDisposeScope();
            var t = enc.EncodeText(text.Embeddings.Prompts.ToArray());
            Assert.Equal(UsageTestModels.Floats(t), text.Embeddings.Values);

            var images = randn(new long[] { 6, 3, 32, 32 }, generator: new Generator(5, CPU));
            var img = enc.Encode(images);
            using var head = text.Head(trainable: false);
            var logits = head.forward(img);
            var cos = nn.functional.normalize(img, dim: 1).matmul(nn.functional.normalize(t, dim: 1).t());
            var expected = cos * text.Scale + text.Bias;
            Assert.True((logits - expected).abs().max().item<float>() < 1e-4);

            var rows = new SplitData(Enumerable.Range(0, 6).ToArray(), UsageTestModels.Floats(img), 32, [0, 1, 0, 1, 0, 1]);
            var probe = ClipUsages.ZeroShot(text, rows, rows, rows);
            var l = UsageTestModels.Floats(logits);
            for (int i = 0; i < 6; i++)
            {
                Assert.Equal(Softmax1(l[2 * i], l[2 * i + 1]), probe.TestProbs[i], 5);
                // FairMedFM's softmax over the two prompts: the bias cancels (the native SigLIP per-pair sigmoid would not).
                var noBias = new ZeroShotText(text.Embeddings, text.Scale, 0.0);
                Assert.Equal(probe.TestProbs[i], ClipUsages.ZeroShot(noBias, rows, rows, rows).TestProbs[i], 6);
            }
        }
        finally { ModelCatalog.Unregister(card.Id); }
    }

    [Fact]
    public void BiomedClip_style_zero_shot_uses_the_checkpoints_logit_scale_and_no_bias()
    {
        // A joined encoder from real (tiny, seeded) modules: timm ViT image tower + open_clip HF BERT text tower.
        var folder = _tmp.Sub("biomed-text");
        string[] words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "chest", "x", "-", "ray", "of", "diseased", "normal"];
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), words);
        var bert = new BertConfig { VocabSize = words.Length, HiddenSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 32,
                                    MaxPositionEmbeddings = 256, AddPoolingLayer = false };
        var card = new ModelCard
        {
            Id = "test-biomedclip-zs-tiny", Family = ContrastiveModels.FamilyOpenClipTimm, FeatureDim = 24, ImageSize = 32, NormalizationKind = "dataset",
            ZeroShotLogitScale = ModelZoo.GetCard("biomedclip").ZeroShotLogitScale,
        };
        Assert.Null(card.ZeroShotLogitScale!.Fixed);
        ModelCatalog.Register(card, _ =>
        {
            var vit = new VisionTransformer(card.Id, new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 1, NumHeads = 4, NumClasses = 24, HeadBias = false });
            UsageTestModels.Randomize(vit, 21);
            var image = new VitImageEncoder<VisionTransformer>(card.Id, vit, (m, x) => m.forward(x), 24, "tiny-biomedclip-hash");
            return AdaptableContrastiveEncoder.Join(card.Id, image, () =>
            {
                var tower = new OpenClipHfTextTower("t", bert, 24, "cls_last_hidden_state_pooler", "mlp");
                UsageTestModels.Randomize(tower, 22);
                var tok = BertWordPieceTokenizer.FromVocabFile(Path.Combine(folder, "vocab.txt"));
                var enc = new BertTextEncoder(card.Id, tower, tok, 256, BertPadding.MaxLength, "tiny-biomedclip-hash");
                return new TextSide(new BertPromptEncoder(enc), 42.0, null);
            });
        });
        try
        {
            var ws = new Workspace(_tmp.Sub("cache-biomed"), null);
            var text = ClipUsages.Text(ws, card.Id, _cxp);
            Assert.Equal(42.0, text.Scale, 10);
            Assert.Equal(0.0, text.Bias);
            Assert.Equal(42.0, text.Embeddings.LogitScaleExp);
            Assert.Null(text.Embeddings.LogitBias);
            using var scope = NewDisposeScope();
            var x = randn(new long[] { 4, 24 }, generator: new Generator(8, CPU));
            using var head = text.Head(false);
            var t = tensor(text.Embeddings.Values, [2, 24]);
            var expected = nn.functional.normalize(x, dim: 1).matmul(nn.functional.normalize(t, dim: 1).t()) * 42.0;
            Assert.True((head.forward(x) - expected).abs().max().item<float>() < 1e-4);
            // A second cell: the text tower does not run again (cache by weights hash + prompts).
            Assert.True(ClipUsages.Text(ws, card.Id, _cxp).Embeddings.CacheHit);
        }
        finally { ModelCatalog.Unregister(card.Id); }
    }
}
