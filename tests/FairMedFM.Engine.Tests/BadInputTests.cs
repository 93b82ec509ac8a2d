using FairMedFM.Data;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;

namespace FairMedFM.Engine.Tests;

/// <summary>Cards that are broken in one way each, built from the tiny card.</summary>
internal static class BadCards
{
    public const string MissingImageRel = "images/does_not_exist.png";

    /// <summary>The CSV lacks the 'sex' column the card's first attribute reads.</summary>
    public static string MissingColumn(string dir) => TinyData.WriteCard(dir, "no_sex_column", TinyData.WithoutColumn("sex"));

    /// <summary>Data row 3 names an image that does not exist.</summary>
    public static string MissingImage(string dir) => TinyData.WriteCard(dir, "missing_image", TinyData.WithPath(3, MissingImageRel));

    /// <summary>Six real images and one .png that is not an image (garbage bytes, or a real PNG cut in half), in a local image folder.</summary>
    public static string CorruptImage(string dir, bool truncated = false)
    {
        var images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        int pathCol = Array.IndexOf(TinyData.Header, "path");
        var rows = TinyData.CsvLines.Skip(1).Take(7).Select(l => l.Split(',')).ToList();
        foreach (var r in rows.Take(6))
            File.Copy(Path.Combine(TestPaths.NihDir, r[pathCol]), Path.Combine(dir, r[pathCol]), overwrite: true);
        var bad = Path.Combine(images, "corrupt.png");
        if (truncated)
        {
            var real = File.ReadAllBytes(Path.Combine(TestPaths.NihDir, rows[6][pathCol]));
            File.WriteAllBytes(bad, real[..(real.Length / 2)]);
        }
        else
        {
            var junk = new byte[3000];
            new Random(5).NextBytes(junk);
            System.Text.Encoding.ASCII.GetBytes("this is not a PNG file").CopyTo(junk, 0);
            File.WriteAllBytes(bad, junk);
        }
        rows[6][pathCol] = "images/corrupt.png";
        return TinyData.WriteCard(dir, truncated ? "truncated_image" : "corrupt_image",
            new[] { TinyData.CsvLines[0] }.Concat(rows.Select(r => string.Join(',', r))), imageRoot: dir);
    }

    public static string CorruptImagePath(string card) => Path.Combine(Path.GetDirectoryName(card)!, "images", "corrupt.png");
}

/// <summary>Each bad input fails its cell with a message that names what to fix; nothing crashes and no image is encoded for nothing.</summary>
[Collection(BackboneCollection.Name)]
public sealed class BadInputTests : IClassFixture<BadInputTests.Fixture>
{
    public sealed class Fixture : IDisposable
    {
        public TempDir Tmp { get; } = new();
        public string TinyCard { get; }
        public CellRunner Runner { get; }
        public Fixture()
        {
            TinyCard = TinyData.WriteCard(Tmp.Sub("tiny"));
            Runner = new CellRunner(Tmp.Workspace());
        }
        public void Dispose() => Tmp.Dispose();
    }

    private readonly Fixture _fx;
    public BadInputTests(Fixture fx) => _fx = fx;

    private CellSpec Spec(string? card = null, string model = TinyData.Model, string usage = "lp", string method = "erm", string attribute = "sex") => new()
    {
        Dataset = card ?? _fx.TinyCard, Model = model, Usage = usage, Method = method, Attribute = attribute, Seed = 0,
        Training = TinyCellFixture.Training,
    };

    /// <summary>Runs a cell that must fail, checks that it failed without backbone forwards and was stored as failed; returns the error.</summary>
    private string Fails(CellSpec spec)
    {
        long before = EmbeddingStore.BackboneForwardImages;
        var r = _fx.Runner.Run(spec);
        Assert.Equal("failed", r.Status);
        Assert.False(string.IsNullOrWhiteSpace(r.Error));
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.DoesNotContain("NullReference", r.Error);
        Assert.DoesNotContain("AggregateException", r.Error);
        Assert.DoesNotContain("   at ", r.Error); // no stack trace
        var stored = _fx.Runner.Results.TryGet(spec.CellId)!;
        Assert.Equal("failed", stored.Status);
        Assert.Equal(r.Error, stored.Error);
        // A failed result is never reused as if it were done.
        Assert.Null(_fx.Runner.TryReuse(spec, DatasetCatalogHash(spec.Dataset)));
        return r.Error!;
    }

    private static string DatasetCatalogHash(string card)
    {
        try { return DatasetCatalog.Get(card).DataHash; } catch (DataException) { return "unloadable"; }
    }

    [Fact]
    public void Unknown_attribute_names_it_and_lists_the_defined_ones()
    {
        var e = Fails(Spec(attribute: "ethnicity"));
        Assert.Contains("attribute 'ethnicity'", e);
        Assert.Contains("sex, age60, age_bins, sex_x_age60", e);
        Assert.Contains(_fx.TinyCard, e);
    }

