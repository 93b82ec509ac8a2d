using System.Text;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Segmentation;
using FairMedFM.Models;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// `models list` with weights a user mangled (one bad file never hides the rest), piped output a script can grep, ONNX
/// cards, a weights folder that is not there; ids from the list used with the other task; the benchmarks' bad options.
/// </summary>
public sealed class ModelZooCliTests
{
    /// <summary>A safetensors file whose header repeats conv1.weight (a JSON object with a duplicate key).</summary>
    private static void DuplicateKeyFile(string path)
    {
        var json = Encoding.UTF8.GetBytes("""{"conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}""");
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)json.Length));
        fs.Write(json);
        fs.Write(new byte[16]);
    }

    [Fact]
    public async Task One_bad_weights_file_is_its_rows_reason_and_the_rest_of_the_table_is_printed()
    {
        using var tmp = new TempDir();
        var weights = tmp.Sub("weights");
        DuplicateKeyFile(Path.Combine(weights, "resnet18.safetensors"));
        var (code, output) = await CliRunner.Run("models", "list", "--weights", weights, "--plain");
        Assert.Equal(0, code);
        var row = Assert.Single(output.Split('\n'), l => l.StartsWith("resnet18\t", StringComparison.Ordinal));
        Assert.Contains($"unusable: '{Path.Combine(weights, "resnet18.safetensors")}': duplicate tensor 'conv1.weight'", row);
        Assert.DoesNotContain("same key", output);
        foreach (var c in ModelZoo.Cards) Assert.Contains(c.Id + "\t", output);
        Assert.Contains(OtsuBaseline.Id + "\t", output);
    }

    [Fact]
    public async Task Plain_output_has_one_unwrapped_tab_separated_line_per_model()
    {
        using var tmp = new TempDir();
        var (code, output) = await CliRunner.Run("models", "list", "--weights", tmp.Path, "--plain");
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("id\tfamily\tverified\tweights", lines[0]);
        var ids = lines.Skip(1).Where(l => l.Contains('\t')).Select(l => l.Split('\t')[0]).ToList();
        foreach (var c in ModelZoo.Cards) Assert.Contains(c.Id, ids);
        Assert.Contains("resnet18-imagenet-cntk", ids);
        Assert.All(lines.Skip(1).Where(l => l.Contains('\t')), l => Assert.Equal(8, l.Split('\t').Length));
        // The table never wraps the id column either, however narrow the console.
        var narrow = await CliRunner.Run("models", "list", "--weights", tmp.Path);
        Assert.Contains("resnet18-imagenet-cntk", narrow.Output);
    }

    [Fact]
    public async Task Onnx_cards_are_listed_usable_or_not()
    {
        using var tmp = new TempDir();
        var good = tmp.Sub(Path.Combine("weights", "my-fm"));
        File.WriteAllText(Path.Combine(good, "onnx-card.json"), """{"id": "my-fm", "onnx": "model.onnx", "image_size": 224, "normalization": {"kind": "dataset"}}""");
        File.Copy(FairMedFM.Models.PackagedModels.ResNet18OnnxPath, Path.Combine(good, "model.onnx"));
        var bad = tmp.Sub(Path.Combine("weights", "escape"));
        File.WriteAllText(Path.Combine(bad, "onnx-card.json"), """{"id": "escape", "onnx": "../../x/model.onnx", "image_size": 224, "normalization": {"kind": "dataset"}}""");
        var (code, output) = await CliRunner.Run("models", "list", "--weights", tmp.File("weights"), "--plain");
        Assert.Equal(0, code);
        var lines = output.Split('\n');
        Assert.Contains("found: my-fm/model.onnx", Assert.Single(lines, l => l.StartsWith("my-fm\tonnx\t", StringComparison.Ordinal)));
        Assert.Contains("outside the weights folder", Assert.Single(lines, l => l.StartsWith("escape\tonnx\t", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_weights_folder_that_is_missing_gets_a_note_and_a_file_is_bad_input()
    {
        using var tmp = new TempDir();
        var missing = tmp.File("nonexistent");
        var (code, output) = await CliRunner.Run("models", "list", "--weights", missing);
        Assert.Equal(0, code);
        Assert.Contains($"weights folder '{missing}' does not exist", output);
        var file = tmp.File("somefile");
        File.WriteAllText(file, "x");
        (code, output) = await CliRunner.Run("models", "list", "--weights", file);
        Assert.Equal(2, code);
        Assert.Contains($"weights folder '{file}' is a file, not a folder", output);
        Assert.Contains("resnet18", output);
    }

    [Theory]
    [InlineData("sam-vit-b", "'sam-vit-b' is a segmentation model; use it with seg-* usages")]
    [InlineData("otsu-threshold", "'otsu-threshold' is a segmentation model; use it with seg-* usages")]
    [InlineData("blip2", "'blip2' is not available yet: BLIP-2")]
    [InlineData("sam2-hiera", "'sam2-hiera' is a segmentation model, and not available yet: SAM 2")]
    public void Classification_usages_say_what_a_listed_id_is(string id, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => ModelCatalog.Card(id));
        Assert.StartsWith(expected, e.Message);
        Assert.DoesNotContain("unknown model", e.Message);
    }

    [Fact]
    public void Segmentation_usages_say_a_classification_model_is_not_available_yet()
    {
        var e = Assert.Throws<ConfigException>(() => SegModelCatalog.Get("blip2"));
        Assert.StartsWith("'blip2' is not available yet: BLIP-2", e.Message);
    }

    [Fact]
    public void Failure_reasons_never_carry_a_native_stack()
    {
        var e = new System.Runtime.InteropServices.ExternalException(
            "Storage size calculation overflowed\nException raised from computeStorageNbytes at EmptyTensor.cpp:30 (most recent call first):\n" +
            "frame #0: c10::Error::Error(c10::SourceLocation) + 0xb0 (0x7f in libc10.so)\nframe #1: at::detail::empty_generic + 0x1");
        var reason = CellRunner.Describe(e);
        Assert.Equal("ExternalException: Storage size calculation overflowed", reason);
    }

    [Theory]
    [InlineData(new[] { "seg", "--models", "nope" }, "--models: 'nope' is not a segmentation model")]
    [InlineData(new[] { "seg", "--images", "0" }, "--images must be at least 1, not 0")]
    [InlineData(new[] { "seg", "--images", "abc" }, "--images must be a whole number, not 'abc'")]
    [InlineData(new[] { "seg", "--masks", "-1" }, "--masks must be at least 1, not -1")]
    [InlineData(new[] { "metrics", "--n", "-5" }, "--n must be at least 300, not -5")]
    [InlineData(new[] { "sweep", "--grid", "/nonexistent.yaml" }, "--grid: '/nonexistent.yaml' not found")]
    [InlineData(new[] { "all", "--images", "0" }, "--images must be at least 1")]
    [InlineData(new[] { "nope" }, "unknown benchmark 'nope'")]
    public void Bench_bad_options_are_one_line_and_exit_2(string[] args, string expected)
    {
        var err = new StringWriter();
        Assert.Equal(2, BenchMain.Run(args, err));
        Assert.Contains("error: " + expected, err.ToString());
        Assert.DoesNotContain("   at ", err.ToString());
    }

    [Fact]
    public void Bench_sweep_on_a_segmentation_grid_is_one_line_and_exit_2()
    {
        var err = new StringWriter();
        Assert.Equal(2, BenchMain.Run(["sweep", "--grid", Path.Combine(TestPaths.RepoRoot, "grids", "seg_synthetic_demo.yaml")], err));
        var text = err.ToString().Trim();
        Assert.StartsWith("error: ", text);
        Assert.DoesNotContain('\n', text);
        Assert.Contains("zoo", BenchMain.Usage);
    }
}
