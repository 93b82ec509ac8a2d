using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>Converts the packaged ONNX once (into a temp cache) for every test of the collection.</summary>
public sealed class CntkFixture : IDisposable
{
    public TestPaths.TempDir Cache { get; } = new();
    public ResNet Model { get; }
    public CntkImportInfo FirstLoad { get; }
    public long ConvertMs { get; }

    public CntkFixture()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Model = OnnxResNetImporter.LoadCntkResNet18(PackagedModels.ResNet18OnnxPath, Cache.Path, out var info);
        ConvertMs = sw.ElapsedMilliseconds;
        FirstLoad = info;
    }

    public void Dispose()
    {
        Model.Dispose();
        Cache.Dispose();
    }
}

[CollectionDefinition("cntk")]
public sealed class CntkCollection : ICollectionFixture<CntkFixture> { }

/// <summary>Everything that loads the packaged CNTK model lives in this one collection so conversion counts are not raced.</summary>
[Collection("cntk")]
public class OnnxImportTests
{
    private readonly CntkFixture _fx;
    private readonly ITestOutputHelper _out;

    public OnnxImportTests(CntkFixture fx, ITestOutputHelper output)
    {
        _fx = fx;
        _out = output;
    }

    private static InferenceSession Session(string path) =>
        new(path, new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 });

    private static float[] RunOrt(InferenceSession s, string input, string output, float[] data, long[] shape)
    {
        using var v = OrtValue.CreateTensorValueFromMemory(data, shape);
        using var ro = new RunOptions();
        using var outs = s.Run(ro, [input], [v], [output]);
        return outs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [Fact]
    public void PackagedFilesAreFound()
    {
        Assert.True(File.Exists(PackagedModels.ResNet18OnnxPath));
        Assert.True(File.Exists(PackagedModels.ResNetPreprocessOnnxPath));
        // The build copies them next to the assembly, so the NuGet cache is not needed at run time.
        Assert.StartsWith(AppContext.BaseDirectory.TrimEnd('/'), PackagedModels.ResNet18OnnxPath);
    }

    [Fact]
    public void ConvertedModelMatchesOnnxRuntime()
    {
        _out.WriteLine($"first load (convert + cache + load): {_fx.ConvertMs} ms, converted={_fx.FirstLoad.Converted}");
        // Inputs on the model's scale: BGR 0–255 minus a mean near 114.
        var g = new Generator(seed: 1234);
        using var scope = NewDisposeScope();
        var x = rand([2, 3, 224, 224], generator: g).mul_(255f).sub_(114f);

        Tensor ours;
        using (inference_mode()) ours = _fx.Model.forward(x);
        Assert.Equal(new long[] { 2, 512 }, ours.shape);

        using var s = Session(PackagedModels.ResNet18OnnxPath);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var reference = new float[2 * 512];
        for (int b = 0; b < 2; b++) // the graph's batch dimension is fixed at 1
        {
            var one = x[b].unsqueeze(0).contiguous().data<float>().ToArray();
            RunOrt(s, "Input247", "Pooling395_Output_0", one, [1, 3, 224, 224]).CopyTo(reference, b * 512);
        }
        _out.WriteLine($"ORT 2 images: {sw.ElapsedMilliseconds} ms");
        var refT = tensor(reference, [2, 512]);
        double d = TensorAssert.Close(refT, ours, "CNTK ResNet-18 vs ONNX Runtime");
        _out.WriteLine($"max|diff| {d:E2}, max|ref| {refT.abs().max().item<float>()}");
        Assert.True(refT.abs().max().item<float>() > 0.1f); // not a degenerate all-zero comparison
    }

    [Fact]
    public void MeanImageEqualsWhatPreprocessOnnxSubtracts()
    {
        var mean = OnnxResNetImporter.ReadPreprocessMeanImage(PackagedModels.ResNetPreprocessOnnxPath);
        Assert.Equal(3 * 224 * 224, mean.Length);
        Assert.InRange(mean.Average(), 90, 140);

        var rng = new Random(5);
        var rgb = new float[3 * 224 * 224];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (float)(rng.NextDouble() * 255);
        using var s = Session(PackagedModels.ResNetPreprocessOnnxPath);
        var ort = RunOrt(s, s.InputMetadata.Keys.Single(), s.OutputMetadata.Keys.Single(), rgb, [1, 3, 224, 224]);

        const int hw = 224 * 224;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < hw; i++)
                Assert.Equal(rgb[(2 - c) * hw + i] - mean[c * hw + i], ort[c * hw + i]); // BGR, CHW

        // ImageNormalization does the same from RGB in [0,1].
        using var scope = NewDisposeScope();
        var card = ModelZoo.GetCard("resnet18-imagenet-cntk");
        var norm = ImageNormalization.Apply(card, tensor(rgb, [1, 3, 224, 224]).div(255f));
        TensorAssert.Close(tensor(ort, [1, 3, 224, 224]), norm, "ImageNormalization vs ResNetPreprocess.onnx", 1e-6);
    }

    [Fact]
    public void SecondLoadUsesTheCache()
    {
        Assert.True(_fx.FirstLoad.Converted);
        Assert.True(File.Exists(_fx.FirstLoad.CachePath));
        Assert.Contains(_fx.FirstLoad.OnnxSha256, Path.GetFileName(_fx.FirstLoad.CachePath));
        var stamp = File.GetLastWriteTimeUtc(_fx.FirstLoad.CachePath);
        int conversions = OnnxResNetImporter.ConversionCount;

        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var again = OnnxResNetImporter.LoadCntkResNet18(PackagedModels.ResNet18OnnxPath, _fx.Cache.Path, out var info);
        _out.WriteLine($"cached load: {sw.ElapsedMilliseconds} ms (first: {_fx.ConvertMs} ms)");
        Assert.False(info.Converted);
        Assert.Equal(conversions, OnnxResNetImporter.ConversionCount);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(info.CachePath));
        Assert.Equal(WeightLoader.FileSha256(PackagedModels.ResNet18OnnxPath), again.WeightsHash);
        Assert.False(again.training);
        Assert.Equal(WeightLoader.StateDictSha256(_fx.Model.state_dict()), WeightLoader.StateDictSha256(again.state_dict()));
    }

    [Fact]
    public void CorruptCacheIsRebuilt()
    {
        using var dir = new TestPaths.TempDir();
        File.Copy(_fx.FirstLoad.CachePath, Path.Combine(dir.Path, Path.GetFileName(_fx.FirstLoad.CachePath)));
        var path = Path.Combine(dir.Path, Path.GetFileName(_fx.FirstLoad.CachePath));
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(f.Length / 2);
        using var m = OnnxResNetImporter.LoadCntkResNet18(PackagedModels.ResNet18OnnxPath, dir.Path, out var info);
        Assert.True(info.Converted);
        Assert.Equal(new FileInfo(_fx.FirstLoad.CachePath).Length, new FileInfo(path).Length);
    }

    [Fact]
    public void ZooEncoderForPackagedModel()
    {
        using var enc = ModelZoo.CreateEncoder("resnet18-imagenet-cntk", weightsDir: null, cacheDir: _fx.Cache.Path);
        Assert.Equal("resnet18-imagenet-cntk", enc.ModelId);
        Assert.Equal(512, enc.FeatureDim);
        Assert.Equal(_fx.FirstLoad.OnnxSha256, enc.WeightsHash);
        using var scope = NewDisposeScope();
        var x = ImageNormalization.Apply(ModelZoo.GetCard(enc.ModelId), rand(2, 3, 224, 224));
        var f = enc.Encode(x);
        Assert.Equal(new long[] { 2, 512 }, f.shape);
        Assert.False(f.requires_grad);
        using (inference_mode()) TensorAssert.Close(_fx.Model.ForwardFeatures(x), f, "encoder vs module", 1e-6);
    }
}