    [Fact]
    public void Unknown_method_names_it_and_lists_the_available_ones()
    {
        var e = Fails(Spec(method: "fairdro"));
        Assert.Contains("method 'fairdro'", e);
        Assert.Contains("erm", e);
    }

    [Fact]
    public void Unknown_usage_names_it()
    {
        var e = Fails(Spec(usage: "ft"));
        Assert.Contains("usage 'ft'", e);
        Assert.Contains("lp", e);
    }

    [Fact]
    public void Unknown_model_lists_the_known_models()
    {
        var e = Fails(Spec(model: "vit-b16-medsam"));
        Assert.Contains("unknown model 'vit-b16-medsam'", e);
        Assert.Contains(TinyData.Model, e);
        Assert.Contains("resnet50", e);
    }

    [Fact]
    public void Csv_without_a_needed_column_names_the_file_and_the_column()
    {
        var card = BadCards.MissingColumn(_fx.Tmp.Sub("nocol"));
        var e = Fails(Spec(card));
        Assert.Contains(Path.Combine(Path.GetDirectoryName(card)!, "no_sex_column.csv"), e);
        Assert.Contains("column 'sex'", e);
        Assert.Contains("not found in the CSV header", e);
        // Whatever the attribute asked for, the card cannot load: the dataset error comes first.
        Assert.Contains("column 'sex'", Fails(Spec(card, attribute: "age60")));
    }

    [Fact]
    public void Card_pointing_at_a_missing_image_names_the_path_and_row()
    {
        var card = BadCards.MissingImage(_fx.Tmp.Sub("noimg"));
        var e = Fails(Spec(card));
        Assert.Contains(Path.Combine(TestPaths.NihDir, BadCards.MissingImageRel), e);
        Assert.Contains("image file not found", e);
        Assert.Contains("data row 3", e);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Corrupt_image_file_names_the_path(bool truncated)
    {
        var card = BadCards.CorruptImage(_fx.Tmp.Sub(truncated ? "truncated" : "corrupt"), truncated);
        // The card itself loads (images are hashed, not decoded, at load time) ...
        Assert.Equal(7, DatasetCatalog.Get(card).Count);
        // ... and the cell fails at the embedding stage, before any image is encoded.
        var e = Fails(Spec(card));
        Assert.Contains(BadCards.CorruptImagePath(card), e);
        Assert.Matches("decod", e);
    }

    [Fact]
    public void Missing_card_file_is_named()
    {
        var e = Fails(Spec(Path.Combine(_fx.Tmp.Path, "nowhere", "card.yaml")));
        Assert.Contains("dataset card not found", e);
        Assert.Contains(Path.Combine(_fx.Tmp.Path, "nowhere", "card.yaml"), e);
    }

    [Fact]
    public void Invalid_training_settings_in_a_cell_fail_with_their_name()
    {
        var e = Fails(Spec() with { Training = TinyCellFixture.Training with { Optimizer = "rmsprop" } });
        Assert.Contains("optimizer 'rmsprop'", e);
    }
}

/// <summary>Patient-level splitting on the real 1,000-image card: no patient leaks between train, validation and test.</summary>
public sealed class SplitLeakageTests
{
    [Theory]
    [InlineData(0, "sex")]
    [InlineData(1, "age60")]
    [InlineData(2, "sex_x_age60")]
    public void No_patient_appears_in_two_splits(int seed, string attribute)
    {
        var data = DatasetCatalog.Get(TestPaths.NihCard);
        Assert.Equal(1000, data.Count);
        var split = PatientSplitter.Split(data, seed, new SplitFractions(0.6, 0.2, 0.2), stratifyAttribute: attribute);

        HashSet<string> Patients(int[] idx) => idx.Select(i => data.Samples[i].PatientId).ToHashSet(StringComparer.Ordinal);
        var train = Patients(split.Train);
        var val = Patients(split.Validation);
        var test = Patients(split.Test);
        Assert.Empty(train.Intersect(val));
        Assert.Empty(train.Intersect(test));
        Assert.Empty(val.Intersect(test));
        Assert.Equal(data.Samples.Select(s => s.PatientId).Distinct().Count(), train.Count + val.Count + test.Count);

        // Every image in exactly one split.
        var all = split.Train.Concat(split.Validation).Concat(split.Test).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 1000), all);
        Assert.InRange(split.Train.Length, 500, 700);
        Assert.InRange(split.Test.Length, 120, 280);
    }

    [Fact]
    public void Seeds_give_different_splits_and_the_same_seed_the_same_split()
    {
        var data = DatasetCatalog.Get(TestPaths.NihCard);
        var a = PatientSplitter.Split(data, 0, stratifyAttribute: "sex");
        var b = PatientSplitter.Split(data, 0, stratifyAttribute: "sex");
        var c = PatientSplitter.Split(data, 1, stratifyAttribute: "sex");
        Assert.Equal(a.SplitHash, b.SplitHash);
        Assert.Equal(a.Test, b.Test);
        Assert.NotEqual(a.SplitHash, c.SplitHash);
        Assert.NotEqual(a.Test, c.Test);
    }
}
