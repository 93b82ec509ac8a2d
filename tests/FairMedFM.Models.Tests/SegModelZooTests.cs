using System.IO.Compression;
using System.Text;
using FairMedFM.Models.Sam;
using FairMedFM.Models.Vit;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>Segmentation model cards, the zoo's loading path, and SAM-Med2D's adapter layout.</summary>
public class SegModelZooTests
{
    private readonly ITestOutputHelper _out;
    public SegModelZooTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData("mobilesam", "mobile_sam.pt")]
    [InlineData("tinysam", "tinysam.pth")]
    public void TinyVitCardsPutTheTinyVitEncoderInFrontOfSamsDecoder(string id, string file)
    {
        var card = SegModelZoo.GetCard(id);
        Assert.Equal(SegModelZoo.FamilyTinyVit, card.Family);
        Assert.Equal(file, card.WeightsFile);
        Assert.Equal((1024, 64, 256), (card.ImageSize, card.Sam.ImageEmbeddingSize, card.Sam.PromptEmbedDim));
        Assert.Equal("256×64×64", card.EmbeddingShape);

        // The whole model's keys: TinyViT's under image_encoder., and exactly SAM ViT-B's prompt encoder / mask decoder keys.
        using var model = SegModelZoo.Build(card);
        using var encoder = new TinyViT("image_encoder", TinyVitConfig.MobileSam);
        using var samB = SegModelZoo.Build(SegModelZoo.GetCard("sam-vit-b"));
        var keys = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var expectedEncoder = encoder.state_dict().Select(kv => "image_encoder." + kv.Key).ToHashSet();
        Assert.Equal(expectedEncoder, keys.Keys.Where(k => k.StartsWith("image_encoder.")).ToHashSet());
        var samDecoder = samB.state_dict().Where(kv => !kv.Key.StartsWith("image_encoder.")).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var decoder = keys.Where(kv => !kv.Key.StartsWith("image_encoder.")).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(samDecoder.Keys.Order(), decoder.Keys.Order());
        foreach (var (k, shape) in samDecoder) Assert.Equal(shape, decoder[k]);
    }

    [Fact]
    public void TinyVitEncoderAndSamDecoderRunTogetherAtASmallSize()
    {
        // The real TinyViT-5M layout at 128 px (any multiple of 16 works here) with SAM's decoder: prompt → masks at input size.
        var cfg = TinyVitConfig.MobileSam with { ImgSize = 128 };
        using var model = new SamModel("sam", new TinyViT("image_encoder", cfg), new SamConfig { ImgSize = 128, ImageEmbeddingSize = 8 });
        model.eval();
        using var _ = torch.inference_mode();
        using var scope = NewDisposeScope();
        var emb = model.EmbedImage(torch.randn(1, 3, 128, 128, generator: new Generator(5)));
        Assert.Equal([1L, 256, 8, 8], emb.shape);
        var outp = model.Predict(emb, SamPrompt.PositivePoints(torch.tensor(new float[] { 60, 40 }).view(1, 1, 2)));
        Assert.Equal([1L, 3, 128, 128], outp.Masks.shape);
        Assert.Equal([1L, 3], outp.IouPredictions.shape);
        Assert.True(outp.MaskLogits.isfinite().all().item<bool>());
    }

    [Fact]
    public void CardsCarryThePublishedConfigurations()
    {
        var ids = SegModelZoo.Cards.Select(c => c.Id).ToArray();
        Assert.Equal(["sam-vit-b", "sam-vit-l", "sam-vit-h", "medsam-vit-b", "ft-sam-vit-b", "sam-med2d-vit-b", "mobilesam", "tinysam"], ids);
        Assert.Equal(ids.Length, ids.Distinct(StringComparer.OrdinalIgnoreCase).Count());

        void Vit(string id, int dim, int depth, int heads, int[] globals, int img)
        {
            var c = SegModelZoo.GetCard(id);
            Assert.NotNull(c.Vit);
            Assert.Equal((dim, depth, heads, img, 16, 14, 256), (c.Vit!.EmbedDim, c.Vit.Depth, c.Vit.NumHeads, c.Vit.ImgSize, c.Vit.PatchSize, c.Vit.WindowSize, c.Vit.OutChans));
            Assert.Equal(globals, c.Vit.GlobalAttnIndexes);
            Assert.Equal(img, c.ImageSize);
            Assert.Equal((img / 16, 256, 16, 2048, 8, 3, 256), (c.Sam.ImageEmbeddingSize, c.Sam.PromptEmbedDim, c.Sam.MaskInChans,
                                                               c.Sam.DecoderMlpDim, c.Sam.DecoderHeads, c.Sam.NumMultimaskOutputs, c.Sam.IouHeadHiddenDim));
            Assert.Equal($"256×{img / 16}×{img / 16}", c.EmbeddingShape);
        }
        Vit("sam-vit-b", 768, 12, 12, [2, 5, 8, 11], 1024);
        Vit("sam-vit-l", 1024, 24, 16, [5, 11, 17, 23], 1024);
        Vit("sam-vit-h", 1280, 32, 16, [7, 15, 23, 31], 1024);
        Vit("medsam-vit-b", 768, 12, 12, [2, 5, 8, 11], 1024);
        Vit("ft-sam-vit-b", 768, 12, 12, [2, 5, 8, 11], 256);
        Vit("sam-med2d-vit-b", 768, 12, 12, [2, 5, 8, 11], 256);

        Assert.Equal("sam_vit_b_01ec64.pth", SegModelZoo.GetCard("sam-vit-b").WeightsFile);
        Assert.Equal("sam_vit_l_0b3195.pth", SegModelZoo.GetCard("sam-vit-l").WeightsFile);
        Assert.Equal("sam_vit_h_4b8939.pth", SegModelZoo.GetCard("sam-vit-h").WeightsFile);
        Assert.Equal("medsam_vit_b.pth", SegModelZoo.GetCard("medsam-vit-b").WeightsFile);
        Assert.Equal("ft-sam_b.pth", SegModelZoo.GetCard("ft-sam-vit-b").WeightsFile);
        Assert.Equal("sam-med2d_b.pth", SegModelZoo.GetCard("sam-med2d-vit-b").WeightsFile);
        Assert.Equal("minmax01", SegModelZoo.GetCard("MedSAM-ViT-B").NormalizationKind);
        Assert.Equal(SegModelZoo.FamilySamMed2D, SegModelZoo.GetCard("sam-med2d-vit-b").Family);
        Assert.StartsWith("layout-checked", SegModelZoo.GetCard("sam-med2d-vit-b").Verification);
        foreach (var c in SegModelZoo.Cards)
        {
            foreach (var s in new[] { c.Architecture, c.WeightsLayout, c.WeightsUrl, c.NormalizationNote, c.License, c.Source, c.Verification })
                Assert.False(string.IsNullOrWhiteSpace(s), c.Id);
            Assert.Contains("Apache-2.0", c.License);
        }

        // Listed as not yet available, with reasons; GetCard says so instead of "unknown".
        Assert.Equal(["sam2-hiera", "medsam2", "sam-med3d", "fastsam3d", "segvol"], SegModelZoo.NotYetAvailable.Select(n => n.Id));
        var ex = Assert.Throws<ArgumentException>(() => SegModelZoo.GetCard("segvol"));
        Assert.Contains("not available yet", ex.Message);
        Assert.Contains("Unknown segmentation model", Assert.Throws<ArgumentException>(() => SegModelZoo.GetCard("nope")).Message);
    }

    [Fact]
    public void MissingWeightsFailBeforeAnythingIsBuilt()
    {
        using var dir = new TestPaths.TempDir();
        var card = SegModelZoo.GetCard("sam-vit-h");
        var ex = Assert.Throws<FileNotFoundException>(() => SegModelZoo.Create(card, dir.Path));
        Assert.Contains("sam_vit_h_4b8939.pth", ex.Message);
        Assert.Contains("https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth", ex.Message);

        File.WriteAllBytes(Path.Combine(dir.Path, "medsam_vit_b.pth"), []);
        var status = SegModelZoo.Status(dir.Path).ToDictionary(a => a.Card.Id);
        Assert.False(status["sam-vit-h"].Available);
        Assert.StartsWith("missing: expected sam_vit_h_4b8939.pth", status["sam-vit-h"].Weights);
        Assert.StartsWith("unusable", status["medsam-vit-b"].Weights);
    }

    /// <summary>A card of the golden fixture's tiny SAM: the zoo's factory/loader path on real segment-anything weights.</summary>
    private static SegModelCard TinyCard(GoldenCase g, string file, bool adapters = false)
    {
        var vit = VitSamTests.ConfigOf(g.Config);
        var baseCard = SegModelZoo.GetCard(adapters ? "sam-med2d-vit-b" : "sam-vit-b");
        return new SegModelCard
        {
            Id = "tiny-sam",
            Family = baseCard.Family,
            Sam = SamConfig.ForVit(vit) with { MaskInChans = 16, DecoderMlpDim = 64, DecoderHeads = 4, IouHeadHiddenDim = 32 },
            Vit = vit,
            ImageEncoderFactory = adapters ? name => new SamMed2DImageEncoder(name, vit) : name => new SamImageEncoderViT(name, vit),
            Architecture = "tiny", WeightsFile = file, WeightsLayout = baseCard.WeightsLayout, WeightsUrl = "test",
            NormalizationKind = baseCard.NormalizationKind, NormalizationNote = "", License = baseCard.License, Source = "test",
            Verification = baseCard.Verification,
        };
    }

    [Fact]
    public void ZooLoadsBareAndSamMed2DWrappedCheckpoints()
    {
        using var g = new GoldenCase("sam_vit");
        using var dir = new TestPaths.TempDir();
        // SAM-Med2D / FT-SAM checkpoints are {'model': state_dict, 'optimizer': <torch.optim object>}: written here from
        // the fixture's .pth by wrapping its pickle (same tensor records), with a stand-in torch.optim.adam.Adam object.
        var wrapped = Path.Combine(dir.Path, "wrapped.pth");
        WrapLikeSamMed2D(g.Weights("pth"), wrapped);
        File.Copy(g.Weights("pth"), Path.Combine(dir.Path, "bare.pth"));
        using var _ = inference_mode();
        foreach (var file in new[] { "bare.pth", "wrapped.pth" })
        {
            using var loaded = SegModelZoo.Create(TinyCard(g, file), dir.Path);
            Assert.Equal(WeightLoader.FileSha256(Path.Combine(dir.Path, file)), loaded.WeightsSha256);
            Assert.False(loaded.Model.training);
            Assert.All(loaded.Model.parameters(), p => Assert.False(p.requires_grad));
            using var scope = NewDisposeScope();
            var emb = loaded.Model.EmbedImage(g.Io["fm_input"]);
            using var o = loaded.Model.Predict(emb, new SamPrompt(g.Io["p1_point_coords"], g.Io["p1_point_labels"]));
            double d = TensorAssert.Close(g.Io["p1_low_res_logits"], o.LowResLogits, $"{file}/p1_low_res_logits", g.Rel);
            _out.WriteLine($"{file}: p1 low_res_logits max|diff| {d:E2}");
        }
    }

    [Fact]
    public void SamMed2DAdapterKeysAndShapes()
    {
        using var g = new GoldenCase("sam_vit");
        var vit = VitSamTests.ConfigOf(g.Config);
        using var plain = new SamImageEncoderViT("e", vit);
        using var med = new SamMed2DImageEncoder("e", vit);
        var p = plain.state_dict();
        var m = med.state_dict();
        foreach (var (k, t) in p) Assert.True(m.ContainsKey(k) && m[k].shape.SequenceEqual(t.shape), k);
        long d = vit.EmbedDim, h = d / 4;
        var expectedExtra = new Dictionary<string, long[]>();
        for (int b = 0; b < vit.Depth; b++)
        {
            expectedExtra[$"blocks.{b}.Adapter.norm.weight"] = [d];
            expectedExtra[$"blocks.{b}.Adapter.norm.bias"] = [d];
            expectedExtra[$"blocks.{b}.Adapter.channel.0.weight"] = [h, d];
            expectedExtra[$"blocks.{b}.Adapter.channel.2.weight"] = [d, h];
            expectedExtra[$"blocks.{b}.Adapter.spatial.0.weight"] = [d, d, 3, 3];
            expectedExtra[$"blocks.{b}.Adapter.spatial.2.weight"] = [d, d, 4, 4];
        }
        var extra = m.Keys.Except(p.Keys).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedExtra.Keys.Order(StringComparer.Ordinal), extra);
        foreach (var (k, s) in expectedExtra) Assert.Equal(s, m[k].shape);

        // Inside a SamModel the published names are image_encoder.blocks.N.Adapter.*; prompt encoder / decoder unchanged.
        using var sam = SegModelZoo.Build(TinyCard(g, "x", adapters: true));
        var keys = sam.state_dict().Keys.ToHashSet();
        Assert.Contains("image_encoder.blocks.0.Adapter.spatial.2.weight", keys);
        Assert.Equal(g.WeightKeys().Keys.Order(StringComparer.Ordinal),
                     keys.Where(k => !k.Contains(".Adapter.")).Order(StringComparer.Ordinal));
        // The SAM-Med2D card's ViT-B at 256: 16×16 tokens, rel-pos 27 rows in windowed and 31 in global blocks.
        var card = SegModelZoo.GetCard("sam-med2d-vit-b");
        Assert.Equal(16, card.Vit!.GridSize);
        Assert.Equal(16, card.Sam.ImageEmbeddingSize);
        Assert.Equal(64, card.Sam.LowResSize);
    }

    [Fact]
    public void SamMed2DAdaptersRoundTripAndChangeOutputs()
    {
        using var g = new GoldenCase("sam_vit");
        using var dir = new TestPaths.TempDir();
        var card = TinyCard(g, "sam-med2d.safetensors", adapters: true);
        using var sam = SegModelZoo.Build(card);
        // The SAM part from the golden weights; exactly the adapter tensors are missing from that file.
        var gold = WeightLoader.ReadStateDict(g.Weights("safetensors"));
        WeightLoadReport report;
        try { report = WeightLoader.LoadStateDict(sam, gold, new WeightLoadOptions { Strict = false }); }
        finally { foreach (var t in gold.Values) t.Dispose(); }
        Assert.Empty(report.Unexpected);
        Assert.NotEmpty(report.Missing);
        Assert.All(report.Missing, k => Assert.Contains(".Adapter.", k));
        // Random adapter weights (the constructor's zeros/ones would hide wiring errors).
        var gen = new Generator(11);
        using (no_grad())
            foreach (var (k, t) in sam.state_dict().Where(kv => kv.Key.Contains(".Adapter.")))
                t.copy_(randn(t.shape, generator: gen).mul(k.EndsWith("norm.weight") ? 0.5 : 0.2).add(k.EndsWith("norm.weight") ? 1.0 : 0.0));
        sam.eval();

        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var io = g.Io;
        var prompt = new SamPrompt(io["p1_point_coords"], io["p1_point_labels"]);
        var emb = sam.EmbedImage(io["fm_input"]);
        using var o = sam.Predict(emb, prompt);

        // Adapters change the result.
        double change = emb.sub(io["fm_image_embeddings"]).abs().max().item<float>();
        _out.WriteLine($"adapters on: embeddings differ from SAM's by up to {change:F3}");
        Assert.True(change > 0.1, $"adapters changed the embeddings by only {change}");

        // Round trip through both file formats: strict reload, bit-identical outputs.
        foreach (var ext in new[] { "safetensors", "pth" })
        {
            var file = Path.Combine(dir.Path, "sam-med2d." + ext);
            if (ext == "pth") sam.save_py(file);
            else SafeTensors.Save(file, sam.state_dict());
            using var again = SegModelZoo.Create(TinyCard(g, Path.GetFileName(file), adapters: true), dir.Path);
            using var o2 = again.Model.Predict(again.Model.EmbedImage(io["fm_input"]), prompt);
            Assert.True(TensorAssert.Same(o.LowResLogits, o2.LowResLogits), ext);
            Assert.True(TensorAssert.Same(o.IouPredictions, o2.IouPredictions), ext);
        }

        // With the adapters' LayerNorm affine at zero an adapter adds exactly 0: the encoder is SAM's again and
        // reproduces the golden embeddings and masks (so only the adapter term differs from the verified block).
        using (no_grad())
            foreach (var (k, t) in sam.state_dict().Where(kv => kv.Key.Contains(".Adapter.norm.")))
                t.zero_();
        var log = new DiffLog(_out, "sam-med2d.adapters-zeroed", g.Rel);
        log.Check(io["fm_image_embeddings"], sam.EmbedImage(io["fm_input"]), "fm_image_embeddings");
        using var o3 = sam.Predict(sam.EmbedImage(io["fm_input"]), prompt);
        log.Check(io["p1_low_res_logits"], o3.LowResLogits, "p1_low_res_logits");
    }

    [Fact]
    public void SamMed2DAdapterComputesItsPublishedFormula()
    {
        // y = LayerNorm(x + relu(convT(relu(conv(g))))), g = x · sigmoid(W2 · relu(W1 · mean_hw(x))), on NHWC x.
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        using var a = new SamMed2DAdapter("Adapter", 8);
        var sd = a.state_dict();
        using (no_grad())
            foreach (var t in sd.Values) t.copy_(randn(t.shape, generator: gen).mul(0.3).add(t.shape.Length == 1 ? 1.0 : 0.0));
        var x = randn(new long[] { 2, 6, 4, 8 }, generator: gen);
        var y = a.forward(x);

        var xc = x.permute(0, 3, 1, 2);
        var gate = nn.functional.linear(nn.functional.relu(nn.functional.linear(xc.mean([2, 3]), sd["channel.0.weight"])), sd["channel.2.weight"]).sigmoid();
        var gx = xc.mul(gate.view(2, 8, 1, 1));
        var s = nn.functional.conv2d(gx, sd["spatial.0.weight"], strides: [2, 2], padding: [1, 1]).relu();
        s = nn.functional.conv_transpose2d(s, sd["spatial.2.weight"], strides: [2, 2], padding: [1, 1]).relu();
        var expected = nn.functional.layer_norm(xc.add(s).permute(0, 2, 3, 1), [8], sd["norm.weight"], sd["norm.bias"], 1e-5);
        TensorAssert.Close(expected, y, "adapter", 1e-5);
        Assert.Equal(x.shape, y.shape);

        var odd = Assert.Throws<ArgumentException>(() => a.forward(randn(1, 5, 4, 8)));
        Assert.Contains("even token grid", odd.Message);
    }

    [Fact]
    public void CardNormalisations()
    {
        using var g = new GoldenCase("sam_vit");
        using var sam = SamGoldenTests.Build(g, null);
        using var scope = NewDisposeScope();
        var img = g.Io["fwd1_image"].unsqueeze(0);
        var n = SegModelZoo.Normalize(SegModelZoo.GetCard("sam-vit-b"), img);
        Assert.True(TensorAssert.Same(sam.Preprocess(img).narrow(2, 0, 96), n));

        var two = stack([g.Io["fwd1_image"], g.Io["fwd1_image"].mul(0.5).add(10)], 0);
        var mm = SegModelZoo.Normalize(SegModelZoo.GetCard("medsam-vit-b"), two);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(0.0, mm[i].min().item<float>(), 6);
            Assert.Equal(1.0, mm[i].max().item<float>(), 6);
        }
        var expected = two[1].sub(two[1].min()).div(two[1].max().sub(two[1].min()));
        TensorAssert.Close(expected, mm[1], "minmax", 1e-6);
        // A constant image does not divide by zero.
        Assert.Equal(0.0, SegModelZoo.Normalize(SegModelZoo.GetCard("medsam-vit-b"), full(1, 3, 4, 4, 7f)).abs().max().item<float>());
    }

    /// <summary>
    /// Writes <paramref name="target"/>: the torch zip of <paramref name="source"/> with data.pkl rewritten to
    /// {'model': &lt;the original dict&gt;, 'optimizer': torch.optim.adam.Adam(...)} — the layout of SAM-Med2D's train.py
    /// checkpoints. Only pickle opcodes are added around the original body (which keeps its memo and tensor records).
    /// </summary>
    internal static void WrapLikeSamMed2D(string source, string target)
    {
        using var src = ZipFile.OpenRead(source);
        using var dst = ZipFile.Open(target, ZipArchiveMode.Create);
        foreach (var e in src.Entries)
        {
            using var input = e.Open();
            using var ms = new MemoryStream();
            input.CopyTo(ms);
            var bytes = ms.ToArray();
            if (e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
            {
                Assert.True(bytes[0] == 0x80 && bytes[^1] == (byte)'.', "data.pkl must be PROTO … STOP");
                var o = new MemoryStream();
                o.Write([0x80, 2, (byte)'}', (byte)'(']); // PROTO 2, EMPTY_DICT, MARK
                Str(o, "model");
                o.Write(bytes, 2, bytes.Length - 3); // the original object, without PROTO and STOP
                Str(o, "optimizer");
                o.Write(Encoding.ASCII.GetBytes("ctorch.optim.adam\nAdam\n")); // GLOBAL
                o.Write([(byte)')', 0x81, (byte)'}', (byte)'(']); // EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK
                Str(o, "defaults"); o.WriteByte((byte)'}'); Str(o, "lr"); o.WriteByte((byte)'G');
                o.Write(BitConverter.GetBytes(1e-4).Reverse().ToArray()); o.WriteByte((byte)'s'); // BINFLOAT (big-endian), SETITEM
                Str(o, "state"); o.WriteByte((byte)'}');
                Str(o, "param_groups"); o.Write([(byte)']', (byte)'}']); Str(o, "params");
                o.Write([(byte)']', (byte)'(', (byte)'K', 0, (byte)'K', 1, (byte)'e', (byte)'s', (byte)'a']); // [{'params': [0, 1]}]
                o.Write([(byte)'u', (byte)'b']); // SETITEMS, BUILD
                o.Write([(byte)'u', (byte)'.']); // SETITEMS (outer dict), STOP
                bytes = o.ToArray();
            }
            var ne = dst.CreateEntry(e.FullName, CompressionLevel.NoCompression);
            using var output = ne.Open();
            output.Write(bytes);
        }

        static void Str(Stream s, string v)
        {
            var b = Encoding.UTF8.GetBytes(v);
            s.WriteByte((byte)'X');
            s.Write(BitConverter.GetBytes(b.Length));
            s.Write(b);
        }
    }
}
