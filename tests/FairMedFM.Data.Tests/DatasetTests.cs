namespace FairMedFM.Data.Tests;

/// <summary>The real 1,000-image NIH sample, loaded once for the tests that only read it.</summary>
public sealed class NihFixture
{
    public LoadedDataset Data { get; } = LoadedDataset.Load(DatasetCard.Load(TestPaths.NihCard));
}

public class DatasetTests(NihFixture nih) : IClassFixture<NihFixture>
{
    private readonly LoadedDataset _d = nih.Data;

    [Fact]
    public void RealSampleMatchesTheReadmeCounts()
    {
        Assert.Equal(1000, _d.Samples.Count);
        Assert.True(_d.ImagesHashed);
        Assert.Equal(264, _d.Samples.Select(s => s.PatientId).Distinct().Count());
        Assert.Equal(501, _d.Samples.Count(s => s.Label == 1));
        Assert.Equal(509, _d.Samples.Count(s => s.Groups["sex"] == "F"));
        Assert.Equal(491, _d.Samples.Count(s => s.Groups["sex"] == "M"));
        Assert.Equal(278, _d.Samples.Count(s => s.Groups["sex"] == "F" && s.Label == 1));
        Assert.Equal(99, _d.Samples.Count(s => s.Groups["age_bins"] == "<50"));
        Assert.Equal(484, _d.Samples.Count(s => s.Groups["age_bins"] == "50-64"));
        Assert.Equal(417, _d.Samples.Count(s => s.Groups["age_bins"] == "65+"));
        Assert.Equal(new[] { "sex", "age60", "age_bins", "sex_x_age60" }, _d.AttributeNames);
    }

    [Fact]
    public void RealSampleAgreesWithAnIndependentReadOfTheCsv()
    {
        var lines = File.ReadAllLines(Path.Combine(TestPaths.NihDir, "metadata.csv"));
        var header = lines[0].Split(',');
        int ai = Array.IndexOf(header, "age"), si = Array.IndexOf(header, "sex"), pi = Array.IndexOf(header, "path"),
            li = Array.IndexOf(header, "label_abnormal"), pid = Array.IndexOf(header, "patient_id");
        Assert.Equal(lines.Length - 1, _d.Samples.Count);
        for (int r = 1; r < lines.Length; r++)
        {
            var f = lines[r].Split(',');
            var s = _d.Samples[r - 1];
            int age = int.Parse(f[ai]);
            Assert.Equal(r - 1, s.Index);
            Assert.Equal(f[pi], s.RelativePath);
            Assert.Equal(Path.Combine(TestPaths.NihDir, f[pi]), s.ImagePath);
            Assert.Equal(f[pid], s.PatientId);
            Assert.Equal(int.Parse(f[li]), s.Label);
            Assert.Equal(f[si], s.Groups["sex"]);
            Assert.Equal(age >= 60 ? "60+" : "<60", s.Groups["age60"]);
            Assert.Equal(age < 50 ? "<50" : age < 65 ? "50-64" : "65+", s.Groups["age_bins"]);
            Assert.Equal($"{f[si]}|{(age >= 60 ? "60+" : "<60")}", s.Groups["sex_x_age60"]);
            // Codes: female = 1 and 60+ = 1 (FairMedFM's binary encoding).
            Assert.Equal(f[si] == "F" ? 1 : 0, s.GroupCodes["sex"]);
            Assert.Equal(age >= 60 ? 1 : 0, s.GroupCodes["age60"]);
            Assert.Equal(_d.GroupLabels("sex_x_age60")[s.GroupCodes["sex_x_age60"]], s.Groups["sex_x_age60"]);
        }
        var first = _d.Samples[0];
        Assert.Equal(("1", 1, "M", "<60", "50-64"), (first.PatientId, first.Label, first.Groups["sex"], first.Groups["age60"], first.Groups["age_bins"]));
    }

