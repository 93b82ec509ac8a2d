using System.Collections;
using FairMedFM.Models.Text;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The BiomedCLIP and MedCLIP text towers: their cards, missing-file errors, and each reference checkpoint layout
/// loaded through the card, with the MiniLM BERT (checked against ONNX Runtime) standing in for the real BERT so the
/// tower arithmetic is compared with ONNX Runtime's last_hidden_state.
/// </summary>
[Collection("minilm")]
public class BertTextTowerTests
{
    private readonly MiniLmFixture _fx;
    private readonly ITestOutputHelper _out;

    public BertTextTowerTests(MiniLmFixture fx, ITestOutputHelper output)
    {
        _fx = fx;
        _out = output;
    }

    [Fact]
    public void CardsCarryTheReferenceSettings()
    {
        var b = TextModelZoo.GetCard("biomedclip");
        Assert.Equal((TextModelZoo.FamilyOpenClipHf, 512, 256, BertPadding.MaxLength, "mlp", "cls_last_hidden_state_pooler", "text."),
                     (b.Family, b.EmbeddingDim, b.ContextLength, b.Padding, b.ProjType, b.Pooler, b.CheckpointPrefix));
        Assert.Equal(BertConfig.Base with { AddPoolingLayer = false }, b.Bert);
        Assert.True(b.Tokenizer.LowerCase && b.WhitespaceClean);
        Assert.Equal("open_clip_pytorch_model.bin", b.WeightsFile);

        var m = TextModelZoo.GetCard("MEDCLIP-VIT");
        Assert.Equal((TextModelZoo.FamilyMedClip, 512, 77, BertPadding.Longest, "text_model."), (m.Family, m.EmbeddingDim, m.ContextLength, m.Padding, m.CheckpointPrefix));
        Assert.Equal(28996, m.Bert.VocabSize);
        Assert.True(m.Tokenizer.LowerCase); // AutoTokenizer default for a repository without tokenizer_config.json
        Assert.Throws<ArgumentException>(() => TextModelZoo.GetCard("clip"));
    }

