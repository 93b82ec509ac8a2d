using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Reports;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>Segmentation mistakes a fresh user made: what the cell, the summary and synth-seg say about them.</summary>
[Collection(SegCollection.Name)]
public sealed class FreshUserSegTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly CellRunner _runner;

    public FreshUserSegTests()
    {
        SegTestSupport.Register();
        _runner = new CellRunner(_tmp.Workspace());
    }

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void A_target_value_in_no_label_map_is_said_plainly_with_the_values_present()
    {
        var data = SegTestSupport.Synth2D(_tmp.Sub("seven"), patients: 4, name: "seg2d_seven");
        File.WriteAllText(data.CardPath, File.ReadAllText(data.CardPath).Replace("label_value: 2", "label_value: 7"));
        var r = _runner.Run(SegTestSupport.Cell(data.CardPath, OtsuBaseline.Id, SegUsages.Center));
        Assert.Equal("failed", r.Status);
        Assert.Contains("label value 7 occurs in none of the 4 label maps; values present: 1, 2", r.Error);
        Assert.Contains("target.label_value", r.Error);
    }

    [Fact]
    public void A_skipped_volume_is_listed_in_summary_md_and_in_a_console_line()
    {
        var gen = SegTestSupport.Synth3D(_tmp.Sub("vols"), patients: 2, name: "seg3d_skip");
        // Volume 2 loses its lesion (label 2 → 1): no slice has the target, so the volume gives no sample.
        var lbl = Path.Combine(gen.Folder, "label", "P0001_00.nii.gz");
        var v = Nifti.Read(lbl);
        var labels = v.ReadLabels().Select(x => x == 2 ? 1 : x).ToArray();
        Nifti.Write(lbl, new NiftiWriteOptions { Shape = v.Shape, DataType = NiftiDataType.UInt8, Spacing = v.Spacing, Origin = new[] { -12.8, -12.8, 0 } }, labels);
        var r = _runner.Run(SegTestSupport.Cell(gen.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Assert.True(r.Status == "done", r.Error);

        var line = Assert.Single(ResultWriter.SkippedVolumeLines([r, r]));
        Assert.Equal("dataset 'seg3d_skip': volume 'image/P0001_00.nii.gz' (row 2) skipped: no slice along axis 2 contains label 2", line);
        var md = ResultWriter.Markdown("g", [r]);
        Assert.Contains("## Skipped volumes", md);
        Assert.Contains("- " + line, md);
        Assert.DoesNotContain("## Skipped volumes", ResultWriter.Markdown("g", []));
    }

    [Theory]
    [InlineData("--size", "100000", "--size must be from 16 to 4096 pixels, got 100000")]
    [InlineData("--size", "46341", "--size must be from 16 to 4096 pixels")]
    [InlineData("--size", "8", "--size must be from 16 to 4096 pixels, got 8")]
    [InlineData("--patients", "99999999999", "--patients must be from 1 to 100,000, got 99999999999")]
    [InlineData("--patients", "many", "--patients expects a whole number from 1 to 100,000, got 'many'")]
    [InlineData("--items-per-patient", "0", "--items-per-patient must be from 1 to 1,000, got 0")]
    public async Task Synth_seg_limits_are_named_by_flag(string flag, string value, string expected)
    {
        var (code, output) = await CliRunner.Run("synth-seg", "--out", _tmp.File("lim"), flag, value);
        Assert.Equal(2, code);
        Assert.Contains(expected, output);
        Assert.DoesNotContain("Exception", output);
        Assert.False(Directory.Exists(_tmp.File("lim")), "nothing is written for refused options");
    }

    [Fact]
    public async Task Synth_seg_refuses_a_huge_volume_and_an_unwritable_folder()
    {
        var (code, output) = await CliRunner.Run("synth-seg", "--out", _tmp.File("big"), "--3d", "--volume-shape", "5000,5000,5000");
        Assert.Equal(2, code);
        Assert.Contains("--volume-shape 5000,5000,5000 is too large", output);

        var file = _tmp.File("a-file");
        File.WriteAllText(file, "x");
        (code, output) = await CliRunner.Run("synth-seg", "--out", Path.Combine(file, "sub"), "--patients", "2");
        Assert.Equal(2, code);
        Assert.Contains($"cannot write --out '{Path.Combine(file, "sub")}'", output);
        Assert.DoesNotContain("Exception", output);
    }

    [Fact]
    public async Task Synth_seg_keeps_the_users_files_and_replaces_its_own_output()
    {
        var mine = _tmp.Sub("mine");
        File.WriteAllText(Path.Combine(mine, "metadata.csv"), "my,own\n");
        var (code, output) = await CliRunner.Run("synth-seg", "--out", mine, "--patients", "2");
        Assert.Equal(2, code);
        Assert.Contains("is not empty and was not written by synth-seg", output);
        Assert.Contains("--force", output);
        Assert.Equal("my,own\n", File.ReadAllText(Path.Combine(mine, "metadata.csv")));
        (code, output) = await CliRunner.Run("synth-seg", "--out", mine, "--patients", "2", "--force");
        Assert.True(code == 0, output);

        // Its own folder: a rerun with fewer patients leaves no stale images of the patients that are gone.
        var own = _tmp.File("own");
        Assert.Equal(0, (await CliRunner.Run("synth-seg", "--out", own, "--patients", "4")).Code);
        Assert.Equal(8, Directory.GetFiles(Path.Combine(own, "image")).Length);
        File.WriteAllText(Path.Combine(own, "notes.txt"), "kept");
        (code, output) = await CliRunner.Run("synth-seg", "--out", own, "--patients", "2");
        Assert.True(code == 0, output);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(own, "image")).Length);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(own, "label")).Length);
        Assert.Equal("kept", File.ReadAllText(Path.Combine(own, "notes.txt")));
        Assert.Equal(4, SegmentationDataset.Load(Path.Combine(own, "card.yaml")).Count);
    }
}
