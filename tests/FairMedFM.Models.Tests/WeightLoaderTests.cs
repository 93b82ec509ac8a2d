using System.Collections;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

public class WeightLoaderTests
{
    private static string Subset(string ext) => Path.Combine(TestPaths.Golden("resnet18"), "weights_subset." + ext);

    private static Dictionary<string, Tensor> RecipeSubset()
    {
        var all = RecipeWeights.Generate(Path.Combine(TestPaths.Golden("resnet18"), "weights_recipe.json"));
        var keep = all.Where(kv => kv.Key.StartsWith("conv1.") || kv.Key.StartsWith("bn1.") || kv.Key.StartsWith("layer1."))
                      .ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (k, t) in all) if (!keep.ContainsKey(k)) t.Dispose();
        return keep;
    }

    [Theory]
    [InlineData("safetensors")]
    [InlineData("pth")]
    public void NonStrictPartialLoadReportsLoadedAndMissing(string ext)
    {
        using var model = new ResNet("r18", ResNetConfig.ResNet18);
        int total = model.state_dict().Count;
        var report = WeightLoader.Load(model, Subset(ext), strict: false);
        Assert.Equal(30, report.Loaded.Count);
        Assert.Equal(total - 30, report.Missing.Count);
        Assert.Empty(report.Unexpected);
        Assert.Empty(report.MisShaped);
        Assert.Contains("layer1.1.bn2.running_var", report.Loaded);
        Assert.Contains("layer2.0.conv1.weight", report.Missing);
        Assert.Contains("fc.bias", report.Missing);

        // The values really landed in the module.
        var expected = RecipeSubset();
        try
        {
            var sd = model.state_dict();
            foreach (var (k, t) in expected) Assert.True(TensorAssert.Same(sd[k], t.reshape(sd[k].shape)), k);
        }
        finally { foreach (var t in expected.Values) t.Dispose(); }
    }

    [Theory]
    [InlineData("safetensors")]
    [InlineData("pth")]
    public void StrictLoadOfSubsetThrowsListingMissingKeysAndFile(string ext)
    {
        using var model = new ResNet("r18", ResNetConfig.ResNet18);
        var path = Subset(ext);
        var ex = Assert.Throws<WeightLoadException>(() => WeightLoader.Load(model, path));
        Assert.Equal(path, ex.File);
        Assert.Contains("layer2.0.conv1.weight", ex.Missing);
        Assert.Contains("fc.weight", ex.Missing);
        Assert.Empty(ex.Unexpected);
        Assert.Contains(path, ex.Message);
        Assert.Contains("layer2.", ex.Message);
        Assert.Contains($"{ex.Missing.Count} missing", ex.Message);
        Assert.Contains("more", ex.Message); // > 20 missing keys are abbreviated
        // Strict failure copies nothing.
        Assert.False(model.state_dict()["bn1.running_mean"].abs().sum().item<float>() > 0);
    }

    [Fact]
    public void MisShapedTensorIsReportedWithBothShapes()
    {
        using var dir = new TestPaths.TempDir();
        var path = Path.Combine(dir.Path, "bad.safetensors");
        using (var bad = randn(64, 3, 3, 3))
        using (var ok = ones(64))
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["conv1.weight"] = bad, ["bn1.weight"] = ok });

        using var model = new ResNet("r18", ResNetConfig.ResNet18);
        var report = WeightLoader.Load(model, path, strict: false);
        Assert.Equal(["bn1.weight"], report.Loaded);
        var mis = Assert.Single(report.ShapeMismatches);
        Assert.Equal("conv1.weight", mis.Name);
        Assert.Equal(new long[] { 64, 3, 7, 7 }, mis.Expected);
        Assert.Equal(new long[] { 64, 3, 3, 3 }, mis.InFile);
        Assert.Contains("[64, 3, 7, 7]", report.MisShaped[0]);
        Assert.Contains("[64, 3, 3, 3]", report.MisShaped[0]);

        var ex = Assert.Throws<WeightLoadException>(() => WeightLoader.Load(model, path));
        Assert.Single(ex.MisShaped);
        Assert.Contains("conv1.weight: expected [64, 3, 7, 7], file has [64, 3, 3, 3]", ex.Message);
    }

    [Fact]
    public void PrefixesAreStripped()
    {
        using var dir = new TestPaths.TempDir();
        using var src = new ResNet("src", ResNetConfig.ResNet18 with { NumClasses = 10 });
        var sd = src.state_dict();

        var ddp = Path.Combine(dir.Path, "ddp.safetensors");
        SafeTensors.Save(ddp, sd.ToDictionary(kv => "module." + kv.Key, kv => kv.Value));
        var enc = Path.Combine(dir.Path, "enc.safetensors");
        SafeTensors.Save(enc, sd.ToDictionary(kv => "encoder." + kv.Key, kv => kv.Value));

        using var a = new ResNet("a", ResNetConfig.ResNet18 with { NumClasses = 10 });
        Assert.True(WeightLoader.Load(a, ddp).IsExact); // DataParallel "module." is stripped automatically
        Assert.True(TensorAssert.Same(a.state_dict()["layer3.1.conv2.weight"], sd["layer3.1.conv2.weight"]));

        using var b = new ResNet("b", ResNetConfig.ResNet18 with { NumClasses = 10 });
        var ex = Assert.Throws<WeightLoadException>(() => WeightLoader.Load(b, enc));
        Assert.Contains("encoder.conv1.weight", ex.Unexpected);
        Assert.True(WeightLoader.Load(b, enc, stripPrefix: "encoder.").IsExact);
        Assert.True(TensorAssert.Same(b.state_dict()["fc.weight"], sd["fc.weight"]));

        // Key map: drop the classifier of a file to load it into a headless model.
        using var c = new ResNet("c", ResNetConfig.ResNet18 with { NumClasses = 0 });
        var r = WeightLoader.Load(c, enc, new WeightLoadOptions
        {
            StripPrefixes = ["encoder."],
            KeyMap = k => k.StartsWith("fc.") ? null : k,
        });
        Assert.True(r.IsExact);
    }

    [Fact]
    public void PickleCheckpointWrappedInStateDictIsUnwrapped()
    {
        using var dir = new TestPaths.TempDir();
        var plain = WeightLoader.ReadStateDict(Subset("pth"));
        var path = Path.Combine(dir.Path, "ckpt.pth");
        var inner = new Hashtable();
        foreach (var (k, t) in plain) inner[k] = t;
        PyTorchPickler.PickleStateDict(path, new Hashtable { ["state_dict"] = inner, ["epoch"] = 3 });

        var read = WeightLoader.ReadStateDict(path);
        Assert.Equal(plain.Keys.Order(), read.Keys.Order());
        foreach (var (k, t) in plain) Assert.True(TensorAssert.Same(read[k], t), k);
        foreach (var t in plain.Values.Concat(read.Values)) t.Dispose();
    }

    [Fact]
    public void SafeTensorsRoundTripKeepsDtypesShapesAndIsDeterministic()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var sd = new Dictionary<string, Tensor>
        {
            ["b"] = arange(6, dtype: float64).reshape(2, 3),
            ["a"] = tensor(7L),
            ["c"] = tensor(new byte[] { 1, 2, 3 }),
        };
        var p1 = Path.Combine(dir.Path, "1.safetensors");
        var p2 = Path.Combine(dir.Path, "2.safetensors");
        SafeTensors.Save(p1, sd, new Dictionary<string, string> { ["k"] = "v" });
        SafeTensors.Save(p2, sd.Reverse().ToDictionary(), new Dictionary<string, string> { ["k"] = "v" });
        Assert.Equal(WeightLoader.FileSha256(p1), WeightLoader.FileSha256(p2));
        var back = SafeTensors.Load(p1, out var meta);
        foreach (var t in back.Values) scope.Attach(t);
        Assert.Equal("v", meta["k"]);
        Assert.Empty(back["a"].shape);
        Assert.Equal(7L, back["a"].item<long>());
        Assert.True(TensorAssert.Same(back["b"], sd["b"]));
        Assert.Equal(ScalarType.Byte, back["c"].dtype);
        Assert.Equal(0UL, BitConverter.ToUInt64(File.ReadAllBytes(p1), 0) % 8); // header padded to 8 bytes
        Assert.Equal(WeightLoader.StateDictSha256(sd), WeightLoader.StateDictSha256(back));
    }

    [Fact]
    public void MissingFileAndGarbageFileGiveClearErrors()
    {
        using var dir = new TestPaths.TempDir();
        using var model = new ResNet("r", ResNetConfig.ResNet18);
        var missing = Path.Combine(dir.Path, "nope.safetensors");
        var ex = Assert.Throws<FileNotFoundException>(() => WeightLoader.Load(model, missing));
        Assert.Contains(missing, ex.Message);
        var junk = Path.Combine(dir.Path, "junk.bin");
        File.WriteAllText(junk, "not weights");
        Assert.Throws<InvalidDataException>(() => WeightLoader.Load(model, junk));
        var badHeader = Path.Combine(dir.Path, "bad.safetensors");
        var json = "{\"x\": {\"dtype\": \"F32\"}}"u8.ToArray();
        File.WriteAllBytes(badHeader, [.. BitConverter.GetBytes((ulong)json.Length), .. json]);
        var hx = Assert.Throws<InvalidDataException>(() => WeightLoader.Load(model, badHeader));
        Assert.Contains(badHeader, hx.Message);
    }
}
