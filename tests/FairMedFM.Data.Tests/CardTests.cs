namespace FairMedFM.Data.Tests;

public class CardTests
{
    [Fact]
    public void RealCardLoadsWithAllFields()
    {
        var card = DatasetCard.Load(TestPaths.NihCard);
        Assert.Equal("nih_chestxray14_64px", card.Name);
        Assert.Equal(Path.GetFullPath(TestPaths.NihCard), card.SourceFile);
        Assert.Equal(Path.Combine(TestPaths.NihDir, "metadata.csv"), card.MetadataCsv);
        Assert.Equal(TestPaths.NihDir, card.ImageRoot);
        Assert.Equal("path", card.PathColumn);
        Assert.Equal("patient_id", card.PatientIdColumn);
        Assert.Equal("label_abnormal", card.Label.Column);
        Assert.Equal(new[] { "1" }, card.Label.Positive);

        Assert.Equal(new[] { "sex", "age60", "age_bins" }, card.Attributes.Select(a => a.Name));
        Assert.Equal(new[] { AttributeKind.Categorical, AttributeKind.Threshold, AttributeKind.Bins }, card.Attributes.Select(a => a.Kind));
        Assert.Equal(new[] { "M", "F" }, card.Attributes[0].GroupLabels);
        Assert.Equal(new[] { "<60", "60+" }, card.Attributes[1].GroupLabels);
        Assert.Equal(60.0, card.Attributes[1].Threshold);
        Assert.Equal(new[] { "<50", "50-64", "65+" }, card.Attributes[2].GroupLabels);
        Assert.Equal(new[] { 50.0, 65.0 }, card.Attributes[2].Edges);

        var x = Assert.Single(card.Intersections);
        Assert.Equal("sex_x_age60", x.Name);
        Assert.Equal(new[] { "sex", "age60" }, x.Of);
        Assert.Equal(new[] { "M|<60", "M|60+", "F|<60", "F|60+" }, card.GroupLabels("sex_x_age60"));
        Assert.Equal(new[] { "sex", "age60", "age_bins", "sex_x_age60" }, card.AttributeNames);

        Assert.Equal(new[] { 0.5056f, 0.5056f, 0.5056f }, card.Normalization!.Mean);
        Assert.Equal(new[] { 0.252f, 0.252f, 0.252f }, card.Normalization.Std);
        Assert.Equal("meanstd:rgb:0.5056,0.5056,0.5056/0.252,0.252,0.252", card.Normalization.ToNormalization().Id);
        Assert.Equal(MeanStdNormalization.ChestXray.Id, card.Normalization.ToNormalization().Id);

        Assert.Equal(new[] { "a chest X-ray of a normal", "a chest X-ray of a abnormal" }, card.ZeroShot!.Prompts());
    }

    [Fact]
    public void RealCardKeepsTheDataAttribution()
    {
        Assert.Contains("LICENSE_AND_ATTRIBUTION.txt", File.ReadAllText(TestPaths.NihCard));
    }

    [Fact]
    public void JsonCardMeansTheSameAsYaml()
    {
        using var t = new TempDir();
        var yamlPath = TestData.SmallDataset(t.Path);
        File.WriteAllText(t.File("card.json"), """
            {
              "name": "small", "metadata_csv": "meta.csv", "image_root": ".", "path_column": "path",
              "patient_id_column": "pid", "label": {"column": "y", "positive": ["1"]},
              "attributes": [
                {"name": "sex", "column": "sex", "kind": "categorical", "map": {"M": "male", "F": "female"}},
                {"name": "age60", "column": "age", "kind": "threshold", "threshold": 60, "label_low": "<60", "label_high": "60+"},
                {"name": "agebins", "column": "age", "kind": "bins", "edges": [50, 65]},
                {"name": "site", "column": "site", "kind": "categorical", "map": {"a": "A", "b": "B"}, "other": "other"}
              ],
              "intersections": [{"name": "sex_x_age60", "of": ["sex", "age60"]}]
            }
            """);
        var y = DatasetCard.Load(yamlPath);
        var j = DatasetCard.Load(t.File("card.json"));
        // Spelled-out default labels ("<60"/"60+") mean the same as the defaults.
        Assert.Equal(y.SemanticJson(), j.SemanticJson());
        Assert.Equal(LoadedDataset.Load(y).DataHash, LoadedDataset.Load(j).DataHash);
    }

