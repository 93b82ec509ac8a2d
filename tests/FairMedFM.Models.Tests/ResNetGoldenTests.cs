using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

public class ResNetGoldenTests
{
    private readonly ITestOutputHelper _out;
    public ResNetGoldenTests(ITestOutputHelper output) => _out = output;

    public static ResNet BuildWithRecipe(string caseName, ResNetConfig config)
    {
        var model = new ResNet(caseName, config);
        var sd = RecipeWeights.Generate(Path.Combine(TestPaths.Golden(caseName), "weights_recipe.json"));
        try
        {
            // Strict: the recipe lists every torchvision state_dict key, so this also proves the key names.
            var report = WeightLoader.LoadStateDict(model, sd);
            Assert.Equal(sd.Count, report.Loaded.Count);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
        model.eval();
        return model;
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public void ForwardMatchesTorchvision(string caseName)
    {
        var config = caseName == "resnet18" ? ResNetConfig.ResNet18 : ResNetConfig.ResNet50;
        using var model = BuildWithRecipe(caseName, config);
        var io = SafeTensors.Load(Path.Combine(TestPaths.Golden(caseName), "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        using var _ = no_grad();

        var sw = System.Diagnostics.Stopwatch.StartNew();
        var got = model.ForwardIntermediates(io["input"]);
        _out.WriteLine($"{caseName} forward (intermediates) of {string.Join("x", io["input"].shape)}: {sw.ElapsedMilliseconds} ms");
        foreach (var t in got.Values) scope.Attach(t);

        int compared = 0;
        foreach (var (name, expected) in io)
        {
            Tensor? actual = null;
            if (name is "logits" or "pooled") actual = got[name];
            else if (Regex.Match(name, @"^(stem|layer\d)_out_c(\d+)$") is { Success: true } m)
                actual = got[m.Groups[1].Value].slice(1, 0, long.Parse(m.Groups[2].Value), 1);
            if (actual is null) continue;
            double d = TensorAssert.Close(expected, actual, $"{caseName}/{name}");
            _out.WriteLine($"{name}: max|diff| {d:E2}");
            compared++;
        }
        Assert.Equal(7, compared);

        // forward() and ForwardFeatures() agree with the intermediates path.
        TensorAssert.Close(io["logits"], model.forward(io["input"]), "forward()");
        TensorAssert.Close(io["pooled"], model.ForwardFeatures(io["input"]), "ForwardFeatures()");
    }

    [Fact]
    public void StateDictKeysAreTorchvisions()
    {
        using var r18 = new ResNet("r18", ResNetConfig.ResNet18);
        var recipe = RecipeWeights.ReadRecipe(Path.Combine(TestPaths.Golden("resnet18"), "weights_recipe.json"));
        Assert.Equal(recipe.Tensors.Select(t => t.Name).Order(), r18.state_dict().Keys.Order());
        foreach (var t in recipe.Tensors) Assert.Equal(t.Shape, r18.state_dict()[t.Name].shape);

        using var cntk = new ResNet("cntk", ResNetConfig.CntkResNet18);
        var keys = cntk.state_dict().Keys.ToHashSet();
        Assert.DoesNotContain("fc.weight", keys);
        Assert.Contains("layer4.2.bn2.num_batches_tracked", keys);
        Assert.Contains("layer2.0.downsample.0.weight", keys);
        Assert.DoesNotContain("layer1.0.downsample.0.weight", keys);
        Assert.Equal(512, cntk.FeatureDim);
    }

    [Fact]
    public void ResNet18Batch8ForwardShapeAndTiming()
    {
        using var model = new ResNet("r18", ResNetConfig.ResNet18);
        model.eval();
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = randn(8, 3, 224, 224);
        model.ForwardFeatures(x); // warm-up
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var f = model.ForwardFeatures(x);
        _out.WriteLine($"ResNet-18 ForwardFeatures batch 8 at 224²: {sw.ElapsedMilliseconds} ms (threads {get_num_threads()})");
        Assert.Equal(new long[] { 8, 512 }, f.shape);
    }

    [Fact]
    public void CntkPaddingMatchesTorchvisionWindowsOnEvenSizesOnly()
    {
        // The asymmetric CNTK pads select the same windows as torchvision's symmetric ones for even inputs, so with
        // equal weights the two paddings agree at 224² and disagree (by output size) at odd sizes.
        using var a = new ResNet("a", ResNetConfig.ResNet18 with { NumClasses = 0 });
        using var b = new ResNet("b", ResNetConfig.ResNet18 with { NumClasses = 0, Padding = PaddingStyle.CntkAsymmetric });
        WeightLoader.LoadStateDict(b, a.state_dict());
        a.eval(); b.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var x = randn(1, 3, 64, 64);
        TensorAssert.Close(a.ForwardIntermediates(x)["layer4"], b.ForwardIntermediates(x)["layer4"], "even size", 1e-5);
        var odd = randn(1, 3, 65, 65);
        Assert.NotEqual(a.ForwardIntermediates(odd)["stem"].shape, b.ForwardIntermediates(odd)["stem"].shape);
    }
}
