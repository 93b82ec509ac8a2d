using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Models;

namespace FairMedFM.Engine.Tests;

/// <summary>Bad environments and files end in a clear failure, never a hang or a nameless exception.</summary>
public sealed class RobustnessTests
{
    [Fact]
    public void An_unwritable_result_store_fails_the_cell_with_the_reason_instead_of_hanging()
    {
        using var tmp = new TempDir();
        var cache = tmp.Sub("cache");
        File.WriteAllText(Path.Combine(cache, "results"), "a file where the results folder should be");
        var runner = new CellRunner(new Workspace(cache, null));
        var spec = new CellSpec
        {
            Dataset = Path.Combine(tmp.Path, "missing-card.yaml"), Model = TinyData.Model, Usage = "lp", Method = "erm",
            Attribute = "sex", Seed = 0,
        };
        var r = runner.Run(spec); // returns (the old code threw from its own failure handler)
        Assert.Equal("failed", r.Status);
        Assert.Contains("missing-card.yaml", r.Error);
        Assert.Contains("cannot write the result", r.Error);
    }

    [Theory]
    [InlineData("name: g\ndatasets: [a.yaml]\nmodels: [m]\nattributes: [sex]\nseeds: [0]\nseeds: [1]\n", "line 6, column 1: duplicate key 'seeds'")]
    [InlineData("name: g\ndatasets: [a.yaml]\nmodels: [m]\nattributes: [sex]\nseeds: [0, 0]\n", "'seeds' lists '0' more than once")]
    [InlineData("name: g\ndatasets: [a.yaml]\nmodels: [m]\nattributes: [sex, sex]\nseeds: [0]\n", "'attributes' lists 'sex' more than once")]
    public void Repeated_grid_keys_and_entries_are_errors(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => { var g = GridSpec.Parse(yaml, "g.yaml"); g.Validate("g.yaml"); });
        Assert.Contains(expected, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(0, "is empty")]
    [InlineData(64, "starts like a zip archive but cannot be read as one")]
    public void Unreadable_weights_name_the_file(int garbageBytes, string expected)
    {
        using var tmp = new TempDir();
        var path = Path.Combine(tmp.Path, "resnet18-f37072fd.pth");
        // A zip signature followed by junk: the unzip error ("End of Central Directory…") must still name the file.
        var bytes = Enumerable.Range(0, garbageBytes).Select(i => (byte)(i * 37 + 1)).ToArray();
        if (garbageBytes >= 4) { bytes[0] = 0x50; bytes[1] = 0x4b; bytes[2] = 0x03; bytes[3] = 0x04; }
        File.WriteAllBytes(path, bytes);
        var e = Assert.ThrowsAny<Exception>(() => WeightLoader.ReadStateDict(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        // models list says so too, without loading: never "found" for a file no cell could load.
        var status = ModelStatus.Check(ModelZoo.GetCard("resnet18"), tmp.Path);
        Assert.False(status.Available);
        Assert.StartsWith("unusable: ", status.Weights);
        Assert.Contains(expected, status.Weights);
    }
}
