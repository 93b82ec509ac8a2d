namespace FairMedFM.Models.Tests;

public class ModelStatusTests
{
    [Fact]
    public void Packaged_found_and_missing_weights_are_told_apart()
    {
        var dir = Path.Combine(Path.GetTempPath(), "fmfm-status-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var packaged = ModelStatus.Check(ModelZoo.GetCard(OnnxResNetImporter.ModelId), dir);
            Assert.True(packaged.Available);
            Assert.Equal("packaged", packaged.Weights);
            Assert.StartsWith("verified", packaged.Verification);

            var r18 = ModelZoo.GetCard("resnet18");
            var missing = ModelStatus.Check(r18, dir);
            Assert.False(missing.Available);
            Assert.Contains("missing: expected resnet18-f37072fd.pth", missing.Weights);
            Assert.Null(missing.WeightsPath);

            // An alternative name counts; the file must be well-formed safetensors (its keys are checked when a cell loads it).
            using (var t = TorchSharp.torch.zeros(2))
                SafeTensors.Save(Path.Combine(dir, "resnet18.safetensors"), new Dictionary<string, TorchSharp.torch.Tensor> { ["fc.bias"] = t });
            var found = ModelStatus.Check(r18, dir);
            Assert.True(found.Available);
            Assert.Equal(Path.Combine(dir, "resnet18.safetensors"), found.WeightsPath);

            // Every card of the zoo belongs to a family whose port was checked against its reference (golden fixtures), or whose
            // Hugging Face layout maps onto such a port; HF folders are reported as folders.
            Assert.All(ModelZoo.Cards, c => Assert.Matches("^(verified|layout-checked):", ModelStatus.Verification(c)));
            var radDino = ModelStatus.Check(ModelZoo.GetCard("rad-dino"), dir);
            Assert.False(radDino.Available);
            Assert.Contains("rad-dino/", radDino.Weights);
        }
        finally { Directory.Delete(dir, true); }
    }
}
