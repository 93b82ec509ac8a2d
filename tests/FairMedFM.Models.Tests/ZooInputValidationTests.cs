using System.IO.Compression;
using System.Text;
using FairMedFM.Models;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Onnx;
using FairMedFM.Models.Sam;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// Weights and cards a user wrote by hand or a download mangled: every problem is found before libtorch sees it and is
/// named with the file and the tensor or key, both when a model loads and in the cheap check of <c>models list</c>.
/// </summary>
public sealed class ZooInputValidationTests : IDisposable
{
    private readonly TestPaths.TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>A safetensors file with the given header JSON (written as is, so keys may repeat) and data bytes.</summary>
    private string RawSafeTensors(string name, string header, int dataBytes)
    {
        var path = Path.Combine(_dir.Path, name);
        var json = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)json.Length));
        fs.Write(json);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("""{"conv1.weight": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}""", 8, "negative dimension")]
    [InlineData("""{"conv1.weight": {"dtype": "F32", "shape": [99999999999, 99999999999], "data_offsets": [0, 8]}}""", 8, "overflows")]
    [InlineData("""{"conv1.weight": {"dtype": "XYZ", "shape": [2], "data_offsets": [0, 8]}}""", 8, "unsupported dtype 'XYZ'")]
    [InlineData("""{"conv1.weight": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""", 8, "needs 12")]
    [InlineData("""{"conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}""", 8, "invalid data_offsets")]
    [InlineData("""{"conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}""", 16, "duplicate tensor 'conv1.weight'")]
    public void Malformed_headers_are_refused_before_any_tensor_is_made(string header, int dataBytes, string expected)
    {
        var path = RawSafeTensors("resnet18.safetensors", header, dataBytes);
        var e = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("conv1.weight", e.Message);
        Assert.DoesNotContain("frame #", e.Message);
        Assert.DoesNotContain("Exception", e.Message);
        // The cheap check of `models list` catches it too: never "found".
        Assert.Equal(e.Message, WeightLoader.FileProblem(path));
        var status = ModelStatus.Check(ModelZoo.GetCard("resnet18"), _dir.Path);
        Assert.False(status.Available);
        Assert.Equal("unusable: " + e.Message, status.Weights);
    }

    [Fact]
    public void Offsets_past_the_end_of_the_file_are_named()
    {
        var path = RawSafeTensors("x.safetensors", """{"fc.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", 8);
        var problem = WeightLoader.FileProblem(path);
        Assert.Contains("is truncated: tensor 'fc.bias'", problem);
        Assert.Contains("is truncated: tensor 'fc.bias'", Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path)).Message);
    }

    [Fact]
    public void Native_stack_traces_are_cut_from_messages()
    {
        var native = "Trying to create tensor with negative dimension -2: [-2]\nException raised from check_size_nonnegative at EmptyTensor.h:8 " +
                     "(most recent call first):\nframe #0: c10::Error::Error(…) + 0xb0\nframe #1: c10::detail::torchCheckFail + 0xfa";
        Assert.Equal("Trying to create tensor with negative dimension -2: [-2]", TorchErrors.Clean(native));
        Assert.Equal("plain message", TorchErrors.Clean("plain message"));
    }

    [Fact]
    public void Integer_or_bool_tensors_are_not_silently_cast_into_float_parameters_but_integer_buffers_load()
    {
        using var linear = nn.Linear(2, 2);
        using var w = ones(2, 2, dtype: ScalarType.Int64);
        using var b = zeros(2, dtype: ScalarType.Bool);
        using var fw = ones(2, 2);
        var e = Assert.Throws<InvalidDataException>(() =>
            WeightLoader.LoadStateDict(linear, new Dictionary<string, Tensor> { ["weight"] = w, ["bias"] = zeros(2) }, source: "r18.safetensors"));
        Assert.Contains("'weight'", e.Message);
        Assert.Contains("I64", e.Message);
        Assert.Contains("r18.safetensors", e.Message);
        e = Assert.Throws<InvalidDataException>(() =>
            WeightLoader.LoadStateDict(linear, new Dictionary<string, Tensor> { ["weight"] = fw, ["bias"] = b }, source: "r18.safetensors"));
        Assert.Contains("'bias' is BOOL", e.Message);

        using var bn = nn.BatchNorm2d(2);
        var sd = bn.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(ScalarType.Int64, sd["num_batches_tracked"].dtype);
        var report = WeightLoader.LoadStateDict(bn, sd);
        Assert.True(report.IsExact);
        foreach (var t in sd.Values) t.Dispose();
    }

    private string ZipWith(string name, params (string Entry, byte[] Bytes)[] entries)
    {
        var path = Path.Combine(_dir.Path, name);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            foreach (var (entry, bytes) in entries)
                using (var s = zip.CreateEntry(entry).Open()) s.Write(bytes);
        return path;
    }

    [Fact]
    public void A_data_pkl_that_is_not_a_pickle_says_so()
    {
        var path = ZipWith("resnet18.pth", ("archive/data.pkl", "garbage not a pickle"u8.ToArray()), ("archive/version", "3\n"u8.ToArray()));
        var e = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains("not a pickled state dict", e.Message);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain("correct format", e.Message);
    }

    [Fact]
    public void TorchScript_advice_names_the_file_and_model_in_question()
    {
        ZipWith("resnet18.pth", ("resnet18/code/__torch__.py", "x"u8.ToArray()), ("resnet18/constants.pkl", [0x80, 0x02]), ("resnet18/data.pkl", [0x80, 0x02]));
        var e = Assert.Throws<InvalidDataException>(() => ModelZoo.ResolveWeightsFile(ModelZoo.GetCard("resnet18"), _dir.Path));
        Assert.Contains("model 'resnet18'", e.Message);
        Assert.Contains("torch.jit.load('resnet18.pth'", e.Message);
        Assert.Contains("resnet18.safetensors", e.Message);
        Assert.DoesNotContain("ViT-B-32", e.Message);
        var problem = WeightLoader.FileProblem(Path.Combine(_dir.Path, "resnet18.pth"));
        Assert.Contains("torch.jit.load('resnet18.pth'", problem);
    }

    [Fact]
    public void Missing_weights_list_each_file_name_once()
    {
        var status = SegModelZoo.Check(SegModelZoo.GetCard("tinysam"), _dir.Path);
        Assert.Equal(1, CountOf(status.Weights, "tinysam.pth"));
        Assert.Contains("tinysam.safetensors", status.Weights);
        var e = Assert.Throws<FileNotFoundException>(() => SegModelZoo.ResolveWeightsFile(SegModelZoo.GetCard("tinysam"), _dir.Path));
        Assert.Contains("Expected 'tinysam.pth' (or tinysam.safetensors);", e.Message);
    }

    private static int CountOf(string s, string what) => (s.Length - s.Replace(what, "").Length) / what.Length;

    private string RadDino(string config)
    {
        var folder = Path.Combine(_dir.Path, "rad-dino");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        using var t = zeros(2);
        SafeTensors.Save(Path.Combine(folder, "model.safetensors"), new Dictionary<string, Tensor> { ["x"] = t });
        return Path.Combine(folder, "config.json");
    }

    [Fact]
    public void A_config_json_that_is_not_json_names_the_file_and_line()
    {
        var config = RadDino("{\n  \"model_type\": \"dinov2\",\n  nope\n}");
        var e = Assert.Throws<InvalidDataException>(() => HfVisionModels.Dinov2Config(config));
        Assert.Contains(config, e.Message);
        Assert.Contains("is not valid JSON (line 3", e.Message);
        Assert.DoesNotContain("LineNumber", e.Message);
        var status = ModelStatus.Check(ModelZoo.GetCard("rad-dino"), _dir.Path);
        Assert.False(status.Available);
        Assert.Equal("unusable: " + e.Message, status.Weights);
    }

    [Theory]
    [InlineData("\"hidden_size\": -5", "'hidden_size' is -5, expected a positive integer")]
    [InlineData("\"num_attention_heads\": 7", "'hidden_size' 768 is not a multiple of 'num_attention_heads' 7")]
    [InlineData("\"patch_size\": 0", "'patch_size' is 0, expected a positive integer")]
    [InlineData("\"patch_size\": 16", "'image_size' 518 is not a multiple of 'patch_size' 16")]
    public void A_config_size_that_cannot_build_the_model_names_the_file_and_key(string entry, string expected)
    {
        var config = RadDino("{\n  \"model_type\": \"dinov2\",\n  " + entry + "\n}");
        var e = Assert.Throws<InvalidDataException>(() => HfVisionModels.Dinov2Config(config));
        Assert.Contains(config, e.Message);
        Assert.Contains(expected, e.Message);
        var clip = Path.Combine(_dir.Path, "clip.json");
        File.WriteAllText(clip, """{"model_type": "clip", "vision_config": {"hidden_size": 768, "num_attention_heads": 7}}""");
        Assert.Contains("'vision_config.hidden_size' 768 is not a multiple of 'vision_config.num_attention_heads' 7",
            Assert.Throws<InvalidDataException>(() => HfVisionModels.ClipVisionConfig(clip)).Message);
    }

    [Fact]
    public void A_config_value_of_the_wrong_kind_names_the_file_key_and_line()
    {
        var config = RadDino("{\n  \"model_type\": \"dinov2\",\n  \"hidden_size\": \"big\"\n}");
        var e = Assert.Throws<InvalidDataException>(() => HfVisionModels.Dinov2Config(config));
        Assert.Contains(config, e.Message);
        Assert.Contains("(line 3)", e.Message);
        Assert.Contains("'hidden_size' is \"big\", expected an integer", e.Message);
        Assert.DoesNotContain("System.Int32", e.Message);
        Assert.StartsWith("unusable: ", ModelStatus.Check(ModelZoo.GetCard("rad-dino"), _dir.Path).Weights);
        // Nested keys are named with their section (a two-tower config).
        var clip = Path.Combine(_dir.Path, "clip.json");
        File.WriteAllText(clip, """{"model_type": "clip", "vision_config": {"patch_size": [32]}}""");
        Assert.Contains("'vision_config.patch_size' is [32], expected an integer",
            Assert.Throws<InvalidDataException>(() => HfVisionModels.ClipVisionConfig(clip)).Message);
    }

    private string OnnxCard(string id, string json)
    {
        var folder = Path.Combine(_dir.Path, id);
        Directory.CreateDirectory(folder);
        var p = Path.Combine(folder, OnnxImageEncoder.CardFileName);
        File.WriteAllText(p, json);
        return p;
    }

    [Theory]
    [InlineData("/etc/model.onnx", 224, "512", "absolute path")]
    [InlineData("../../x/model.onnx", 224, "512", "outside the weights folder")]
    [InlineData("model.onnx", 0, "512", "'image_size' must be a positive integer, not 0")]
    [InlineData("model.onnx", 224, "-1", "'feature_dim' must be a positive integer, not -1")]
    [InlineData("model.onnx", 224, "\"wide\"", "'feature_dim' must be a positive integer, not \"wide\"")]
    public void Onnx_cards_stay_in_the_weights_folder_and_have_positive_sizes(string onnx, int imageSize, string featureDim, string expected)
    {
        var card = OnnxCard("my-fm", $$$"""{"id": "my-fm", "onnx": "{{{onnx}}}", "image_size": {{{imageSize}}}, "feature_dim": {{{featureDim}}}, "normalization": {"kind": "dataset"}}""");
        var e = Assert.Throws<InvalidDataException>(() => ModelZoo.ResolveCard("my-fm", _dir.Path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(card, e.Message);
        var listed = Assert.Single(OnnxImageEncoder.ListCards(_dir.Path, ModelZoo.Cards.Select(c => c.Id)));
        Assert.Equal(("my-fm", false), (listed.Id, listed.Available));
        Assert.Contains(expected, listed.Status);
    }

    [Fact]
    public void An_onnx_file_that_is_no_model_is_named_without_the_runtime_type()
    {
        var path = Path.Combine(_dir.Path, "model.onnx");
        File.WriteAllText(path, "not a protobuf at all");
        var e = Assert.Throws<InvalidDataException>(() => new OnnxImageEncoder("my-fm", new OnnxEncoderSpec { OnnxPath = path }));
        Assert.Contains(path, e.Message);
        Assert.Contains("cannot be loaded by ONNX Runtime", e.Message);
    }

    [Fact]
    public void An_onnx_card_must_fit_its_model_and_cannot_take_a_built_in_id()
    {
        // The packaged ResNet-18 ONNX takes 224×224: a card saying 5000 is refused (size cap) and one saying 96 at load,
        // naming the key, before any image is pre-processed.
        OnnxCard("my-fm", """{"id": "my-fm", "onnx": "model.onnx", "image_size": 5000, "normalization": {"kind": "dataset"}}""");
        Assert.Contains("'image_size' is 5000; at most 4096", Assert.Throws<InvalidDataException>(() => ModelZoo.ResolveCard("my-fm", _dir.Path)).Message);
        OnnxCard("my-fm", """{"id": "my-fm", "onnx": "model.onnx", "image_size": 96, "normalization": {"kind": "dataset"}}""");
        File.Copy(PackagedModels.ResNet18OnnxPath, Path.Combine(_dir.Path, "my-fm", "model.onnx"));
        var card = ModelZoo.ResolveCard("my-fm", _dir.Path);
        var e = Assert.Throws<ArgumentException>(() => OnnxImageEncoder.Create(card, _dir.Path));
        Assert.Contains("the card's image_size is 96", e.Message);
        Assert.Contains("takes 224×224 images; set \"image_size\": 224", e.Message);
        // A folder named like a built-in model: listed as ignored, not silently dropped.
        OnnxCard("resnet50", """{"id": "resnet50", "onnx": "model.onnx", "image_size": 224, "normalization": {"kind": "dataset"}}""");
        var listed = OnnxImageEncoder.ListCards(_dir.Path, ModelZoo.Cards.Select(c => c.Id)).Single(l => l.Id == "resnet50");
        Assert.False(listed.Available);
        Assert.Contains("is a built-in model", listed.Status);
    }

    [Fact]
    public void An_onnx_card_that_is_not_json_names_its_line_from_1()
    {
        var card = OnnxCard("my-fm", "{\"id\": \"my-fm\",\n  nope}");
        var e = Assert.Throws<InvalidDataException>(() => ModelZoo.ResolveCard("my-fm", _dir.Path));
        Assert.Contains(card, e.Message);
        Assert.Contains("is not valid JSON (line 2, column", e.Message);
        Assert.DoesNotContain("LineNumber", e.Message);
    }

    [Fact]
    public void A_good_onnx_card_is_listed_with_its_file()
    {
        OnnxCard("my-fm", """{"id": "my-fm", "onnx": "model.onnx", "image_size": 224, "normalization": {"kind": "dataset"}}""");
        var listed = Assert.Single(OnnxImageEncoder.ListCards(_dir.Path, []));
        Assert.StartsWith("missing: ", listed.Status);
        File.Copy(PackagedModels.ResNet18OnnxPath, Path.Combine(_dir.Path, "my-fm", "model.onnx"));
        listed = Assert.Single(OnnxImageEncoder.ListCards(_dir.Path, []));
        Assert.Equal(("found: my-fm/model.onnx", true), (listed.Status, listed.Available));
    }
}