    private static DataException CardError(string yaml)
    {
        using var t = new TempDir();
        var path = TestData.SmallDataset(t.Path, yaml);
        var e = Assert.Throws<DataException>(() => DatasetCard.Load(path));
        Assert.Equal(path, e.File);
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void UnknownTopLevelFieldIsRejected()
    {
        var e = CardError(TestData.SmallCard + "colour: red\n");
        Assert.Equal("colour", e.Field);
        Assert.Contains("unknown field", e.Message);
    }

    [Fact]
    public void FieldOfAnotherAttributeKindIsRejected()
    {
        var e = CardError(TestData.SmallCard.Replace("    threshold: 60", "    threshold: 60\n    edges: [1, 2]"));
        Assert.Equal("attributes[1].edges", e.Field);
    }

    [Fact]
    public void MissingRequiredFieldIsNamed()
    {
        var e = CardError(TestData.SmallCard.Replace("path_column: path\n", ""));
        Assert.Equal("path_column", e.Field);
        Assert.Contains("required", e.Message);
        var e2 = CardError(TestData.SmallCard.Replace("    threshold: 60\n", ""));
        Assert.Equal("attributes[1].threshold", e2.Field);
    }

    [Fact]
    public void BadValuesInCardAreNamed()
    {
        Assert.Equal("attributes[0].kind", CardError(TestData.SmallCard.Replace("kind: categorical\n    map: {M", "kind: nominal\n    map: {M")).Field);
        Assert.Equal("attributes[2].edges", CardError(TestData.SmallCard.Replace("edges: [50, 65]", "edges: [65, 50]")).Field);
        Assert.Equal("attributes[1].threshold", CardError(TestData.SmallCard.Replace("threshold: 60", "threshold: sixty")).Field);
        Assert.Equal("intersections[0].of", CardError(TestData.SmallCard.Replace("of: [sex, age60]", "of: [sex, height]")).Field);
        Assert.Equal("attributes[1].name", CardError(TestData.SmallCard.Replace("name: age60", "name: sex")).Field);
        Assert.Equal("label", CardError(TestData.SmallCard.Replace("  positive: [\"1\"]", "  positive: [\"1\"]\n  threshold: 1")).Field);
    }

    [Fact]
    public void MalformedYamlIsAReadableError()
    {
        var e = CardError("name: [unclosed\n");
        Assert.Contains("invalid YAML", e.Message);
    }

    [Fact]
    public void MissingCardFile()
    {
        var e = Assert.Throws<DataException>(() => DatasetCard.Load("/nonexistent/card.yaml"));
        Assert.Equal("/nonexistent/card.yaml", e.File);
    }

    [Fact]
    public void EncodersFollowTheirKind()
    {
        var cat = new AttributeSpec { Name = "s", Column = "c", Kind = AttributeKind.Categorical, Map = new[] { new KeyValuePair<string, string>("M", "M"), new("F", "F") }, Missing = "unknown" };
        Assert.Equal("F", cat.Encode(" F "));
        Assert.Equal("unknown", cat.Encode(""));
        Assert.Equal(new[] { "M", "F", "unknown" }, cat.GroupLabels);
        var e = Assert.Throws<DataException>(() => cat.Encode("X", "f.csv", 7));
        Assert.Equal(("f.csv", 7, "c"), (e.File, e.Row, e.Column));

        var thr = new AttributeSpec { Name = "a", Column = "age", Kind = AttributeKind.Threshold, Threshold = 60 };
        Assert.Equal("<60", thr.Encode("59.999"));
        Assert.Equal("60+", thr.Encode("60"));
        Assert.Equal("60+", thr.Encode("1e2"));

        var bins = new AttributeSpec { Name = "b", Column = "age", Kind = AttributeKind.Bins, Edges = new[] { 50.0, 65.0 } };
        Assert.Equal(new[] { "<50", "50-64", "65+" }, bins.GroupLabels);
        Assert.Equal(new[] { "<50", "50-64", "50-64", "65+" }, new[] { "49.9", "50", "64.99", "65" }.Select(v => bins.Encode(v)));
        Assert.Equal(new[] { "<0.5", "[0.5,1.5)", "1.5+" }, AttributeSpec.DefaultBinLabels(new[] { 0.5, 1.5 }));
        Assert.Throws<DataException>(() => bins.Encode("NaN"));
        Assert.Throws<DataException>(() => bins.Encode("old"));

        var lbl = new LabelRule { Column = "score", Threshold = 1 };
        Assert.Equal(new[] { 0, 1, 1 }, new[] { "0.5", "1", "3" }.Select(v => lbl.Encode(v)));
        var text = new LabelRule { Column = "dx", Positive = new[] { "mel", "akiec" } };
        Assert.Equal(new[] { 1, 1, 0 }, new[] { "mel", "akiec", "bcc" }.Select(v => text.Encode(v)));
        var strict = new LabelRule { Column = "y", Positive = new[] { "1" }, Negative = new[] { "0" } };
        Assert.Equal("y", Assert.Throws<DataException>(() => strict.Encode("-1", "f.csv", 3)).Column);
    }
}
