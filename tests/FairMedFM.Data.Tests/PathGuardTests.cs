namespace FairMedFM.Data.Tests;

/// <summary>
/// Dataset cards and grids submitted to a shared silo must not make it read outside its data roots: not through the
/// card's own location, its metadata_csv/image_root fields, a CSV path entry (relative with "..", or absolute), nor a
/// symlink placed inside a root.
/// </summary>
public class PathGuardTests
{
    /// <summary>A root folder holding a small dataset (in <c>root/ds</c>) and a sibling folder outside the root.</summary>
    private sealed class Layout : IDisposable
    {
        public TempDir Base { get; } = new();
        public string Root => System.IO.Path.Combine(Base.Path, "root");
        public string Outside => System.IO.Path.Combine(Base.Path, "outside");
        public string DatasetDir => System.IO.Path.Combine(Root, "ds");
        public PathGuard Guard { get; }
        public Layout()
        {
            Directory.CreateDirectory(DatasetDir);
            Directory.CreateDirectory(Outside);
            Guard = new PathGuard([Root]);
        }
        public void Dispose() => Base.Dispose();
    }

    [Fact]
    public void A_dataset_inside_the_root_loads()
    {
        using var l = new Layout();
        var card = TestData.SmallDataset(l.DatasetDir);
        var data = LoadedDataset.Load(DatasetCard.Load(card, l.Guard), hashImages: false, guard: l.Guard);
        Assert.Equal(6, data.Count);
    }

