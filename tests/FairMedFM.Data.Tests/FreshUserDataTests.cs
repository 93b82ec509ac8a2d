using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests;

/// <summary>Card and metadata mistakes a fresh user made: each is refused at load, in the user's words.</summary>
public class FreshUserDataTests
{
    [Fact]
    public void A_repeated_image_under_another_patient_is_refused_naming_both_rows()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        var imgs = Directory.GetFiles(Path.Combine(t.Path, "images")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        // Row 3 names row 1's image again (another patient, another label): it would sit in two splits at once.
        var lines = new[]
        {
            "path,pid,age,sex,y,site",
            $"images/{imgs[0]},p1,40,M,1,a", $"images/{imgs[1]},p2,50,F,0,a", $"images/./{imgs[0]},p5,61,F,0,b",
        };
        File.WriteAllLines(Path.Combine(t.Path, "meta.csv"), lines);
        var e = Assert.Throws<DataException>(() => LoadedDataset.Load(DatasetCard.Load(card), hashImages: false));
        Assert.Contains($"rows 1 and 3 both name image 'images/./{imgs[0]}' (row 1 writes it 'images/{imgs[0]}')", e.Message);
        Assert.Equal(3, e.Row);
        Assert.Equal("path", e.Column);

        // An exact duplicate row is refused too.
        File.WriteAllLines(Path.Combine(t.Path, "meta.csv"), new[] { lines[0], lines[1], lines[2], lines[2] });
        e = Assert.Throws<DataException>(() => LoadedDataset.Load(DatasetCard.Load(card), hashImages: false));
        Assert.Contains($"rows 2 and 3 both name image 'images/{imgs[1]}'", e.Message);
    }

