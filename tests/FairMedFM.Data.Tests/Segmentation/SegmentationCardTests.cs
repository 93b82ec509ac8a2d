using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests.Segmentation;

public class SegmentationCardTests
{
    internal const string Card = """
        task: segmentation
        name: tiny
        data_root: data
        patient_id_column: pid
        target: {label_value: 255, name: nodule}
        attributes:
          - {name: sex, column: sexBinary, kind: categorical, map: {F: "F", M: "M"}}
          - {name: age60, column: age, kind: threshold, threshold: 60}
          - {name: site, column: site, kind: categorical, map: {a: A, b: B, c: C}, per_patient: false}
        intersections:
          - {name: sex_x_site, of: [sex, site]}

        """;

    private static string Write(TempDir tmp, string text, string name = "card.yaml")
    {
        var p = tmp.File(name);
        File.WriteAllText(p, text);
        return p;
    }

    [Fact]
    public void Loads_defaults_and_resolves_paths_against_the_card()
    {
        using var tmp = new TempDir();
        var c = SegmentationCard.Load(Write(tmp, Card));
        Assert.Equal("tiny", c.Name);
        Assert.Equal(Path.Combine(tmp.Path, "data"), c.DataRoot);
        Assert.Equal(Path.Combine(tmp.Path, "data", "metadata.csv"), c.MetadataCsv);
        Assert.Equal("imagePath", c.ImageColumn);
        Assert.Equal("labelPath", c.LabelColumn);
        Assert.Equal(255, c.Target.LabelValue);
        Assert.Equal("nodule", c.Target.Name);
        Assert.Equal(2, c.Slicing.Axis);
        Assert.Equal(SliceKeep.Target, c.Slicing.Keep);
        Assert.Equal(IntensityMode.MinMax, c.Slicing.Intensity.Mode);
        Assert.Equal(new[] { "sex", "age60", "site", "sex_x_site" }, c.AttributeNames);
        Assert.Equal(new[] { "F", "M" }, c.GroupLabels("sex")); // F = 0 as FairMedFM's segmentation coding
        Assert.Equal(6, c.GroupLabels("sex_x_site").Count);
        Assert.Equal("segmentation", DatasetCardTask.Detect(tmp.File("card.yaml")));
    }

    [Fact]
    public void Slicing_keys_are_read_and_checked()
    {
        using var tmp = new TempDir();
        var c = SegmentationCard.Load(Write(tmp, Card + "slicing: {axis: 0, keep: any_label, intensity: window, low: -100, high: 400, resize_nearest: 1024}\n"));
        Assert.Equal(0, c.Slicing.Axis);
        Assert.Equal(SliceKeep.AnyLabel, c.Slicing.Keep);
        Assert.Equal(new IntensityScaling(IntensityMode.Window, -100, 400), c.Slicing.Intensity);
        Assert.Equal(1024, c.Slicing.ResizeNearest);
        // The semantic JSON (hash input) changes with the slicing rule, not with the description.
        var plain = SegmentationCard.Load(Write(tmp, Card, "b.yaml"));
        var described = SegmentationCard.Load(Write(tmp, Card + "description: x\n", "c.yaml"));
        Assert.NotEqual(plain.SemanticJson(), c.SemanticJson());
        Assert.Equal(plain.SemanticJson(), described.SemanticJson());
    }

    [Theory]
    [InlineData("", "task", "required")]
    [InlineData("task: classification\n", "task", "DatasetCard")]
    [InlineData("task: segmentation\ncolour: red\n", "colour", "unknown field")]
    [InlineData("task: segmentation\ntarget: {label_value: 0}\n", "target.label_value", "background")]
    [InlineData("task: segmentation\ntarget: {label_value: 1.5}\n", "target.label_value", "integer")]
    [InlineData("task: segmentation\ntarget: {label_value: 1, colour: x}\n", "target.colour", "unknown field")]
    [InlineData("task: segmentation\nslicing: {axis: 3}\n", "slicing.axis", "0, 1 or 2")]
    [InlineData("task: segmentation\nslicing: {keep: some}\n", "slicing.keep", "any_label")]
    [InlineData("task: segmentation\nslicing: {intensity: percentile, low: 1}\n", "slicing.high", "required")]
    [InlineData("task: segmentation\nslicing: {intensity: minmax, low: 1}\n", "slicing.low", "only apply")]
    [InlineData("task: segmentation\nslicing: {intensity: percentile, low: 99, high: 1}\n", "slicing.intensity", "percentiles")]
    [InlineData("task: segmentation\nvolume_id_column: v\n", "slice_index_column", "go together")]
    [InlineData("task: segmentation\nlabel_column: imagePath\n", "label_column", "differ")]
    [InlineData("task: segmentation\nattributes: [{name: s, column: s, kind: bins, edges: [2, 1]}]\n", "attributes[0].edges", "increasing")]
    [InlineData("task: segmentation\nintersections: [{name: x, of: [a, b]}]\n", "intersections[0].of", "not an attribute")]
    public void Bad_cards_name_the_field(string head, string field, string reason)
    {
        using var tmp = new TempDir();
        // Base card without task/target lines, so each case supplies its own.
        var text = head + "name: t\ndata_root: .\n" + (head.Contains("target:") ? "" : "target: {label_value: 1}\n");
        var e = Assert.Throws<DataException>(() => SegmentationCard.Load(Write(tmp, text)));
        Assert.Equal(field, e.Field);
        Assert.Contains(reason, e.Message);
        Assert.Equal(tmp.File("card.yaml"), e.File);
    }

    [Fact]
    public void The_classification_loader_points_a_segmentation_card_to_its_loader()
    {
        using var tmp = new TempDir();
        var path = Write(tmp, Card);
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(path));
        Assert.Equal("task", e.Field);
        Assert.Contains("SegmentationCard.Load", e.Message);
        // An explicit 'task: classification' is accepted by the classification loader.
        Assert.Equal("classification", DatasetCardTask.Detect(TestPaths.NihCard));
        var cls = File.ReadAllText(TestPaths.NihCard).Replace("name: nih_chestxray14_64px", "task: classification\nname: nih_chestxray14_64px");
        Assert.Equal("nih_chestxray14_64px", DatasetCard.Load(Write(tmp, cls, "cls.yaml")).Name);
        var bad = Write(tmp, "task: detection\nname: x\n", "bad.yaml");
        Assert.Equal("task", Assert.Throws<DataException>(() => DatasetCardTask.Detect(bad)).Field);
    }
}