    [Fact]
    public void A_card_outside_the_root_is_refused()
    {
        using var l = new Layout();
        var card = TestData.SmallDataset(l.Outside);
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(card, l.Guard));
        Assert.Contains("dataset card", e.Message);
        Assert.Contains("outside the configured data roots", e.Message);
        Assert.Contains(PathGuard.EnvironmentVariable, e.Message);
    }

    [Fact]
    public void Metadata_csv_or_image_root_climbing_out_is_refused_naming_the_field()
    {
        using var l = new Layout();
        TestData.SmallDataset(l.Outside);
        var cardPath = System.IO.Path.Combine(l.DatasetDir, "evil.yaml");
        File.WriteAllText(cardPath, TestData.SmallCard.Replace("metadata_csv: meta.csv", "metadata_csv: ../../outside/meta.csv"));
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(cardPath, l.Guard));
        Assert.Equal("metadata_csv", e.Field);
        Assert.Equal(cardPath, e.File);

        File.WriteAllText(cardPath, TestData.SmallCard.Replace("image_root: .", "image_root: /"));
        e = Assert.Throws<DataException>(() => DatasetCard.Load(cardPath, l.Guard));
        Assert.Equal("image_root", e.Field);
    }

    [Theory]
    [InlineData("../../outside/images/x.png")]
    [InlineData("/etc/hostname")]
    public void A_csv_path_entry_escaping_the_root_is_refused_naming_row_and_column(string entry)
    {
        using var l = new Layout();
        var rel = TestData.CopyNihImages(l.Outside, 1);
        File.Copy(System.IO.Path.Combine(l.Outside, rel[0]), System.IO.Path.Combine(l.Outside, "images", "x.png"));
        var card = TestData.SmallDataset(l.DatasetDir);
        var lines = File.ReadAllLines(System.IO.Path.Combine(l.DatasetDir, "meta.csv"));
        var f = lines[3].Split(',');
        f[0] = entry;
        lines[3] = string.Join(',', f);
        File.WriteAllLines(System.IO.Path.Combine(l.DatasetDir, "meta.csv"), lines);

        var e = Assert.Throws<DataException>(() => LoadedDataset.Load(DatasetCard.Load(card, l.Guard), hashImages: false, guard: l.Guard));
        Assert.Equal(3, e.Row);
        Assert.Equal("path", e.Column);
        Assert.Contains("outside the configured data roots", e.Message);
        // The same dataset loads when unconfined (the entry itself is well formed): the guard is what refused it.
        if (!entry.StartsWith('/'))
            Assert.Equal(6, LoadedDataset.Load(DatasetCard.Load(card, PathGuard.Unconfined), hashImages: false, guard: PathGuard.Unconfined).Count);
    }

    [Fact]
    public void A_symlink_inside_the_root_pointing_outside_is_refused()
    {
        using var l = new Layout();
        TestData.SmallDataset(l.Outside);
        var link = System.IO.Path.Combine(l.Root, "linked");
        Directory.CreateSymbolicLink(link, l.Outside);
        var card = System.IO.Path.Combine(link, "card.yaml");
        Assert.True(File.Exists(card));
        Assert.False(l.Guard.Allows(card));
        Assert.Throws<DataException>(() => DatasetCard.Load(card, l.Guard));

        // A link that stays inside the root is fine.
        var inner = System.IO.Path.Combine(l.Root, "alias");
        Directory.CreateSymbolicLink(inner, l.DatasetDir);
        TestData.SmallDataset(l.DatasetDir);
        Assert.True(l.Guard.Allows(System.IO.Path.Combine(inner, "card.yaml")));
        Assert.Equal(6, LoadedDataset.Load(DatasetCard.Load(System.IO.Path.Combine(inner, "card.yaml"), l.Guard), hashImages: false, guard: l.Guard).Count);
    }

    [Fact]
    public void Segmentation_cards_and_their_label_maps_are_confined_too()
    {
        using var l = new Layout();
        var gen = FairMedFM.Data.Segmentation.SyntheticSegmentation.Generate(System.IO.Path.Combine(l.DatasetDir, "seg"),
            FairMedFM.Data.Segmentation.SyntheticSegOptions.Default2D with { Patients = 4 });
        var card = System.IO.Path.Combine(l.DatasetDir, "seg", "card.yaml");
        Assert.True(File.Exists(card), gen.ToString());
        Assert.True(FairMedFM.Data.Segmentation.SegmentationDataset.Load(card, hashFiles: false, guard: l.Guard).Samples.Count > 0);

        // A label path escaping the root is refused naming the row and the label column.
        var csv = System.IO.Path.Combine(l.DatasetDir, "seg", "metadata.csv");
        var lines = File.ReadAllLines(csv);
        var header = lines[0].Split(',');
        int col = Array.IndexOf(header, "labelPath");
        var f = lines[1].Split(',');
        f[col] = "/etc/hostname";
        lines[1] = string.Join(',', f);
        File.WriteAllLines(csv, lines);
        var e = Assert.Throws<DataException>(() => FairMedFM.Data.Segmentation.SegmentationDataset.Load(card, hashFiles: false, guard: l.Guard));
        Assert.Equal(1, e.Row);
        Assert.Equal("labelPath", e.Column);
        Assert.Contains("outside the configured data roots", e.Message);
    }

    [Fact]
    public void A_root_prefix_is_not_a_root()
    {
        using var l = new Layout();
        var sibling = l.Root + "2";
        Directory.CreateDirectory(sibling);
        Assert.False(l.Guard.Allows(System.IO.Path.Combine(sibling, "a.png")));
        Assert.True(l.Guard.Allows(System.IO.Path.Combine(l.Root, "a", "..", "b.png")));
        Assert.False(l.Guard.Allows(System.IO.Path.Combine(l.Root, "..", "outside", "b.png")));
    }

    [Fact]
    public void A_symlink_loop_is_an_error_not_a_hang()
    {
        using var l = new Layout();
        var a = System.IO.Path.Combine(l.Root, "a");
        var b = System.IO.Path.Combine(l.Root, "b");
        File.CreateSymbolicLink(a, b);
        File.CreateSymbolicLink(b, a);
        var e = Assert.Throws<DataException>(() => l.Guard.Allows(System.IO.Path.Combine(a, "x")));
        Assert.Contains("symbolic links", e.Message);
    }

    [Fact]
    public void Roots_parse_from_the_environment_format_and_must_exist()
    {
        using var l = new Layout();
        Assert.False(PathGuard.Parse(null).IsConfined);
        Assert.False(PathGuard.Parse("  ").IsConfined);
        var g = PathGuard.Parse(l.Root + System.IO.Path.PathSeparator + l.Outside);
        Assert.Equal(2, g.Roots.Count);
        Assert.True(g.Allows(System.IO.Path.Combine(l.Outside, "x")));
        var e = Assert.Throws<DataException>(() => PathGuard.Parse(System.IO.Path.Combine(l.Root, "missing")));
        Assert.Contains("not an existing folder", e.Message);
        Assert.True(PathGuard.Unconfined.Allows("/etc/shadow"));
    }
}