    [Fact]
    public void A_tab_in_a_card_indentation_is_named_at_its_own_line()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        var text = File.ReadAllText(card).Replace("  column: y\n", "\tcolumn: y\n");
        File.WriteAllText(card, text);
        var line = Array.FindIndex(text.Split('\n'), l => l.StartsWith('\t')) + 1;
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(card));
        Assert.Contains($"line {line}, column 1: a tab in the indentation", e.Message);
    }

    [Fact]
    public void A_misspelt_required_key_is_named_with_its_line_and_the_right_spelling()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        File.WriteAllText(card, File.ReadAllText(card).Replace("path_column: path", "path_colum: path"));
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(card));
        Assert.Contains("field 'path_column': required field is missing; unknown field 'path_colum' (line 4) — did you mean 'path_column'?", e.Message);

        // Nested required keys too (label.column), and a segmentation card's data_root.
        File.WriteAllText(card, TestData.SmallCard.Replace("  column: y", "  colum: y"));
        e = Assert.Throws<DataException>(() => DatasetCard.Load(card));
        Assert.Contains("unknown field 'label.colum'", e.Message);
        Assert.Contains("did you mean 'column'?", e.Message);
        var seg = t.File("seg.yaml");
        File.WriteAllText(seg, Segmentation.SegmentationCardTests.Card.Replace("data_root:", "data_rot:"));
        e = Assert.Throws<DataException>(() => SegmentationCard.Load(seg));
        Assert.Contains("unknown field 'data_rot' (line 3) — did you mean 'data_root'?", e.Message);
    }

    [Fact]
    public void A_patient_with_two_sexes_is_refused_but_age_may_change_between_visits()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        var csv = Path.Combine(t.Path, "meta.csv");
        var lines = File.ReadAllLines(csv);
        // Row 2 (p1, second image): sex F where row 1 says M; its age differs too, which is fine.
        lines[2] = lines[2].Replace(",p1,50,M,", ",p1,50,F,");
        File.WriteAllLines(csv, lines);
        var e = Assert.Throws<DataException>(() => LoadedDataset.Load(DatasetCard.Load(card), hashImages: false));
        Assert.Contains("patient 'p1' has sex 'M' in row 1 and 'F' in row 2", e.Message);
        Assert.Equal(2, e.Row);
        Assert.Equal("sex", e.Column);

        // An attribute declared per_patient: false may vary (here: sex, to show the switch).
        File.WriteAllText(card, File.ReadAllText(card).Replace("map: {M: male, F: female}", "map: {M: male, F: female}\n    per_patient: false"));
        Assert.Equal(6, LoadedDataset.Load(DatasetCard.Load(card), hashImages: false).Count);
    }

    [Fact]
    public void Per_patient_true_without_patient_ids_is_refused_not_skipped()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        var text = File.ReadAllText(card);
        var withoutIds = string.Join("\n", text.Split('\n').Where(l => !l.TrimStart().StartsWith("patient_id_column:", StringComparison.Ordinal)));
        File.WriteAllText(card, withoutIds.Replace("map: {M: male, F: female}", "map: {M: male, F: female}\n    per_patient: true"));
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(card));
        Assert.Contains("per_patient is true, but the card has no patient_id_column", e.Message);
        Assert.Contains("attributes[0].per_patient", e.Message);
    }

    [Fact]
    public void A_segmentation_patient_with_two_sexes_is_refused()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("s"), SyntheticSegOptions.Default2D with { Patients = 2 });
        var lines = File.ReadAllLines(gen.MetadataCsv);
        lines[2] = lines[2].Replace(",female,F,", ",male,M,"); // P0000's second image
        File.WriteAllLines(gen.MetadataCsv, lines);
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath, hashFiles: false));
        Assert.Contains("patient 'P0000' has sex 'F' in row 1 and 'M' in row 2", e.Message);
    }

    [Fact]
    public void A_repeated_segmentation_image_is_compared_after_normalisation()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("s"), SyntheticSegOptions.Default2D with { Patients = 2 });
        var lines = File.ReadAllLines(gen.MetadataCsv);
        lines[3] = lines[3].Replace("image/P0001_00.png", "image/../image/P0000_00.png");
        File.WriteAllLines(gen.MetadataCsv, lines);
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath, hashFiles: false));
        Assert.Contains("rows 1 and 3 both name image 'image/../image/P0000_00.png'", e.Message);
    }

    [Theory]
    [InlineData("-1", "label value -1 is impossible")]
    [InlineData("-300", "non-negative")]
    public void An_impossible_label_value_is_refused_at_card_load(string value, string expected)
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("s"), SyntheticSegOptions.Default2D with { Patients = 2 });
        File.WriteAllText(gen.CardPath, File.ReadAllText(gen.CardPath).Replace("label_value: 2", $"label_value: {value}"));
        var e = Assert.Throws<DataException>(() => SegmentationCard.Load(gen.CardPath));
        Assert.Contains(expected, e.Message);
        Assert.Equal("target.label_value", e.Field);
    }

    [Fact]
    public void A_label_value_above_255_is_refused_for_png_label_maps_but_empty_masks_name_the_label_file()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("s"), SyntheticSegOptions.Default2D with { Patients = 2 });
        var text = File.ReadAllText(gen.CardPath);
        File.WriteAllText(gen.CardPath, text.Replace("label_value: 2", "label_value: 300"));
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath, hashFiles: false));
        Assert.Contains("target.label_value 300 cannot occur in the 8-bit label map 'label/P0000_00.png'", e.Message);

        File.WriteAllText(gen.CardPath, text.Replace("label_value: 2", "label_value: 7"));
        var ds = SegmentationDataset.Load(gen.CardPath, hashFiles: false);
        var item = ds.LoadItem(0);
        Assert.True(item.EmptyMask);
        Assert.Contains("label value 7 does not occur in label map 'label/P0000_00.png'", item.Prompts.SkipMessage);
        var (values, files) = ds.LabelValuesPresent();
        Assert.Equal(new[] { 1, 2 }, values);
        Assert.Equal(4, files);
    }
}
