using System.IO.Compression;
using FairMedFM.Models;
using Xunit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>A weights file that is not what its name says (a zip without a checkpoint, a truncated download, random bytes)
/// is reported naming the file and, where it can, the tensor — both when a cell loads it and in <c>models list</c>, which
/// checks files without reading their tensors.</summary>
public sealed class WeightFileProblemTests : IDisposable
{
    private readonly TestPaths.TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private string File(string name) => Path.Combine(_dir.Path, name);

    private string ZipWith(string name, params (string Entry, byte[] Bytes)[] entries)
    {
        var path = File(name);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            foreach (var (entry, bytes) in entries)
                using (var s = zip.CreateEntry(entry).Open()) s.Write(bytes);
        return path;
    }

    private string SafeTensorsFile(string name)
    {
        var path = File(name);
        using var a = arange(16, dtype: ScalarType.Float32);
        using var b = ones(8, 4, dtype: ScalarType.Float32);
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["conv1.weight"] = a, ["fc.weight"] = b });
        return path;
    }

    [Fact]
    public void A_zip_without_data_pkl_names_the_file_and_what_is_missing()
    {
        var path = ZipWith("resnet18.pth", ("notes/readme.txt", "hello"u8.ToArray()));
        var e = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not a PyTorch checkpoint: no data.pkl", e.Message);
        Assert.Contains("notes/readme.txt", e.Message);
        Assert.DoesNotContain("Sequence contains", e.Message);
        Assert.Equal(e.Message, WeightLoader.FileProblem(path));
    }

    [Fact]
    public void A_zip_whose_data_pkl_is_not_a_state_dict_names_the_file()
    {
        var path = ZipWith("medsam_vit_b.pth", ("archive/data.pkl", [0x80, 0x02, 0x4b, 0x07, 0x2e]), ("archive/version", "3\n"u8.ToArray()));
        var e = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain("Sequence contains", e.Message);
    }

    [Fact]
    public void A_truncated_safetensors_names_the_first_tensor_whose_bytes_are_missing()
    {
        var path = SafeTensorsFile("cut.safetensors");
        Assert.Null(WeightLoader.FileProblem(path));
        var bytes = System.IO.File.ReadAllBytes(path);
        System.IO.File.WriteAllBytes(path, bytes[..^20]); // the last tensor (fc.weight, 128 bytes) loses 20
        var e = Assert.Throws<InvalidDataException>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains("is truncated: tensor 'fc.weight'", e.Message);
        Assert.Contains("108 of its 128 bytes present", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Equal(e.Message, WeightLoader.FileProblem(path));
    }

    [Fact]
    public void A_symbolic_link_to_a_checkpoint_is_measured_by_the_file_it_names()
    {
        // The Hugging Face cache links each snapshot file to a blob: the link's own length (a few bytes) is not the file's.
        var blob = SafeTensorsFile("blob");
        var link = File("resnet18.safetensors");
        System.IO.File.CreateSymbolicLink(link, blob);
        Assert.Equal(new FileInfo(blob).Length, WeightLoader.FileLength(link));
        Assert.Null(WeightLoader.FileProblem(link));
        Assert.Equal(2, WeightLoader.ReadStateDict(link).Count);
    }

    [Fact]
    public void A_sharded_index_is_judged_alike_by_models_list_and_by_a_cell()
    {
        var folder = Path.Combine(_dir.Path, "hf");
        using (var a = arange(16, dtype: ScalarType.Float32))
        using (var b = ones(8, 4, dtype: ScalarType.Float32))
            FairMedFM.Models.Hf.HfCheckpoint.SaveSharded(folder, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b }, maxShardBytes: 64);
        System.IO.File.WriteAllText(Path.Combine(folder, "config.json"), "{}");
        var index = Path.Combine(folder, "model.safetensors.index.json");
        Assert.Null(WeightLoader.FileProblem(index));
        // A shard that climbs out of the folder: refused by the list exactly as by the loader.
        var text = System.IO.File.ReadAllText(index);
        var shard = System.Text.Json.Nodes.JsonNode.Parse(text)!["weight_map"]!["a"]!.ToString();
        System.IO.File.WriteAllText(index, text.Replace($"\"{shard}\"", "\"../../etc/passwd\""));
        Assert.Contains("is not a plain file name", WeightLoader.FileProblem(index));
        // A missing shard: the cell's hashing names it as the loader does, not "Could not find file".
        System.IO.File.WriteAllText(index, text);
        System.IO.File.Delete(Path.Combine(folder, shard));
        Assert.Contains("is missing", WeightLoader.FileProblem(index));
        var e = Assert.Throws<FileNotFoundException>(() => FairMedFM.Models.Hf.HfVisionModels.FolderHash(folder, index));
        Assert.Equal($"Shard '{shard}' named by '{index}' is missing.", e.Message);
    }

    [Fact]
    public void Random_bytes_and_a_16_byte_file_are_unusable_and_real_checkpoints_pass_the_cheap_check()
    {
        var random = File("resnet18-f37072fd.pth");
        System.IO.File.WriteAllBytes(random, Enumerable.Range(0, 4096).Select(i => (byte)(i * 37 % 251)).ToArray());
        Assert.Contains("neither safetensors nor a PyTorch zip checkpoint", WeightLoader.FileProblem(random));
        var tiny = File("clip-vit-b32.safetensors");
        System.IO.File.WriteAllBytes(tiny, [16, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 0, 0, 0, 0, 0, 0]);
        Assert.NotNull(WeightLoader.FileProblem(tiny));
        Assert.Null(WeightLoader.FileProblem(Path.Combine(TestPaths.Golden("clip_vit"), "weights.pth")));
        Assert.Null(WeightLoader.FileProblem(Path.Combine(TestPaths.Golden("clip_vit"), "weights.safetensors")));
    }

    [Fact]
    public void Models_list_status_says_unusable_with_the_reason_instead_of_found()
    {
        var card = ModelZoo.Cards.First(c => c.WeightsFile == "resnet18-f37072fd.pth");
        System.IO.File.WriteAllBytes(File(card.WeightsFile!), Enumerable.Repeat((byte)7, 1000).ToArray());
        var status = ModelStatus.Check(card, _dir.Path);
        Assert.False(status.Available);
        Assert.StartsWith("unusable: ", status.Weights);
        Assert.Contains(card.WeightsFile!, status.Weights);

        System.IO.File.Copy(Path.Combine(TestPaths.Golden("clip_vit"), "weights.pth"), File(card.WeightsFile!), overwrite: true);
        var found = ModelStatus.Check(card, _dir.Path); // a well-formed checkpoint (its keys are checked when a cell loads it)
        Assert.True(found.Available, found.Weights);
        Assert.StartsWith("found: ", found.Weights);

        var sam = Sam.SegModelZoo.Cards.First(c => c.Id == "medsam-vit-b");
        ZipWith(sam.WeightsFile, ("x.txt", [1]));
        var samStatus = Sam.SegModelZoo.Check(sam, _dir.Path);
        Assert.False(samStatus.Available);
        Assert.Contains("no data.pkl", samStatus.Weights);
    }
}
