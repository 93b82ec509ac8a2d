using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Models;
using FairMedFM.Models.Onnx;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// An FM that has no port here, declared by an ONNX card in the weights folder (the packaged ResNet-18 ONNX stands
/// in for it), runs a cell end to end like a built-in model.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class OnnxCardCellTests
{
    [Fact]
    public void A_user_onnx_model_runs_a_cell()
    {
        using var tmp = new TempDir();
        var weights = tmp.Sub("weights");
        var folder = Path.Combine(weights, "my-onnx-fm");
        Directory.CreateDirectory(folder);
        // The card names a file in the weights folder (absolute paths are refused): a link to the packaged ONNX.
        File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), PackagedModels.ResNet18OnnxPath);
        File.WriteAllText(Path.Combine(folder, OnnxImageEncoder.CardFileName), """
            {"id": "my-onnx-fm", "onnx": "model.onnx", "image_size": 224, "feature_dim": 512,
             "normalization": {"kind": "dataset"}, "source": "test stand-in"}
            """);
        var ws = new Workspace(tmp.Sub("cache"), weights);
        var card = ModelCatalog.Card("my-onnx-fm", ws);
        Assert.Equal(OnnxImageEncoder.Family, card.Family);
        Assert.Contains("onnx-card.json", Assert.Throws<ArgumentException>(() => ModelCatalog.Card("my-onnx-fm")).Message);

        var runner = new CellRunner(ws);
        var spec = new CellSpec
        {
            Dataset = TinyData.WriteCard(tmp.Sub("card")), Model = "my-onnx-fm", Usage = "lp", Method = "erm", Attribute = "sex",
            Seed = 0, Training = TinyCellFixture.Training,
        };
        var r = runner.Run(spec);
        Assert.True(r.Status == "done", r.Error);
        Assert.Equal(ModelCatalog.WeightsHash("my-onnx-fm", ws), r.WeightsHash);
        Assert.Equal(WeightLoader.FileSha256(PackagedModels.ResNet18OnnxPath), r.WeightsHash);
    }
}