    [Fact]
    public void ImageHashesAreTheFilesSha256()
    {
        // SHA256SUMS ships with the data: "<hex>  images/<name>".
        var sums = File.ReadAllLines(Path.Combine(TestPaths.NihDir, "SHA256SUMS"))
            .Select(l => l.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries))
            .ToDictionary(p => p[1].Trim().TrimStart('*'), p => p[0]);
        for (int i = 0; i < _d.Samples.Count; i++)
            Assert.Equal(sums[_d.Samples[i].RelativePath], _d.ImageHashes![i]);
        Assert.Matches("^[0-9a-f]{64}$", _d.DataHash);
    }

    [Fact]
    public void SmallDatasetEncodesEveryKind()
    {
        using var t = new TempDir();
        var d = LoadedDataset.Load(DatasetCard.Load(TestData.SmallDataset(t.Path)));
        Assert.Equal(6, d.Count);
        Assert.Equal(new[] { "<60", "<60", "<60", "60+", "60+", "60+" }, d.Samples.Select(s => s.Groups["age60"]));
        Assert.Equal(new[] { "<50", "50-64", "50-64", "50-64", "50-64", "65+" }, d.Samples.Select(s => s.Groups["agebins"]));
        Assert.Equal(new[] { "male", "male", "female", "female", "male", "female" }, d.Samples.Select(s => s.Groups["sex"]));
        Assert.Equal(new[] { "A", "A", "B", "B", "A", "other" }, d.Samples.Select(s => s.Groups["site"]));
        Assert.Equal(new[] { "male|<60", "male|<60", "female|<60", "female|60+", "male|60+", "female|60+" }, d.Samples.Select(s => s.Groups["sex_x_age60"]));
        Assert.Equal(new[] { 1, 0, 1, 0, 0, 1 }, d.Samples.Select(s => s.Label));
        Assert.Equal(new[] { "p1", "p1", "p2", "p3", "p4", "p5" }, d.Samples.Select(s => s.PatientId));
    }

    [Fact]
    public void WithoutPatientColumnEachImageIsItsOwnPatient()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path, TestData.SmallCard.Replace("patient_id_column: pid\n", ""));
        var d = LoadedDataset.Load(DatasetCard.Load(card));
        Assert.Null(d.Card.PatientIdColumn);
        Assert.Equal(d.Samples.Select(s => s.RelativePath), d.Samples.Select(s => s.PatientId));
        var split = PatientSplitter.Split(d, 1, new SplitFractions(0.5, 0, 0.5));
        Assert.Equal(3, split.Train.Length);
        Assert.Equal(3, split.Test.Length);
    }

    [Fact]
    public void SmallDatasetSplitKeepsPatientP1Together()
    {
        using var t = new TempDir();
        var d = LoadedDataset.Load(DatasetCard.Load(TestData.SmallDataset(t.Path)));
        for (int seed = 0; seed < 20; seed++)
        {
            var s = PatientSplitter.Split(d, seed, stratifyAttribute: "sex_x_age60");
            var inTrain = s.Train.Contains(0);
            Assert.Equal(inTrain, s.Train.Contains(1)); // rows 0 and 1 are patient p1
            Assert.Equal(s.Validation.Contains(0), s.Validation.Contains(1));
            Assert.Equal(6, s.Train.Length + s.Validation.Length + s.Test.Length);
        }
    }

    private static DataException LoadError(TempDir t, string[] lines, string? card = null)
    {
        var path = TestData.SmallDataset(t.Path, card, lines);
        return Assert.Throws<DataException>(() => LoadedDataset.Load(DatasetCard.Load(path)));
    }

    private static string[] Rows(params string[] dataRows) => new[] { "path,pid,age,sex,y,site" }.Concat(dataRows).ToArray();

    [Fact]
    public void UnknownCategoricalValueNamesFileRowAndColumn()
    {
        using var t = new TempDir();
        var e = LoadError(t, Rows("images/00000001_000.png,p1,50,M,1,a", "images/00000001_001.png,p1,51,X,0,a"));
        Assert.Equal(t.File("meta.csv"), e.File);
        Assert.Equal(2, e.Row);
        Assert.Equal("sex", e.Column);
        Assert.Contains("data row 2 (1-based; header is row 0)", e.Message);
        Assert.Contains("'X'", e.Message);
    }

    [Fact]
    public void NonNumericAgeIsAnError()
    {
        using var t = new TempDir();
        var e = LoadError(t, Rows("images/00000001_000.png,p1,fifty,M,1,a"));
        Assert.Equal((1, "age"), (e.Row!.Value, e.Column));
        Assert.Contains("not a number", e.Message);
    }

    [Fact]
    public void MissingColumnIsNamed()
    {
        using var t = new TempDir();
        var e = LoadError(t, new[] { "path,pid,age,gender,y,site", "images/00000001_000.png,p1,50,M,1,a" });
        Assert.Equal("sex", e.Column);
        Assert.Equal(t.File("meta.csv"), e.File);
        Assert.Null(e.Row);
    }

    [Fact]
    public void MissingImageNamesPathAndRow()
    {
        using var t = new TempDir();
        var e = LoadError(t, Rows("images/00000001_000.png,p1,50,M,1,a", "images/00000001_001.png,p1,50,M,1,a", "images/missing.png,p9,50,M,1,a"));
        Assert.Equal(3, e.Row);
        Assert.Equal("path", e.Column);
        Assert.Contains(Path.Combine(t.Path, "images", "missing.png"), e.Message);
    }

    [Fact]
    public void RaggedRowAndEmptyLabelAreErrors()
    {
        using (var t = new TempDir())
            Assert.Equal(2, LoadError(t, Rows("images/00000001_000.png,p1,50,M,1,a", "images/00000001_001.png,p1,50,M")).Row);
        using (var t = new TempDir())
        {
            var e = LoadError(t, Rows("images/00000001_000.png,p1,50,M,,a"));
            Assert.Equal((1, "y"), (e.Row!.Value, e.Column));
        }
    }

    [Fact]
    public void CorruptImageIsHashedButFailsToDecodeNamingThePath()
    {
        using var t = new TempDir();
        var card = TestData.SmallDataset(t.Path);
        var bad = Path.Combine(t.Path, "images", "00000001_000.png");
        File.WriteAllBytes(bad, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 });
        var d = LoadedDataset.Load(DatasetCard.Load(card));
        var e = Assert.Throws<DataException>(() => ImagePipeline.Run(d.Samples[0].ImagePath, new PreprocessingSpec(), MeanStdNormalization.ChestXray));
        Assert.Equal(bad, e.File);
    }

    [Fact]
    public void DataHashTracksImageBytesAndCsvCells()
    {
        using var t = new TempDir();
        var cardPath = TestData.SmallDataset(t.Path);
        string Hash(bool images = true) => LoadedDataset.Load(DatasetCard.Load(cardPath), images).DataHash;
        var h0 = Hash();
        Assert.Equal(h0, Hash());
        var noImages = Hash(false);
        Assert.NotEqual(h0, noImages);

        // One byte of one image.
        var img = Path.Combine(t.Path, "images", "00000002_000.png");
        var original = File.ReadAllBytes(img);
        var changed = (byte[])original.Clone();
        changed[changed.Length / 2] ^= 1;
        File.WriteAllBytes(img, changed);
        Assert.NotEqual(h0, Hash());
        Assert.Equal(noImages, Hash(false)); // documented: without image hashing, image bytes are not covered
        File.WriteAllBytes(img, original);
        Assert.Equal(h0, Hash());

        // One CSV cell, even in a column the card does not use.
        var csv = Path.Combine(t.Path, "meta.csv");
        var text = File.ReadAllText(csv);
        File.WriteAllText(csv, text.Replace(",65,F,1,c", ",65,F,1,d"));
        Assert.NotEqual(h0, Hash());
        File.WriteAllText(csv, text);
        Assert.Equal(h0, Hash());

        // Card semantics count, the description does not.
        var cardText = File.ReadAllText(cardPath);
        File.WriteAllText(cardPath, cardText.Replace("threshold: 60", "threshold: 61"));
        Assert.NotEqual(h0, Hash());
        File.WriteAllText(cardPath, cardText + "description: any words\n");
        Assert.Equal(h0, Hash());
    }

    [Fact]
    public void DataHashDoesNotDependOnWhereTheDataLives()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var h1 = LoadedDataset.Load(DatasetCard.Load(TestData.SmallDataset(a.Path))).DataHash;
        var h2 = LoadedDataset.Load(DatasetCard.Load(TestData.SmallDataset(b.Path))).DataHash;
        Assert.Equal(h1, h2);
    }
}
