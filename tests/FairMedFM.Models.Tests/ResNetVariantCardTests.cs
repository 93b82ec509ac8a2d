using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>C2L and MoCo-CXR: ResNet-18 checkpoints in their published key layouts load into the right feature.</summary>
public class ResNetVariantCardTests
{
    private static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "fmfm-variants-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    [Fact]
    public void C2L_loads_its_encoder_module_prefix_and_returns_unit_norm_projections()
    {
        var dir = TempDir();
        try
        {
            torch.manual_seed(3);
            using var reference = new ResNet("ref", ResNetConfig.ResNet18 with { NumClasses = 128 });
            reference.eval();
            var sd = reference.state_dict().ToDictionary(kv => "encoder.module." + kv.Key, kv => kv.Value);
            SafeTensors.Save(Path.Combine(dir, "c2l-r18.safetensors"), sd);

            using var enc = ModelZoo.CreateEncoder("c2l-r18", dir, dir);
            Assert.Equal(128, enc.FeatureDim);
            using var x = torch.randn(2, 3, 224, 224, generator: new torch.Generator(7));
            using var f = enc.Encode(x);
            Assert.Equal(new long[] { 2, 128 }, f.shape);
            using var norms = f.norm(1);
            Assert.All(norms.data<float>().ToArray(), n => Assert.Equal(1f, n, 4));
            using (torch.no_grad())
            using (var expected = nn.functional.normalize(reference.forward(x), p: 2, dim: 1))
                Assert.True(f.allclose(expected, rtol: 1e-4, atol: 1e-5));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void MoCoCXR_keeps_the_query_backbone_and_drops_head_key_encoder_and_queue()
    {
        var dir = TempDir();
        try
        {
            torch.manual_seed(5);
            using var reference = new ResNet("ref", ResNetConfig.ResNet18 with { NumClasses = 0 });
            reference.eval();
            var sd = reference.state_dict().ToDictionary(kv => "module.encoder_q." + kv.Key, kv => kv.Value);
            sd["module.encoder_q.fc.weight"] = torch.randn(128, 512);
            sd["module.encoder_k.conv1.weight"] = torch.randn(64, 3, 7, 7);
            sd["module.queue"] = torch.randn(128, 16);
            SafeTensors.Save(Path.Combine(dir, "mococxr-r18.safetensors"), sd);

            using var enc = ModelZoo.CreateEncoder("mococxr-r18", dir, dir);
            Assert.Equal(512, enc.FeatureDim);
            using var x = torch.randn(2, 3, 224, 224, generator: new torch.Generator(9));
            using var f = enc.Encode(x);
            using (torch.no_grad())
            using (var expected = reference.ForwardFeatures(x))
                Assert.True(f.allclose(expected, rtol: 1e-4, atol: 1e-5));

            // A backbone key missing from the file is still an error: only the listed extras are dropped.
            sd.Remove("module.encoder_q.layer4.1.bn2.weight");
            SafeTensors.Save(Path.Combine(dir, "mococxr-r18.safetensors"), sd);
            var e = Assert.Throws<WeightLoadException>(() => ModelZoo.CreateEncoder("mococxr-r18", dir, dir));
            Assert.Contains("layer4.1.bn2.weight", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