    [Theory]
    [InlineData("biomedclip", "open_clip_pytorch_model.bin")]
    [InlineData("medclip-vit", "pytorch_model.bin")]
    public void MissingFilesAreNamed(string id, string file)
    {
        using var dir = new TestPaths.TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => TextModelZoo.CreateEncoder(id, dir.Path));
        Assert.Contains(file, ex.Message);
        Assert.Contains("vocab.txt", ex.Message);
        Assert.Contains(Path.Combine(dir.Path, id), ex.Message);
        Assert.Contains(file, Assert.Throws<FileNotFoundException>(() => TextModelZoo.CreateEncoder(id, null)).Message);
    }

    private string WriteFolder(string root, TextModelCard card, Dictionary<string, Tensor> checkpoint, string fileName)
    {
        var folder = Path.Combine(root, card.Folder);
        Directory.CreateDirectory(folder);
        File.Copy(_fx.VocabPath, Path.Combine(folder, "vocab.txt"));
        var c = _fx.Import.Config;
        File.WriteAllText(Path.Combine(folder, "config.json"),
            $$"""{"model_type": "bert", "hidden_size": {{c.HiddenSize}}, "num_hidden_layers": {{c.NumHiddenLayers}}, "num_attention_heads": {{c.NumAttentionHeads}}, "intermediate_size": {{c.IntermediateSize}}, "vocab_size": {{c.VocabSize}}, "max_position_embeddings": {{c.MaxPositionEmbeddings}}, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0}""");
        var path = Path.Combine(folder, fileName);
        if (fileName.EndsWith(".safetensors")) SafeTensors.Save(path, checkpoint);
        else
        {
            var table = new Hashtable();
            foreach (var (k, t) in checkpoint) table[k] = t;
            PyTorchPickler.PickleStateDict(path, table);
        }
        return path;
    }

    private float[] OrtLastHidden(BertEncoding[] enc, out long l)
    {
        l = enc[0].Length;
        var ids = enc.SelectMany(e => e.InputIds).ToArray();
        var ort = _fx.RunOrt(ids, ids.Select(i => i != 0 ? 1L : 0L).ToArray(), new long[ids.Length], enc.Length, l);
        return ort["last_hidden_state"].Data;
    }

    [Fact]
    public void BiomedClipLayoutFromOpenClipCheckpoint()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var g = new Generator(seed: 7);
        int d = 384, hid = (384 + 512) / 2;
        var w0 = randn([hid, d], generator: g).mul_(0.05);
        var w2 = randn([512, hid], generator: g).mul_(0.05);
        var ckpt = new Dictionary<string, Tensor>();
        foreach (var (k, t) in _fx.Import.StateDict)
            if (!k.StartsWith("pooler.")) ckpt["text.transformer." + k] = t; // add_pooling_layer=False for this pooler
        ckpt["text.transformer.embeddings.position_ids"] = arange(512L).unsqueeze(0);
        ckpt["text.proj.0.weight"] = w0;
        ckpt["text.proj.2.weight"] = w2;
        ckpt["visual.trunk.cls_token"] = zeros(1, 1, 768);
        ckpt["logit_scale"] = tensor(4.6052f);
        var card = TextModelZoo.GetCard("biomedclip");
        var file = WriteFolder(dir.Path, card, ckpt, card.WeightsFile);

        using var enc = TextModelZoo.CreateEncoder(card, dir.Path);
        Assert.Equal(WeightLoader.FileSha256(file), enc.WeightsHash);
        var texts = BertPrompts.Plain.Take(4).Append("a  chest\tX-ray of a\n normal ").ToArray();
        var emb = enc.EncodeText(texts);
        Assert.Equal(new long[] { texts.Length, 512 }, emb.shape);

        // Reference: open_clip's HFTokenizer ids (padding to 256) → ONNX Runtime → CLS → proj.0 → GELU → proj.2.
        var encs = texts.Select(t => _fx.Tokenizer.Encode(TextModelZoo.WhitespaceClean(t), 256, padToMaxLength: true)).ToArray();
        var lhs = tensor(OrtLastHidden(encs, out var l), [texts.Length, l, d]);
        var expected = nn.functional.gelu(lhs.select(1, 0).matmul(w0.t())).matmul(w2.t());
        _out.WriteLine($"biomedclip-layout tower vs ORT: max|diff| {TensorAssert.Close(expected, emb, "text embedding"):E2}");
        // Whitespace cleaning: the same prompt up to spaces gives the same ids and embedding.
        Assert.Equal(encs[0].InputIds, encs[4].InputIds);
        TensorAssert.Close(emb[0], emb[4], "whitespace-cleaned prompt", 1e-6);

        // CLS pooling with max_length padding: a prompt's embedding does not depend on its batch.
        TensorAssert.Close(emb[1].unsqueeze(0), enc.EncodeText([texts[1]]), "alone vs batched", 1e-5);
    }

    [Fact]
    public void MedClipLayoutFromMedClipCheckpoint()
    {
        using var dir = new TestPaths.TempDir();
        using var scope = NewDisposeScope();
        var w = randn([512, 384], generator: new Generator(seed: 8)).mul_(0.05);
        var ckpt = new Dictionary<string, Tensor>();
        foreach (var (k, t) in _fx.Import.StateDict) ckpt["text_model.model." + k] = t;
        ckpt["text_model.model.embeddings.position_ids"] = arange(512L).unsqueeze(0);
        ckpt["text_model.projection_head.weight"] = w;
        ckpt["vision_model.model.embeddings.patch_embeddings.projection.weight"] = zeros(96, 3, 4, 4);
        ckpt["vision_model.projection_head.weight"] = zeros(512, 768);
        ckpt["logit_scale"] = tensor(3.4012f);
        var card = TextModelZoo.GetCard("medclip-vit");
        WriteFolder(dir.Path, card, ckpt, "model.safetensors"); // an accepted alternative name

        using var enc = TextModelZoo.CreateEncoder(card, dir.Path);
        var texts = new[] { "a chest X-ray of a normal", "a chest X-ray of a diseased lung with bilateral pleural effusion" };
        var emb = enc.EncodeText(texts);

        // Reference: ids padded to the longest; hidden_states[1], [2] from the port, [-1] from ONNX Runtime; plain
        // mean over all positions (padding included), mean over the three layers, then projection_head.
        var encs = texts.Select(t => _fx.Tokenizer.Encode(t, 77)).ToArray();
        int l = encs.Max(e => e.Length);
        var padded = encs.Select(e => _fx.Tokenizer.Encode(texts[Array.IndexOf(encs, e)], l, padToMaxLength: true)).ToArray();
        var ids = tensor(padded.SelectMany(e => e.InputIds).ToArray(), [2, l]);
        var mask = tensor(padded.SelectMany(e => e.AttentionMask).ToArray(), [2, l]);
        using var o = _fx.Model.Forward(ids, mask, outputHiddenStates: true);
        var last = tensor(_fx.RunOrt(ids.data<long>().ToArray(), mask.data<long>().ToArray(), new long[2 * l], 2, l)["last_hidden_state"].Data, [2, l, 384]);
        var expected = o.HiddenStates[1].sum(1).div(l).add(o.HiddenStates[2].sum(1).div(l)).add(last.sum(1).div(l)).div(3).matmul(w.t());
        _out.WriteLine($"medclip-layout tower vs reference: max|diff| {TensorAssert.Close(expected, emb, "text embedding"):E2}");

        // MedCLIP averages over padding too, so the short prompt's embedding depends on its batch (a reference quirk kept).
        var alone = enc.EncodeText([texts[0]]);
        double shift = (alone - emb[0]).abs().max().item<float>();
        Assert.True(shift > 1e-3, $"padding changed the MedCLIP embedding by only {shift}");
    }

    [Fact]
    public void StrictOnTheTowerKeys()
    {
        using var dir = new TestPaths.TempDir();
        var ckpt = _fx.Import.StateDict.Where(kv => kv.Key != "encoder.layer.3.output.dense.bias")
            .ToDictionary(kv => "text_model.model." + kv.Key, kv => kv.Value);
        using var w = zeros(512, 384);
        ckpt["text_model.projection_head.weight"] = w;
        var card = TextModelZoo.GetCard("medclip-vit");
        WriteFolder(dir.Path, card, ckpt, card.WeightsFile);
        var ex = Assert.Throws<WeightLoadException>(() => TextModelZoo.CreateEncoder(card, dir.Path));
        Assert.Contains("model.encoder.layer.3.output.dense.bias", ex.Missing);

        File.WriteAllText(Path.Combine(dir.Path, card.Folder, "config.json"), """{"model_type": "bert", "vocab_size": 28996}""");
        Assert.Contains("vocab_size 28996", Assert.Throws<InvalidDataException>(() => TextModelZoo.CreateEncoder(card, dir.Path)).Message);
    }

    [Fact]
    public void WhitespaceCleanAsOpenClip()
    {
        Assert.Equal("a b c", TextModelZoo.WhitespaceClean("  a \t\n b\u00a0\u3000c\x1f "));
        Assert.Equal("", TextModelZoo.WhitespaceClean(" \n "));
    }
}
