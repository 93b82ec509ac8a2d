using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

public class ModelZooTests
{
    [Fact]
    public void CardsDescribeTheModels()
    {
        var ids = ModelZoo.Cards.Select(c => c.Id).ToList();
        Assert.Contains("resnet18-imagenet-cntk", ids);
        Assert.Contains("resnet18", ids);
        Assert.Contains("resnet50", ids);
        Assert.Contains("clip-vit-b32", ids);
        Assert.Contains("pubmedclip-vit-b32", ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        foreach (var c in ModelZoo.Cards)
        {
            int configDim = c.Family switch
            {
                "resnet" => c.ResNetFeature == "head-l2" ? c.ResNet!.NumClasses : c.ResNet!.FeatureDim,
                "clip" => c.Clip!.EmbedDim,
                Vit.VitModelZoo.FamilyTimmVit => c.Vit!.EmbedDim,
                Vit.VitModelZoo.FamilyDinoV2 => c.DinoV2!.EmbedDim,
                Vit.VitModelZoo.FamilySamVit => c.SamVit!.EmbedDim,
                Hf.HfVisionModels.FamilyDinov2 => c.DinoV2!.EmbedDim,
                Swin.SwinModelZoo.FamilySwin => 512, // MedCLIP's projection_head output (Swin-T pooled is 768)
                Hf.HfVisionModels.FamilySiglipVision or Hf.HfVisionModels.FamilyClipVision => c.Vit!.EmbedDim,
                Contrastive.ContrastiveModels.FamilyOpenClipTimm => c.Vit!.NumClasses, // BiomedCLIP: model.visual(x) = the 512-d projection
                Hf.HfClipModel.Family => 512,                                            // PLIP: projection_dim (get_image_features)
                _ => throw new Xunit.Sdk.XunitException($"card {c.Id}: unknown family {c.Family}"),
            };
            Assert.Equal(configDim, c.FeatureDim);
            if (c.Family == "clip") Assert.Equal(c.Clip!.ImageResolution, c.ImageSize);
            Assert.Equal(c.Id == "medsiglip-448" ? 448 : 224, c.ImageSize);
            Assert.Contains(c.NormalizationKind, new[] { "model-mean-image", "dataset", "meanstd" });
        }
        Assert.Null(ModelZoo.GetCard("resnet18-imagenet-cntk").WeightsFile);
        Assert.Equal(2048, ModelZoo.GetCard("RESNET50").FeatureDim);
        Assert.Throws<ArgumentException>(() => ModelZoo.GetCard("vit-huge"));
    }

    [Fact]
    public void MissingWeightsNameTheExpectedFile()
    {
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder("resnet50", dir.Path, dir.Path));
        Assert.Contains("resnet50-0676ba61.pth", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
        var ex2 = Assert.Throws<FileNotFoundException>(() => ModelZoo.CreateEncoder("resnet18", null, dir.Path));
        Assert.Contains("resnet18-f37072fd.pth", ex2.Message);
    }

    [Fact]
    public void TorchvisionEncoderFromWeightsDirMatchesGolden()
    {
        using var dir = new TestPaths.TempDir();
        var golden = TestPaths.Golden("resnet18");
        var sd = RecipeWeights.Generate(Path.Combine(golden, "weights_recipe.json"));
        var file = Path.Combine(dir.Path, "resnet18.safetensors");
        SafeTensors.Save(file, sd);
        foreach (var t in sd.Values) t.Dispose();

        using var enc = ModelZoo.CreateEncoder("resnet18", dir.Path, dir.Path);
        Assert.Equal(WeightLoader.FileSha256(file), enc.WeightsHash);
        var io = SafeTensors.Load(Path.Combine(golden, "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        TensorAssert.Close(io["pooled"], enc.Encode(io["input"]), "encoder pooled");
    }

    [Fact]
    public void MeanStdNormalization()
    {
        using var scope = NewDisposeScope();
        var card = ModelZoo.GetCard("resnet18");
        var x = full(1, 3, 2, 2, 0.5f);
        var y = ImageNormalization.Apply(card, x);
        for (int c = 0; c < 3; c++)
            Assert.Equal((0.5f - ModelZoo.ImageNetMean[c]) / ModelZoo.ImageNetStd[c], y[0, c, 1, 1].item<float>(), 5);
    }
}
